"""Where a viewer's packets go: its SRTP context and its nominated pair's socket.

Consumers send synchronously: libsrtp protects in a scratch buffer, and the datagram leaves
with one ``sendto`` on the raw socket (the native path batches them with ``sendmmsg``). This
replaces aiortc's awaited ``RTCDtlsTransport._send_rtp`` (an allocating protect, then an
awaited send through asyncio's unbounded write buffer).
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

from aiortc import RTCDtlsTransport

from .aiortc_hooks import nominated_pairs, raw_socket, srtp_context
from .lane import drop

if TYPE_CHECKING:
    from .consumer import Consumer


class Egress:
    """One subscriber's route, shared by its audio and video consumers.

    States: unbound -> bound (DTLS connected) -> closed. Consumers copy the route (socket
    ``sendto`` or the socket itself, address, libsrtp context) into their lanes so the hot
    path does no lookups; :meth:`refresh` pushes a new route if aioice nominates another pair.
    """

    def __init__(self) -> None:
        self._pairs: dict[int, Any] = {}
        self._pair: Any = None
        self.session: Any = None  # owns the libsrtp context: consumers hold it too
        self._consumers: list[Consumer] = []
        self.context: Any = None
        self.sendto: Any = drop
        self.socket: socket.socket | None = None
        self.address: tuple[str, int] = ("", 0)

    @property
    def bound(self) -> bool:
        return self.session is not None

    def bind(self, dtls: RTCDtlsTransport) -> None:
        """Start sending over ``dtls`` (connected: its SRTP keys exist). Idempotent."""
        if self.session is None:
            self.session = dtls._tx_srtp
            self.context = srtp_context(dtls)
            self._pairs = nominated_pairs(dtls)
            self.refresh()

    def attach(self, consumer: Consumer) -> None:
        if consumer not in self._consumers:
            self._consumers.append(consumer)
        consumer.route(self)

    def refresh(self) -> None:
        """Follow aioice's nominated pair (called when bound and by the room's tick)."""
        pair = self._pairs.get(1)
        if pair is self._pair:
            return
        self._pair = pair
        if pair is None:
            self.socket, self.sendto = None, drop
        else:
            self.socket = raw_socket(pair.protocol.transport)
            self.sendto = self.socket.sendto
            self.address = pair.remote_addr
        for consumer in self._consumers:
            consumer.route(self)

    def close(self) -> None:
        self._pairs = {}
        self.refresh()
        self._consumers = []
