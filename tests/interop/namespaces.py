"""Two private network namespaces joined by a veth pair: the server's and the client's.

libnice (GStreamer's ICE) never gathers on loopback, so an independent client needs a real
interface; a veth pair between namespaces this test creates keeps every packet off the host's
networks. Unlike ``tests/faults/netns.py`` nothing is dropped, so no nftables is needed.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time

SERVER_ADDRESS, CLIENT_ADDRESS = "10.78.0.1", "10.78.0.2"


def unavailable() -> str | None:
    """Why the namespaces cannot be made here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs as root)"
    return None if shutil.which("ip") else "missing ip (Debian: iproute2)"


def _run(*command: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=10)
    assert done.returncode == 0, f"{' '.join(command)}: {done.stderr}"


def _is_up(namespace: str, link: str) -> bool:
    done = subprocess.run(
        ["ip", "-n", namespace, "-o", "link", "show", "dev", link],
        capture_output=True,
        text=True,
        check=False,
        timeout=10,
    )
    return " state UP " in done.stdout


class VethLink:
    """Namespace ``server`` (``SERVER_ADDRESS``) <-veth-> namespace ``client``
    (``CLIENT_ADDRESS``). ``remove()`` deletes both; the veth pair goes with them."""

    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.server, self.client = f"sc-isrv-{tag}", f"sc-icli-{tag}"
        _run("ip", "netns", "add", self.server)
        try:
            _run("ip", "netns", "add", self.client)
            self._wire(f"vis{tag}", f"vic{tag}")
        except BaseException:
            self.remove()
            raise

    def _wire(self, inner: str, outer: str) -> None:
        srv = ("ip", "netns", "exec", self.server)
        cli = ("ip", "netns", "exec", self.client)
        _run(*srv, "ip", "link", "add", inner, "type", "veth", "peer", outer, "netns", self.client)
        _run(*srv, "ip", "addr", "add", f"{SERVER_ADDRESS}/24", "dev", inner)
        _run(*cli, "ip", "addr", "add", f"{CLIENT_ADDRESS}/24", "dev", outer)
        for ns, link in ((srv, inner), (cli, outer)):
            _run(*ns, "ip", "link", "set", "lo", "up")
            _run(*ns, "ip", "link", "set", link, "up")
        # libnice gathering on a veth whose carrier is not up yet never completes.
        deadline = time.monotonic() + 5
        while not (_is_up(self.server, inner) and _is_up(self.client, outer)):
            assert time.monotonic() < deadline, "the veth pair did not come up"
            time.sleep(0.02)

    def remove(self) -> None:
        for name in (self.server, self.client):
            subprocess.run(
                ["ip", "netns", "del", name], capture_output=True, check=False, timeout=10
            )
