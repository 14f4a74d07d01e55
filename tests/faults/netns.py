"""Two private network namespaces joined by a veth pair, with nftables loss on one side.

Python 3.11 has no ``os.setns``: ``setns(2)`` through ctypes moves only the calling thread,
so one process can own sockets in several namespaces (a socket stays in the namespace it
was created in).
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import secrets
import shutil
import subprocess
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

CLONE_NEWNET = 0x40000000
SERVER_ADDRESS, PUBLISHER_ADDRESS = "10.77.0.1", "10.77.0.2"
T = TypeVar("T")
_libc = ctypes.CDLL(None, use_errno=True)


def unavailable() -> str | None:
    """Why namespaces with nftables cannot be made here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs as root)"
    missing = [tool for tool in ("ip", "nft") if shutil.which(tool) is None]
    return f"missing {', '.join(missing)} (Debian: iproute2, nftables)" if missing else None


def _run(*command: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=10)
    assert done.returncode == 0, f"{' '.join(command)}: {done.stderr}"


def _setns(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {path}")
    finally:
        os.close(fd)


@contextmanager
def inside(name: str) -> Iterator[None]:
    """Run this thread in namespace ``name`` for the block: sockets made here belong to it."""
    original = f"/proc/self/task/{threading.get_native_id()}/ns/net"
    back = os.open(original, os.O_RDONLY)
    try:
        _setns(f"/var/run/netns/{name}")
        yield
    finally:
        try:
            if _libc.setns(back, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back")
        finally:
            os.close(back)


class LossyLink:
    """Namespace ``server`` <-veth-> namespace ``publisher``; UDP leaving the publisher's
    side is dropped with probability ``loss_percent`` (nftables ``numgen random``)."""

    def __init__(self, loss_percent: int) -> None:
        tag = secrets.token_hex(3)
        self.server, self.publisher = f"sc-srv-{tag}", f"sc-pub-{tag}"
        _run("ip", "netns", "add", self.server)
        _run("ip", "netns", "add", self.publisher)
        try:
            self._wire(tag, loss_percent)
        except BaseException:
            self.remove()
            raise

    def _wire(self, tag: str, loss_percent: int) -> None:
        inner, outer = f"vs{tag}", f"vp{tag}"
        srv = ("ip", "netns", "exec", self.server)
        pub = ("ip", "netns", "exec", self.publisher)
        _run(
            *srv, "ip", "link", "add", inner, "type", "veth", "peer", outer, "netns", self.publisher
        )
        _run(*srv, "ip", "addr", "add", f"{SERVER_ADDRESS}/24", "dev", inner)
        _run(*pub, "ip", "addr", "add", f"{PUBLISHER_ADDRESS}/24", "dev", outer)
        for ns, link in ((srv, inner), (pub, outer)):
            _run(*ns, "ip", "link", "set", "lo", "up")
            _run(*ns, "ip", "link", "set", link, "up")
        rules = (
            "table inet loss {\n"
            "  chain out {\n"
            "    type filter hook output priority 0; policy accept;\n"
            f'    oifname "{outer}" meta l4proto udp numgen random mod 100 < {loss_percent} drop\n'
            "  }\n"
            "}\n"
        )
        done = subprocess.run(
            [*pub, "nft", "-f", "-"], input=rules, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr

    def remove(self) -> None:
        for name in (self.server, self.publisher):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


class LoopThread:
    """An event loop on its own thread, inside a network namespace (or this process's)."""

    def __init__(self, namespace: str | None = None) -> None:
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            if namespace is not None:
                _setns(f"/var/run/netns/{namespace}")
            asyncio.set_event_loop(self.loop)
            ready.set()
            self.loop.run_forever()

        name = f"netns {namespace or 'self'}"
        self._thread = threading.Thread(target=run, name=name, daemon=True)
        self._thread.start()
        ready.wait(5)

    async def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        async def drain() -> None:
            await self.loop.shutdown_asyncgens()
            await self.loop.shutdown_default_executor()

        asyncio.run_coroutine_threadsafe(drain(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()
