"""Hatch build hook: compile the SFU's native fan-out (sfu/_fanout.c) into the wheel.

It builds with the C compiler Python was built with (``sysconfig``'s ``CC``) and Python's
headers, nothing else: libsrtp is reached through pylibsrtp at run time (docs/decisions.md).
Without a compiler the wheel is built without the extension and says so; the SFU then
forwards on its pure-Python path (``SHOPCAST_SFU_NATIVE=auto``). An editable install builds
it in place; after an edit of the C source, ``pip install --no-deps -e .`` builds it again.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SOURCE = Path("sfu") / "_fanout.c"
# No -Werror: a newer compiler's new warning must not cost a machine its native path.
FLAGS = ("-O2", "-fPIC", "-shared", "-Wall", "-fno-strict-aliasing")


def target() -> Path:
    return SOURCE.with_name("_fanout" + str(sysconfig.get_config_var("EXT_SUFFIX")))


def compile_extension(root: Path) -> Path | None:
    """Build the extension next to its source; its path relative to ``root``, or None."""
    compiler = shlex.split(str(sysconfig.get_config_var("CC") or "cc"))
    command = [
        *compiler,
        *FLAGS,
        f"-I{sysconfig.get_paths()['include']}",
        str(root / SOURCE),
        "-o",
        str(root / target()),
    ]
    try:
        # The compiler Python was built with, on our own source: no untrusted input.
        subprocess.run(command, check=True, capture_output=True, text=True)  # noqa: S603
    except (OSError, subprocess.CalledProcessError) as error:
        detail = getattr(error, "stderr", None) or error
        print(
            f"shopcast: native fan-out not built ({detail}); the SFU uses Python", file=sys.stderr
        )
        return None
    return target()


class NativeBuildHook(BuildHookInterface):
    """Compiles the native fan-out for wheels and editable installs."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        built = compile_extension(Path(self.root))
        if built is None:
            return
        build_data["artifacts"].append(built.as_posix())
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
