"""The media plane's entry point: rooms by id, settings, events."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from . import native
from .aiortc_hooks import allow_h264_profiles, check_aiortc_version
from .candidates import install_host_address_hook
from .errors import NotLiveError
from .events import EventSink, GoneReason, SfuEvent, SubscriberGone, ignore_events
from .offer import parse_offer
from .pool import RemoteSubscriber, WorkerPool
from .publisher import PublishedTrack, Publisher
from .room import Room, SfuSettings
from .session import Session
from .stats import RoomStats
from .subscriber import Subscriber
from .upstream import Upstream

Viewer = Subscriber | RemoteSubscriber
MediaSession = Session | RemoteSubscriber


class Sfu:
    """All rooms of this process.

    States: open -> closed. ``close()`` closes every room. The HTTP layer calls
    :meth:`publish` (WHIP POST), :meth:`subscribe` (WHEP POST), :meth:`session` to find a
    session for PATCH/DELETE, and receives lifecycle events through ``events``. With
    :meth:`start_workers`, viewers are spread over worker processes (:mod:`sfu.pool`).
    """

    def __init__(self, settings: SfuSettings | None = None, events: EventSink = ignore_events):
        check_aiortc_version()
        allow_h264_profiles()
        install_host_address_hook()
        self.settings = settings or SfuSettings()
        native.configure(self.settings.native)
        self._events = events
        self._rooms: dict[str, Room] = {}
        self._pool: WorkerPool | None = None
        self._upstreams: dict[str, Upstream] = {}
        self._pulling: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.closed = False

    async def start_workers(self, count: int) -> None:
        """Spread viewers over ``count`` more processes (one per extra core)."""
        if count > 0:
            self._pool = WorkerPool(self.settings, self._events, self.get_room)
            await self._pool.start(count)

    def room(self, room_id: str) -> Room:
        """The room of a stream, created on first use."""
        room = self._rooms.get(room_id)
        if room is None or room.closed:
            room = self._rooms[room_id] = Room(
                room_id, self.settings, self._events, self._publisher_changed
            )
        return room

    async def pull(self, room_id: str, post_offer: Callable[[str], Awaitable[str]]) -> None:
        """Feed ``room_id`` from the node that carries it (cascade), unless already fed.

        ``post_offer`` sends this node's WHEP offer to that node and returns its answer (the
        HTTP is the caller's). The room's viewers are this node's; its lifecycle stays with the
        origin: when the upstream session ends, the room is closed.
        """
        lock = self._pulling.setdefault(room_id, asyncio.Lock())
        async with lock:
            room = self.get_room(room_id)
            if room is not None and room.source is not None:
                return
            upstream = Upstream(on_closed=self._upstream_closed)
            try:
                answer = await post_offer(await upstream.offer(self.settings.ice))
                tracks = await upstream.accept(answer)
                room = self.get_room(room_id)
                if room is None:
                    room = self._rooms[room_id] = Room(room_id, self.settings, self._viewer_events)
                upstream.feed(await room.relay(tracks, upstream.request_keyframe))
            except BaseException:
                await upstream.close()
                raise
            self._upstreams[room_id] = upstream

    def pulled(self, room_id: str) -> bool:
        """Whether this node serves ``room_id`` from another node's upstream."""
        return room_id in self._upstreams

    def _viewer_events(self, event: SfuEvent) -> None:
        # A pulled room's source is not this node's publisher: only its viewers are news here.
        if isinstance(event, SubscriberGone):
            self._events(event)

    def _upstream_closed(self, upstream: Session, reason: GoneReason) -> None:
        for room_id, current in list(self._upstreams.items()):
            if current is upstream:
                task = asyncio.ensure_future(self.close_room(room_id))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def _publisher_changed(self, room: Room, publisher: Publisher) -> None:
        if self._pool is not None:
            self._pool.publisher_changed(room, publisher)

    def get_room(self, room_id: str) -> Room | None:
        """The open room of a stream, or None."""
        room = self._rooms.get(room_id)
        return None if room is None or room.closed else room

    async def publish(self, room_id: str, offer_sdp: str) -> tuple[Publisher, str]:
        """Answer a WHIP offer for ``room_id``; a current publisher there is replaced.

        A refused offer leaves no room behind (an empty room would count as carried here).
        """
        parse_offer(offer_sdp)
        created = self.get_room(room_id) is None
        room = self.room(room_id)
        try:
            return await room.publish(offer_sdp)
        except BaseException:
            if created and room.source is None and not room.subscribers:
                await self.close_room(room_id)
            raise

    async def subscribe(self, room_id: str, offer_sdp: str) -> tuple[Viewer, str]:
        """Answer a WHEP offer, in the least-loaded process; NotLiveError if nobody publishes."""
        parse_offer(offer_sdp)  # a malformed offer is a 400 even for an unknown room
        room = self.get_room(room_id)
        if room is None or not room.producers():
            raise NotLiveError(f"room {room_id!r} has no publisher")
        pool = self._pool
        if pool is not None:
            worker = pool.place(sum(len(r.subscribers) for r in self._rooms.values()))
            if worker is not None and room.source is not None:
                return await pool.subscribe(worker, room, offer_sdp)
        return await room.subscribe(offer_sdp)

    def session(self, room_id: str, session_id: str) -> MediaSession | None:
        """A live session of a room by id (for WHIP/WHEP PATCH and DELETE)."""
        room = self.get_room(room_id)
        session = room.session(session_id) if room is not None else None
        if session is None and self._pool is not None:
            return self._pool.session(room_id, session_id)
        return session

    def viewers(self, room_id: str) -> int:
        """Viewer sessions of a room in every process of this node."""
        room = self.get_room(room_id)
        local = len(room.subscribers) if room is not None else 0
        return local + (self._pool.viewers(room_id) if self._pool is not None else 0)

    def viewer_sessions(self) -> dict[str, int]:
        """Viewer sessions per open room, in every process of this node."""
        return {room.id: self.viewers(room.id) for room in self.rooms()}

    async def stats(self, room_id: str) -> RoomStats | None:
        """A room's stats, with its viewers in the worker processes."""
        room = self.get_room(room_id)
        if room is None:
            return None
        stats = room.stats()
        if self._pool is not None:
            stats.subscribers += await self._pool.subscriber_stats(room_id)
            stats.viewers = self.viewers(room_id)
        return stats

    def session_count(self) -> int:
        """Open WebRTC sessions (publishers and viewers) in every process of this node: counted
        from the sessions themselves, so a failed negotiation or a double close cannot skew it."""
        local = sum((room.publisher is not None) + len(room.subscribers) for room in self.rooms())
        return local + (self._pool.viewers() if self._pool is not None else 0)

    def worker_pids(self) -> list[int]:
        """Process ids of the worker processes (for benchmarks and operators)."""
        pool = self._pool
        return [w.process.pid for w in pool.workers if w.alive] if pool is not None else []

    async def close_room(self, room_id: str) -> None:
        """End a stream's media: its publisher and viewers are closed, the room forgotten."""
        if self._pool is not None:
            await self._pool.close_room(room_id)
        self._pulling.pop(room_id, None)
        upstream = self._upstreams.pop(room_id, None)
        if upstream is not None:
            await upstream.close()
        room = self._rooms.pop(room_id, None)
        if room is not None:
            await room.close()

    async def close(self) -> None:
        """Close every room and stop the worker processes. Idempotent."""
        if self.closed:
            return
        self.closed = True
        if self._pool is not None:
            await self._pool.close()
        upstreams, self._upstreams = list(self._upstreams.values()), {}
        await asyncio.gather(*(upstream.close() for upstream in upstreams))
        rooms, self._rooms = list(self._rooms.values()), {}
        await asyncio.gather(*(room.close() for room in rooms))
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def rooms(self) -> list[Room]:
        """The open rooms."""
        return [room for room in self._rooms.values() if not room.closed]

    # What the control side reads and does, by room id: nothing outside sfu/ holds a Room.

    def tracks(self, room_id: str) -> list[PublishedTrack]:
        """The tracks the room's publisher sends; none without a publisher."""
        publisher = self._publisher(room_id)
        return publisher.tracks() if publisher is not None else []

    def tap(self, room_id: str, listener: Callable[[str, bytes], None]) -> bool:
        """Hand the publisher's RTP packets to ``listener(kind, packet)`` too (the recorder);
        False when nobody publishes."""
        publisher = self._publisher(room_id)
        if publisher is not None:
            publisher.tap(listener)
        return publisher is not None

    def tap_layer(self, room_id: str, rid: str, listener: Callable[[str, bytes], None]) -> bool:
        """Hand the video packets of simulcast layer ``rid`` to ``listener(kind, packet)`` too
        (a rendition of the HLS ladder); False when nobody publishes that layer."""
        publisher = self._publisher(room_id)
        return publisher is not None and publisher.tap_layer(rid, listener)

    def request_keyframe(self, room_id: str, rid: str | None = None) -> None:
        """Ask the publisher for a video keyframe (rate-limited like the viewers' requests):
        of the main video, or of simulcast layer ``rid``."""
        publisher = self._publisher(room_id)
        if publisher is None:
            return
        layers = publisher.ingest.layers.get("video")
        video = (
            layers.layer(rid)
            if rid is not None and layers is not None
            else publisher.ingest.main("video")
        )
        if video is not None:
            video.request_keyframe()

    def published_rooms(self) -> list[str]:
        """Rooms whose publisher sends to this node."""
        return [room.id for room in self.rooms() if room.publisher is not None]

    def origin_rooms(self) -> list[str]:
        """Rooms this node carries itself rather than pulls from the show's node."""
        return [room.id for room in self.rooms() if not self.pulled(room.id)]

    def local_stats(self) -> dict[str, RoomStats]:
        """Each open room's stats as this process sees it (cheap: for metrics scrapes)."""
        return {room.id: room.stats() for room in self.rooms()}

    def _publisher(self, room_id: str) -> Publisher | None:
        room = self.get_room(room_id)
        return room.publisher if room is not None else None
