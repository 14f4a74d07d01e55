"""The libraries whose privates the SFU patches are pinned exactly, at what is installed."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version

from tests.nodes import ROOT

PATCHED = ("aiortc", "aioice", "pylibsrtp")


def test_patched_libraries_are_pinned_at_the_installed_version() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = dict(re.findall(r"^([\w-]+)==([\w.]+)$", "\n".join(project["dependencies"]), re.M))
    for name in PATCHED:
        assert name in pins, f"{name} must be pinned with == (sfu/aiortc_hooks.py patches it)"
        assert version(name) == pins[name], (
            f"{name}: installed {version(name)}, pinned {pins[name]}"
        )
