"""The GStreamer WHIP publisher (``whip_gst.py``) as a child process of a test.

It runs with the system interpreter, which has GStreamer's ``gi`` bindings (the venv does not),
inside the client's network namespace (``ip netns exec``). The test reads the JSON events it
prints; its stderr (GStreamer's warnings) goes to a log file quoted when a wait fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import subprocess
from pathlib import Path
from typing import Any

SYSTEM_PYTHON = "/usr/bin/python3"
SCRIPT = Path(__file__).with_name("whip_gst.py")
# The elements whip_gst.py needs, and the Debian 12 package of each.
ELEMENTS = {
    "webrtcbin": "gstreamer1.0-plugins-bad",
    "openh264enc": "gstreamer1.0-plugins-bad",
    "dtlssrtpenc": "gstreamer1.0-plugins-bad",
    "nicesrc": "gstreamer1.0-nice",
    "videotestsrc": "gstreamer1.0-plugins-base",
    "opusenc": "gstreamer1.0-plugins-base",
    "vp8enc": "gstreamer1.0-plugins-good",
    "rtph264pay": "gstreamer1.0-plugins-good",
    "x264enc": "gstreamer1.0-plugins-ugly",
}
PYTHON_PACKAGES = "python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-plugins-bad-1.0 python3-cryptography"
_PROBE = f"""
import cryptography
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstWebRTC", "1.0")
from gi.repository import Gst, GstSdp, GstWebRTC
Gst.init(None)
print(" ".join(e for e in {list(ELEMENTS)!r} if Gst.ElementFactory.find(e) is None))
"""


@functools.cache
def unavailable() -> str | None:
    """Why the system python3 cannot run the GStreamer publisher here, or None."""
    try:
        done = subprocess.run(
            [SYSTEM_PYTHON, "-c", _PROBE], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{SYSTEM_PYTHON} cannot run: {exc}"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        return f"{SYSTEM_PYTHON} lacks a module ({last}); Debian: {PYTHON_PACKAGES}"
    if missing := done.stdout.split():
        packages = " ".join(sorted({ELEMENTS[element] for element in missing}))
        return f"GStreamer elements missing: {' '.join(missing)}; Debian: {packages}"
    return None


class GstPublisher:
    """One ``whip_gst.py`` process. States: running -> exited (by itself or by ``stop()``)."""

    def __init__(self, process: asyncio.subprocess.Process, log: Path) -> None:
        self._process = process
        self._log = log

    @classmethod
    async def start(
        cls, namespace: str, url: str, token: str, log: Path, *arguments: str
    ) -> GstPublisher:
        """Publish to the WHIP ``url`` from ``namespace``; ``arguments`` go to the script."""
        with log.open("wb") as stderr:
            process = await asyncio.create_subprocess_exec(
                *("ip", "netns", "exec", namespace, SYSTEM_PYTHON, str(SCRIPT), *arguments),
                *("--", url, token),  # a token may start with "-"
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
            )
        return cls(process, log)

    async def event(self, name: str, within: float, **fields: Any) -> dict[str, Any]:
        """The next event ``name`` with these ``fields``; fails on an error, an exit or a
        timeout, quoting GStreamer's log."""
        assert self._process.stdout is not None
        try:
            async with asyncio.timeout(within):
                while line := await self._process.stdout.readline():
                    event: dict[str, Any] = json.loads(line)
                    assert event["event"] != "error", f"{event['message']}\n{self.log_tail()}"
                    if event["event"] == name and fields.items() <= event.items():
                        return event
        except TimeoutError:
            raise AssertionError(f"no {name!r} in {within} s\n{self.log_tail()}") from None
        raise AssertionError(f"the publisher exited before {name!r}\n{self.log_tail()}")

    async def exit_status(self, within: float) -> int:
        async with asyncio.timeout(within):
            return await self._process.wait()

    async def stop(self) -> None:
        """Kill the process if it still runs (idempotent) and reap it."""
        if self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
        async with asyncio.timeout(10):
            await self._process.wait()

    def log_tail(self, lines: int = 30) -> str:
        text = self._log.read_text(errors="replace") if self._log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])
