"""Which UDP ports the SFU's ICE sockets bind: a fixed range, or one shared port per process.

aioice binds every host candidate to a random port (``local_addr=(address, 0)``), which a
container cannot publish. With :class:`PortSettings` the node's range is split evenly over
its SFU processes (the main one is process 0, worker ``i`` is process ``i + 1``), and each
process binds only inside its own slice: one socket per session (a port each), or, with
``udp_mux``, one socket per host address shared by all its sessions. Either way the socket is
served by a :class:`~sfu.mux.UdpMux` (an exclusive one for a session's own port), so datagrams
reach a session only from addresses that proved to be its peer's: a reused port does not hand
the next session its previous peer's late packets.

The process's :class:`MediaPorts` is installed by whoever owns the process (the composition
root, the worker's ``serve``) with :func:`serving_media_ports`; it applies to the ICE gathers
started inside :func:`sfu.candidates.gathering_on`, which every SFU session uses. Hook:
``aioice.ice.Connection.get_component_candidates(component, addresses, timeout)``, awaited
by ``Connection.gather_candidates`` once per component, is replaced once by a function that
reads a context variable; outside the SFU's gathers it calls aioice's own. Its host-candidate
step is redone here (the SFU's connections have no STUN or TURN server: ``iceServers=[]``):
bind, ``StunProtocol(connection)`` (on a mux transport), the ``Candidate`` aioice would build,
and the protocols appended to the private ``Connection._protocols`` (paired with remote
candidates, closed by ``Connection.close``). ``tests/sfu/test_ports.py`` checks these against
the installed aioice.
"""

from __future__ import annotations

import asyncio
import contextvars
import errno
import re
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass

import aioice.ice
from aioice.candidate import Candidate, candidate_foundation, candidate_priority
from aioice.ice import Connection, StunProtocol

from .errors import NoMediaPortError
from .mux import UdpMux

_RANGE = re.compile(r"^\s*(\d{1,5})\s*-\s*(\d{1,5})\s*$")
_ORIGINAL_GET_COMPONENT_CANDIDATES = aioice.ice.Connection.get_component_candidates
_GATHER_PORTS: contextvars.ContextVar[MediaPorts | None] = contextvars.ContextVar(
    "sfu_gather_ports", default=None
)
_EPHEMERAL: contextvars.ContextVar[bool] = contextvars.ContextVar("sfu_ephemeral", default=False)
_process_ports: MediaPorts | None = None  # this process's, set by serving_media_ports()


@dataclass(frozen=True)
class PortRange:
    """An inclusive range of UDP ports, ``first``-``last``."""

    first: int
    last: int

    def __post_init__(self) -> None:
        if not 1 <= self.first <= self.last <= 65535:
            raise ValueError(f"not a port range: {self.first}-{self.last}")

    @classmethod
    def parse(cls, text: str) -> PortRange:
        """``"50000-50999"`` (or one port, ``"50000"``); ValueError on anything else."""
        match = _RANGE.match(text) or _RANGE.match(f"{text}-{text}")
        if match is None:
            raise ValueError(f"a port range looks like 50000-50999, not {text!r}")
        return cls(int(match[1]), int(match[2]))

    def __len__(self) -> int:
        return self.last - self.first + 1

    def __contains__(self, port: object) -> bool:
        return isinstance(port, int) and self.first <= port <= self.last

    def __str__(self) -> str:
        return f"{self.first}-{self.last}"

    def split(self, parts: int) -> list[PortRange]:
        """``parts`` disjoint slices, as even as can be (the first ones one port longer).

        ValueError when a slice would be empty.
        """
        if parts < 1 or len(self) < parts:
            raise ValueError(
                f"port range {self} has {len(self)} ports for {parts} SFU processes: "
                "each needs at least one"
            )
        size, extra = divmod(len(self), parts)
        slices, first = [], self.first
        for index in range(parts):
            last = first + size - 1 + (index < extra)
            slices.append(PortRange(first, last))
            first = last + 1
        return slices


@dataclass(frozen=True)
class PortSettings:
    """The node's ICE ports (``None`` range: aioice's random ports) and how they are used.

    ``processes``: SFU processes sharing the range (the main one and its workers), each of
    which gets its own slice. ``udp_mux``: each process binds one port of its slice (per host
    address) for all its sessions, instead of one port per session.
    """

    port_range: PortRange | None = None
    processes: int = 1
    udp_mux: bool = False

    def __post_init__(self) -> None:
        if self.port_range is not None:
            self.port_range.split(self.processes)  # ValueError at startup, not at the 1st offer

    def slice(self, process: int) -> PortRange | None:
        """The ports of process ``process`` (0: the main one)."""
        if self.port_range is None:
            return None
        if not 0 <= process < self.processes:
            raise ValueError(f"SFU process {process} is not one of {self.processes}")
        return self.port_range.split(self.processes)[process]


class MediaPorts:
    """The ICE sockets of one SFU process: bound inside its slice, or shared through a mux.

    States: open -> closed. ``close()`` closes the mux sockets (sessions' own sockets are
    closed by their connections); binding after it raises :class:`NoMediaPortError`.
    """

    def __init__(self, ports: PortRange | None, *, mux: bool) -> None:
        self.ports = ports
        self.mux = mux
        self.closed = False
        self._cursor = 0
        self._muxes: dict[str, UdpMux] = {}
        self._opening: dict[str, asyncio.Lock] = {}

    @classmethod
    def for_process(cls, settings: PortSettings, process: int) -> MediaPorts | None:
        """Process ``process``'s ports, or None where aioice's random ports apply."""
        if settings.port_range is None and not settings.udp_mux:
            return None
        return cls(settings.slice(process), mux=settings.udp_mux)

    def __str__(self) -> str:
        where = f"of {self.ports}" if self.ports is not None else "picked by the kernel"
        return f"one shared UDP port {where}" if self.mux else f"a UDP port {where} per session"

    def muxes(self) -> list[UdpMux]:
        """The shared sockets opened so far, one per host address."""
        return list(self._muxes.values())

    async def bind(self, connection: Connection, address: str) -> StunProtocol:
        """A connected ``StunProtocol`` of ``connection`` on ``address``, on one of our ports."""
        if self.closed:
            raise NoMediaPortError("the SFU is shutting down")
        if self.mux:
            mux = await self._mux(address)
        else:
            sock = self._bind_socket(address)
            try:
                mux = await UdpMux.open(sock, exclusive=True)
            except BaseException:
                sock.close()
                raise
        return mux.attach(connection, StunProtocol(connection))

    async def _mux(self, address: str) -> UdpMux:
        lock = self._opening.setdefault(address, asyncio.Lock())
        async with lock:
            mux = self._muxes.get(address)
            if mux is None or mux.closed:
                sock = self._bind_socket(address)
                mux = self._muxes[address] = await UdpMux.open(sock)
            return mux

    def _bind_socket(self, address: str) -> socket.socket:
        """A UDP socket bound to ``address`` on a free port of the slice (any, unsliced).

        Tries each port once, starting after the last one taken, so a port just freed is the
        last to be reused (on a large range its old peer has long stopped sending). The kernel
        is the ledger: a port is free when no socket holds it, so closing a session frees it.
        """
        family, _, _, _, sockaddr = socket.getaddrinfo(
            address, 0, type=socket.SOCK_DGRAM, flags=socket.AI_NUMERICHOST
        )[0]
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if self.ports is None:
                sock.bind(sockaddr)
                return sock
            count = len(self.ports)
            for step in range(count):
                offset = (self._cursor + step) % count
                try:
                    sock.bind((sockaddr[0], self.ports.first + offset, *sockaddr[2:]))
                except OSError as exc:
                    if exc.errno not in (errno.EADDRINUSE, errno.EACCES):
                        raise
                    continue
                self._cursor = offset + 1
                return sock
        except BaseException:
            sock.close()
            raise
        sock.close()
        raise NoMediaPortError(f"every UDP port of {self.ports} on {address} is in use")

    async def close(self) -> None:
        """Close the shared sockets (their sessions' connections see them lost). Idempotent."""
        self.closed = True
        muxes, self._muxes = list(self._muxes.values()), {}
        for mux in muxes:
            await mux.close()


async def _host_candidates(
    self: Connection,
    component: int,
    addresses: list[str],
    timeout: int = 5,  # noqa: ASYNC109 - aioice's signature
) -> list[Candidate]:
    """``Connection.get_component_candidates``, binding the SFU's gathers on its own ports."""
    ports = None if _EPHEMERAL.get() else _GATHER_PORTS.get()
    if ports is None:
        return await _ORIGINAL_GET_COMPONENT_CANDIDATES(self, component, addresses, timeout)
    protocols: list[StunProtocol] = []
    try:
        for address in addresses:
            protocols.append(await ports.bind(self, address))
    except BaseException:
        # All or nothing: the failed session keeps no socket, and the ports stay free.
        for protocol in protocols:
            protocol.transport.close()
        raise
    candidates = []
    for protocol in protocols:
        host, port = protocol.transport.get_extra_info("sockname")[:2]
        protocol.local_candidate = Candidate(
            foundation=candidate_foundation("host", "udp", host),
            component=component,
            transport="udp",
            priority=candidate_priority(component, "host"),
            host=host,
            port=port,
            type="host",
        )
        candidates.append(protocol.local_candidate)
    self._protocols += protocols
    return candidates


def install_port_hook() -> None:
    """Route aioice's host-candidate gathering through :func:`binding_media_ports`."""
    setattr(aioice.ice.Connection, "get_component_candidates", _host_candidates)  # noqa: B010


@contextmanager
def binding_media_ports() -> Iterator[None]:
    """Make the ICE gathers started in this block bind this process's media ports, if any."""
    install_port_hook()
    token = _GATHER_PORTS.set(_process_ports)
    try:
        yield
    finally:
        _GATHER_PORTS.reset(token)


@contextmanager
def ephemeral_ports() -> Iterator[None]:
    """Gathers in this block bind random ports, whatever this process's media ports.

    For peers that are not the SFU's but share its process: tests' publishers and viewers.
    """
    token = _EPHEMERAL.set(True)
    try:
        yield
    finally:
        _EPHEMERAL.reset(token)


def process_media_ports() -> MediaPorts | None:
    """The media ports installed in this process (None: aioice's random ports)."""
    return _process_ports


@asynccontextmanager
async def serving_media_ports(ports: MediaPorts | None) -> AsyncIterator[MediaPorts | None]:
    """Make ``ports`` this process's media ports for the block, and close them at its end.

    Ports are a process's resource (a slice of the node's range), so there is one installed
    at a time; ``None`` leaves aioice's random ports in place.
    """
    global _process_ports
    if ports is None:
        yield None
        return
    if _process_ports is not None:
        raise RuntimeError("this process already serves media ports")
    install_port_hook()
    _process_ports = ports
    try:
        yield ports
    finally:
        _process_ports = None
        await ports.close()
