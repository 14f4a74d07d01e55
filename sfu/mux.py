"""One UDP socket for every ICE session of a process (mediasoup's WebRtcServer, LiveKit's udp_port).

A :class:`UdpMux` owns the socket. Each session's aioice ``StunProtocol`` is given a
:class:`MuxedTransport`, a virtual datagram transport over it, so aioice and aiortc above
work unchanged: the session sees its own transport, its candidate is the shared port.

Incoming datagrams go by remote address. The first datagram from an address nobody has
claimed must be a STUN binding request whose USERNAME names an attached session (its local
ufrag, before the colon) and passes that session's MESSAGE-INTEGRITY, or the STUN response
to a request the session sent there (its connectivity checks, found by transaction id); the
address is then that session's. Anything else from an unclaimed address is dropped: it
never reaches, and so never ends, a session. Closing a transport removes its routes.

The SFU's hot paths do not change: consumers send on the raw socket (shared or not) to the
nominated address, and a routed datagram costs one more dict lookup and call on the way in.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any, TypeVar, cast

from aioice import stun
from aioice.ice import Connection
from aioice.turn import UDP_SOCKET_BUFFER_SIZE

Address = tuple[Any, ...]  # (host, port), or IPv6's (host, port, flowinfo, scope_id)
Deliver = Callable[[bytes, Address], None]
Protocol = TypeVar("Protocol", bound=asyncio.DatagramProtocol)

_COOKIE = stun.COOKIE.to_bytes(4, "big")
# Like a publisher's ingest socket, and more: every session of the process reads from it.
# A session's own socket gets aioice's size (a publisher's is enlarged when media starts).
MUX_RECEIVE_BUFFER = 8 * 1024 * 1024
# STUN requests a session may have in flight whose responses can claim an address.
MAX_TRANSACTIONS = 64


class MuxedTransport(asyncio.DatagramTransport):
    """One session's view of the shared socket: what aioice's ``StunProtocol`` talks to.

    States: open -> closed. ``close()`` (aioice's ``StunProtocol.close``) removes the
    session's routes and reports the transport lost to the protocol, as a real one would.
    """

    def __init__(
        self, mux: UdpMux, connection: Connection, protocol: asyncio.DatagramProtocol
    ) -> None:
        super().__init__()
        self.connection = connection
        self.protocol = protocol
        self.deliver: Deliver = protocol.datagram_received
        self.ufrag = connection.local_username
        self.addresses: set[Address] = set()
        self.transactions: dict[bytes, None] = {}  # insertion-ordered: oldest first
        self._mux = mux
        self._closing = False

    def sendto(self, data: Any, addr: Any = None) -> None:
        if self._closing or addr is None:
            return
        if (
            len(data) >= 20
            and data[0] < 2
            and not data[0] & 0x01
            and not data[1] & 0x10
            and data[4:8] == _COOKIE
        ):
            # A STUN request (class bits C1 C0 = 0 0): its response may come from an
            # address no datagram came from yet.
            self._mux.expect(bytes(data[8:20]), self)
        self._mux.sendto(data, addr)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername":
            return default
        return self._mux.get_extra_info(name, default)

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        self.lost(None)

    def abort(self) -> None:
        self.lost(None)

    def lost(self, exc: Exception | None) -> None:
        """Detach from the mux and tell the protocol, once (asyncio's order: on the next turn)."""
        if self._closing:
            return
        self._closing = True
        self._mux.detach(self)
        asyncio.get_running_loop().call_soon(self.protocol.connection_lost, exc)


class UdpMux(asyncio.DatagramProtocol):
    """A process's shared ICE socket on one address, and the routes of its sessions.

    States: open -> closed. Closing it reports every attached transport lost. An
    ``exclusive`` mux serves one session (a port of the range each) and closes when it
    leaves: the same routing keeps the late datagrams of a port's previous peer away from
    the next session on that port (aioice takes data from any address once connected).
    """

    def __init__(self, exclusive: bool = False) -> None:
        self.exclusive = exclusive
        self.transport: asyncio.DatagramTransport | None = None
        self.dropped = 0  # datagrams from unclaimed addresses
        self._routes: dict[Address, Deliver] = {}
        self._owners: dict[Address, MuxedTransport] = {}
        self._by_ufrag: dict[str, list[MuxedTransport]] = {}
        self._transactions: dict[bytes, MuxedTransport] = {}
        self._closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @classmethod
    async def open(cls, sock: socket.socket, *, exclusive: bool = False) -> UdpMux:
        """Serve ``sock`` (bound); the mux takes it over and closes it."""
        size = UDP_SOCKET_BUFFER_SIZE if exclusive else MUX_RECEIVE_BUFFER
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
        loop = asyncio.get_running_loop()
        _, mux = await loop.create_datagram_endpoint(lambda: cls(exclusive), sock=sock)
        return mux

    @property
    def closed(self) -> bool:
        return self._closed.done()

    @property
    def port(self) -> int:
        port: int = self.get_extra_info("sockname")[1]
        return port

    def sessions(self) -> int:
        """Attached transports (one per gathered session on this address)."""
        return sum(len(routes) for routes in self._by_ufrag.values())

    def addresses(self) -> int:
        """Remote addresses routed to a session."""
        return len(self._routes)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        transport = self.transport
        return transport.get_extra_info(name, default) if transport is not None else default

    def attach(self, connection: Connection, protocol: Protocol) -> Protocol:
        """Give ``protocol`` (aioice's ``StunProtocol`` of ``connection``) its transport."""
        transport = MuxedTransport(self, connection, protocol)
        self._by_ufrag.setdefault(transport.ufrag, []).append(transport)
        protocol.connection_made(transport)
        return protocol

    def detach(self, transport: MuxedTransport) -> None:
        """Forget every route of ``transport``."""
        routes = self._by_ufrag.get(transport.ufrag, [])
        if transport in routes:
            routes.remove(transport)
        if not routes:
            self._by_ufrag.pop(transport.ufrag, None)
        for address in transport.addresses:
            if self._owners.get(address) is transport:
                del self._owners[address], self._routes[address]
        for transaction in transport.transactions:
            if self._transactions.get(transaction) is transport:
                del self._transactions[transaction]
        transport.addresses.clear()
        transport.transactions.clear()
        if self.exclusive and not self._by_ufrag and self.transport is not None:
            self.transport.close()  # its session is gone: free the port

    def expect(self, transaction: bytes, transport: MuxedTransport) -> None:
        """``transport`` sent STUN request ``transaction``: its response routes to it."""
        self._transactions[transaction] = transport
        pending = transport.transactions
        pending[transaction] = None
        if len(pending) > MAX_TRANSACTIONS:
            oldest = next(iter(pending))
            del pending[oldest]
            if self._transactions.get(oldest) is transport:
                del self._transactions[oldest]

    def sendto(self, data: Any, addr: Address) -> None:
        if self.transport is not None:
            self.transport.sendto(data, addr)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        deliver = self._routes.get(addr)
        if deliver is None:
            deliver = self._claim(data, addr)
            if deliver is None:
                self.dropped += 1
                return
        deliver(data, addr)

    def _claim(self, data: bytes, addr: Address) -> Deliver | None:
        """The session an unclaimed address's first datagram is for, if it proves one."""
        if len(data) < 20 or data[0] > 1 or data[4:8] != _COOKIE:
            return None
        try:
            message = stun.parse_message(data)
        except Exception:
            return None  # junk of any shape is dropped, never raised into the loop
        if message.message_class == stun.Class.REQUEST:
            owner = self._authenticated(message)
        else:
            owner = self._transactions.pop(message.transaction_id, None)
            if owner is not None:
                owner.transactions.pop(message.transaction_id, None)
        if owner is None:
            return None
        self._routes[addr] = owner.deliver
        self._owners[addr] = owner
        owner.addresses.add(addr)
        return owner.deliver

    def _authenticated(self, message: stun.Message) -> MuxedTransport | None:
        username = message.attributes.get("USERNAME")
        if message.message_method != stun.Method.BINDING or not isinstance(username, str):
            return None
        local, _, remote = username.partition(":")
        for transport in self._by_ufrag.get(local, ()):
            connection = transport.connection
            if connection.remote_username in (None, remote) and message.check_message_integrity(
                connection.local_password.encode("utf8")
            ):
                return transport
        return None

    def error_received(self, exc: Exception) -> None:
        """ICMP errors of a shared socket belong to no session in particular: ignored."""

    def connection_lost(self, exc: Exception | None) -> None:
        for routes in list(self._by_ufrag.values()):
            for transport in list(routes):
                transport.lost(exc or ConnectionResetError("the shared ICE socket closed"))
        if not self._closed.done():
            self._closed.set_result(None)

    async def close(self) -> None:
        """Close the socket; attached sessions see their transport lost. Idempotent."""
        if self.transport is None:
            self.connection_lost(None)
        else:
            self.transport.close()
        await asyncio.shield(self._closed)
