"""The media plane's entry point: rooms by id, settings, events."""

from __future__ import annotations

import asyncio

from .aiortc_hooks import allow_h264_profiles, check_aiortc_version
from .candidates import install_host_address_hook
from .errors import NotLiveError
from .events import EventSink, ignore_events
from .offer import parse_offer
from .publisher import Publisher
from .room import Room, SfuSettings
from .session import Session
from .subscriber import Subscriber


class Sfu:
    """All rooms of this process.

    States: open -> closed. ``close()`` closes every room. The HTTP layer calls
    :meth:`publish` (WHIP POST), :meth:`subscribe` (WHEP POST), :meth:`session` to find a
    session for PATCH/DELETE, and receives lifecycle events through ``events``.
    """

    def __init__(self, settings: SfuSettings | None = None, events: EventSink = ignore_events):
        check_aiortc_version()
        allow_h264_profiles()
        install_host_address_hook()
        self.settings = settings or SfuSettings()
        self._events = events
        self._rooms: dict[str, Room] = {}
        self.closed = False

    def room(self, room_id: str) -> Room:
        """The room of a stream, created on first use."""
        room = self._rooms.get(room_id)
        if room is None or room.closed:
            room = self._rooms[room_id] = Room(room_id, self.settings, self._events)
        return room

    def get_room(self, room_id: str) -> Room | None:
        """The open room of a stream, or None."""
        room = self._rooms.get(room_id)
        return None if room is None or room.closed else room

    async def publish(self, room_id: str, offer_sdp: str) -> tuple[Publisher, str]:
        """Answer a WHIP offer for ``room_id``; a current publisher there is replaced."""
        return await self.room(room_id).publish(offer_sdp)

    async def subscribe(self, room_id: str, offer_sdp: str) -> tuple[Subscriber, str]:
        """Answer a WHEP offer; NotLiveError if nobody publishes in the room."""
        room = self.get_room(room_id)
        if room is None:
            parse_offer(offer_sdp)  # a malformed offer is a 400 even for an unknown room
            raise NotLiveError(f"room {room_id!r} has no publisher")
        return await room.subscribe(offer_sdp)

    def session(self, session_id: str) -> Session | None:
        """A live publisher or subscriber session by id (for PATCH and DELETE)."""
        for room in self._rooms.values():
            session = room.session(session_id)
            if session is not None:
                return session
        return None

    async def close_room(self, room_id: str) -> None:
        """End a stream's media: its publisher and viewers are closed, the room forgotten."""
        room = self._rooms.pop(room_id, None)
        if room is not None:
            await room.close()

    async def close(self) -> None:
        """Close every room. Idempotent."""
        if self.closed:
            return
        self.closed = True
        rooms, self._rooms = list(self._rooms.values()), {}
        await asyncio.gather(*(room.close() for room in rooms))

    def rooms(self) -> list[Room]:
        """The open rooms (for stats and metrics)."""
        return [room for room in self._rooms.values() if not room.closed]
