"""A small internet for one test: network namespaces joined by veth pairs, nftables rules
(NAT, port forwarding, blocked UDP) and the processes that run inside them.

Nothing is added to the namespace the tests run in: every address lives in a namespace made
here, and ``close`` stops every process and deletes every namespace, also after a failure.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from pathlib import Path
from typing import IO

from tests.faults.netns import unavailable

__all__ = ["Internet", "unavailable"]


def run(*command: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        command, input=stdin, capture_output=True, text=True, check=False, timeout=20
    )
    assert done.returncode == 0, f"{' '.join(command)}: {done.stderr}"
    return done.stdout


class Internet:
    """Hosts (namespaces), links (veth pairs) and processes. States: open -> closed."""

    def __init__(self) -> None:
        self._tag = secrets.token_hex(2)
        self._hosts: list[str] = []
        self._links = 0
        self._processes: list[subprocess.Popen[bytes]] = []
        self._logs: list[IO[bytes]] = []

    def __enter__(self) -> Internet:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def host(self, name: str, *, forwarding: bool = False) -> str:
        """A new namespace with its loopback up; ``forwarding``: it routes (a NAT box)."""
        namespace = f"sc-{name}-{self._tag}"
        run("ip", "netns", "add", namespace)
        self._hosts.append(namespace)
        self.exec(namespace, "ip", "link", "set", "lo", "up")
        if forwarding:
            self.exec(namespace, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        return namespace

    def link(self, a: str, a_address: str, b: str, b_address: str) -> tuple[str, str]:
        """A veth pair between hosts ``a`` and ``b`` (addresses in CIDR form); its two names."""
        self._links += 1
        a_name, b_name = f"v{self._tag}a{self._links}", f"v{self._tag}b{self._links}"
        self.exec(a, "ip", "link", "add", a_name, "type", "veth", "peer", b_name, "netns", b)
        for namespace, name, address in ((a, a_name, a_address), (b, b_name, b_address)):
            self.address(namespace, name, address)
            self.exec(namespace, "ip", "link", "set", name, "up")
        # libnice (GStreamer's ICE) gathering on a veth whose carrier is not up never completes.
        deadline = time.monotonic() + 5
        while not (self._up(a, a_name) and self._up(b, b_name)):
            assert time.monotonic() < deadline, "the veth pair did not come up"
            time.sleep(0.02)
        return a_name, b_name

    def _up(self, namespace: str, device: str) -> bool:
        return " state UP " in self.exec(namespace, "ip", "-o", "link", "show", "dev", device)

    def address(self, namespace: str, device: str, address: str) -> None:
        """Add ``address`` (CIDR) to ``device``; IPv6 ones are usable at once (no DAD wait)."""
        extra = ("nodad",) if ":" in address else ()
        self.exec(namespace, "ip", "addr", "add", address, "dev", device, *extra)

    def route(self, namespace: str, via: str) -> None:
        """The default route of ``namespace`` (IPv4 or IPv6, as ``via`` is)."""
        family = ("-6",) if ":" in via else ()
        self.exec(namespace, "ip", *family, "route", "add", "default", "via", via)

    def nft(self, namespace: str, rules: str) -> None:
        run("ip", "netns", "exec", namespace, "nft", "-f", "-", stdin=rules)

    def masquerade(self, namespace: str, source: str, out: str) -> None:
        """Source NAT on host ``namespace`` (a NAT box): packets from ``source`` (CIDR)
        leaving by device ``out`` take that device's address."""
        self.nft(
            namespace,
            "table ip nat {\n"
            "  chain postrouting {\n"
            "    type nat hook postrouting priority srcnat; policy accept;\n"
            f'    ip saddr {source} oifname "{out}" masquerade\n'
            "  }\n"
            "}\n",
        )

    def exec(self, namespace: str, *command: str) -> str:
        return run("ip", "netns", "exec", namespace, *command)

    def spawn(
        self,
        namespace: str,
        command: list[str],
        *,
        log: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start ``command`` inside ``namespace``, its output in ``log``; stopped by ``close``."""
        out = log.open("wb")
        self._logs.append(out)
        process = subprocess.Popen(
            ["ip", "netns", "exec", namespace, *command],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
        self._processes.append(process)
        return process

    def close(self) -> None:
        for process in reversed(self._processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self._processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        for out in self._logs:
            out.close()
        for namespace in self._hosts:
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False)
        self._processes, self._logs, self._hosts = [], [], []
