"""What publisher and subscriber sessions share: the peer connection and its lifecycle."""

from __future__ import annotations

import asyncio
import enum
import secrets
from collections.abc import Callable, Coroutine
from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection

from .aiortc_hooks import dtls_transports, local_ports
from .candidates import check_not_restart, parse_trickle_fragment
from .errors import ClosedError
from .events import GoneReason


class SessionState(enum.Enum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSED = "closed"


def new_peer_connection() -> RTCPeerConnection:
    """A peer connection that never contacts a STUN server (aiortc's default is Google's)."""
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


class Session:
    """A peer connection owned by the SFU, addressed by an unguessable id.

    States: connecting -> connected -> closed. The connection failing or the peer closing
    DTLS closes the session; ``close()`` is idempotent and waits for aiortc to let go of the
    sockets and tasks.
    """

    def __init__(self, pc: RTCPeerConnection, on_closed: Callable[[Session, GoneReason], None]):
        self.id = secrets.token_urlsafe(16)
        self.state = SessionState.CONNECTING
        self._pc = pc
        self._on_closed = on_closed
        self._remote_ufrag: str | None = None
        self._closing: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        pc.on("connectionstatechange", self._connection_state_changed)

    @property
    def closed(self) -> bool:
        return self.state is SessionState.CLOSED

    @property
    def pc(self) -> RTCPeerConnection:
        return self._pc

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        """Run a fire-and-forget coroutine that close() will cancel."""
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _connection_state_changed(self) -> None:
        state = self._pc.connectionState
        if state == "connected" and self.state is SessionState.CONNECTING:
            self.state = SessionState.CONNECTED
        elif state == "failed":
            self._start_closing(GoneReason.CONNECTION_FAILED)
        elif state == "closed":
            self._start_closing(GoneReason.CONNECTION_CLOSED)

    async def add_ice_candidates(self, fragment: str) -> None:
        """Apply a trickle ICE fragment (WHIP/WHEP PATCH); raise on an ICE restart."""
        if self.closed:
            raise ClosedError("session is closed")
        parsed = parse_trickle_fragment(fragment)
        check_not_restart(parsed, self._remote_ufrag)
        for candidate in parsed.candidates:
            candidate.sdpMid = self._first_mid()
            await self._pc.addIceCandidate(candidate)
        if parsed.end_of_candidates:
            await self._pc.addIceCandidate(None)

    def _first_mid(self) -> str | None:
        transceivers = self._pc.getTransceivers()
        mid: str | None = transceivers[0].mid if transceivers else None
        return mid

    async def close(self, reason: GoneReason = GoneReason.CLOSED) -> None:
        """Close the peer connection and everything hanging off it.

        Idempotent: later calls wait for the first one to finish; the first reason wins.
        """
        self._start_closing(reason)
        assert self._closing is not None
        await asyncio.shield(self._closing)

    def _start_closing(self, reason: GoneReason) -> None:
        if self._closing is None:
            self.state = SessionState.CLOSED
            self._release()
            self._closing = asyncio.ensure_future(self._close(reason))

    async def _close(self, reason: GoneReason) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self._pc.close()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._on_closed(self, reason)

    def _release(self) -> None:
        """Subclasses stop their media here, before the connection goes."""

    def local_ports(self) -> list[int]:
        """UDP ports this session's ICE agent listens on."""
        return [port for dtls in dtls_transports(self._pc) for port in local_ports(dtls)]
