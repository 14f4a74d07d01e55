"""One stream's media: its current publisher and its viewers."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from .candidates import IceSettings
from .errors import ClosedError, NotLiveError
from .events import (
    EventSink,
    GoneReason,
    MediaStarted,
    PublisherGone,
    SfuEvent,
    SubscriberGone,
)
from .native import Mode
from .offer import parse_offer
from .ports import PortSettings
from .producer import Producer, TrackSpec
from .publisher import Publisher, PublishOptions
from .relay import RelaySource
from .session import Session
from .stats import RoomStats
from .subscriber import Subscriber

logger = logging.getLogger(__name__)

Source = Publisher | RelaySource


@dataclass(frozen=True)
class SfuSettings:
    """Settings of the media plane (the composition root builds them from its own)."""

    ice: IceSettings = field(default_factory=IceSettings)
    # The UDP ports of ICE sockets: the node's range, split over its SFU processes (the
    # process that owns each slice installs it: sfu.ports.serving_media_ports).
    ports: PortSettings = field(default_factory=PortSettings)
    # A publisher that sent media and then none for this long is gone.
    media_timeout: float = 5.0
    # A publisher that never sends media is gone after this long: as long as a browser gives
    # ICE before it calls a connection failed, which a lossy link's DTLS retransmits can need.
    connect_timeout: float = 30.0
    # At most one keyframe request per producer per interval (viewers' PLIs, joins).
    keyframe_interval: float = 0.3
    # A viewer waiting this long for a keyframe asks again.
    keyframe_retry: float = 1.0
    # Period of the room's housekeeping: stats, sender reports, timeouts.
    tick: float = 0.5
    # The fan-out: "auto" the native one if it was built, "on" it or fail, "off" Python's.
    native: Mode = "auto"


class RoomState(enum.Enum):
    IDLE = "idle"  # no publisher (viewers may stay, waiting for one)
    LIVE = "live"  # a publisher session exists (MediaStarted tells when its media flows)
    CLOSED = "closed"


class Room:
    """One stream: at most one Publisher and any number of Subscribers.

    States: idle -> live -> idle ... -> closed. A new publisher replaces the current one and
    the viewers carry on with it. Closing the room closes its publisher and subscribers.
    """

    def __init__(
        self,
        room_id: str,
        settings: SfuSettings,
        events: EventSink,
        on_publisher: Callable[[Room, Publisher], None] | None = None,
    ) -> None:
        self.id = room_id
        self.state = RoomState.IDLE
        self._settings = settings
        self._events = events
        self._on_publisher = on_publisher
        self._publisher: Source | None = None
        self._installed: set[str] = set()  # sources that fed the room, until they close
        self._subscribers: dict[str, Subscriber] = {}
        self._publish_lock = asyncio.Lock()
        self._tick_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()

    @property
    def closed(self) -> bool:
        return self.state is RoomState.CLOSED

    @property
    def publisher(self) -> Publisher | None:
        """The WHIP session feeding this room (None in a worker, fed by a relay)."""
        source = self._publisher
        return source if isinstance(source, Publisher) else None

    @property
    def source(self) -> Source | None:
        """What feeds this room: a WHIP publisher, or a relay from the origin process."""
        return self._publisher

    @property
    def subscribers(self) -> tuple[Subscriber, ...]:
        return tuple(self._subscribers.values())

    def producers(self) -> dict[str, Producer]:
        publisher = self._publisher
        return dict(publisher.producers) if publisher is not None else {}

    def tracks(self) -> dict[str, tuple[Producer, ...]]:
        """Each kind's producers: one, or a simulcast track's layers."""
        source = self._publisher
        if source is None:
            return {}
        layers = source.ingest.layers
        return {
            kind: layers[kind].producers if kind in layers else (producer,)
            for kind, producer in source.producers.items()
        }

    def session(self, session_id: str) -> Session | None:
        publisher = self.publisher
        if publisher is not None and publisher.id == session_id:
            return publisher
        return self._subscribers.get(session_id)

    async def publish(self, offer_sdp: str) -> tuple[Publisher, str]:
        """Answer a WHIP offer; a current publisher is replaced. Raises SdpError & co."""
        offer = parse_offer(offer_sdp)
        self._check_open()
        async with self._publish_lock:
            options = PublishOptions(self._settings.ice, self._settings.keyframe_interval)
            publisher, answer = await Publisher.negotiate(
                offer,
                options,
                on_closed=self._source_closed,
                on_media_started=self._media_started,
            )
            if self.closed:
                await publisher.close()
                raise ClosedError("room closed")
            await self._install(publisher)
            if self._on_publisher is not None:
                self._on_publisher(self, publisher)
            return publisher, answer

    async def relay(
        self, tracks: list[TrackSpec], request_keyframe: Callable[[str], None]
    ) -> RelaySource:
        """Feed the room from a relay of the origin's publisher (in a worker process)."""
        self._check_open()
        source = RelaySource(
            tracks,
            keyframe_interval=self._settings.keyframe_interval,
            request_keyframe=request_keyframe,
            on_closed=self._source_closed,
            on_media_started=self._media_started,
        )
        await self._install(source)
        return source

    async def _install(self, source: Source) -> None:
        self._installed.add(source.id)
        old, self._publisher = self._publisher, source
        if old is not None:
            await old.close(GoneReason.REPLACED)
        self.state = RoomState.LIVE
        tracks = self.tracks()
        for subscriber in self._subscribers.values():
            subscriber.rebind(tracks)
        self._ensure_tick()

    async def subscribe(self, offer_sdp: str) -> tuple[Subscriber, str]:
        """Answer a WHEP offer. Raises NotLiveError while there is no publisher."""
        offer = parse_offer(offer_sdp)
        self._check_open()
        producers = self.producers()
        if not producers:
            raise NotLiveError(f"room {self.id!r} has no publisher")
        subscriber, answer = await Subscriber.negotiate(
            offer,
            self.tracks(),
            self._settings.ice,
            on_closed=self._subscriber_closed,
        )
        if self.closed:
            await subscriber.close()
            raise ClosedError("room closed")
        self._subscribers[subscriber.id] = subscriber
        if self.producers() != producers:
            subscriber.rebind(self.tracks())  # a publisher took over while we negotiated
        self._ensure_tick()
        return subscriber, answer

    def _check_open(self) -> None:
        if self.closed:
            raise ClosedError(f"room {self.id!r} is closed")

    def _emit(self, event: SfuEvent) -> None:
        logger.info("room %s: %s", self.id, event)
        try:
            self._events(event)
        except Exception:
            # The listener's failure is its own: media keeps flowing.
            logger.exception("event listener failed on %s", event)

    def _media_started(self, source: Source) -> None:
        if source is self._publisher:
            self._emit(MediaStarted(self.id, source.id))

    def _source_closed(self, source: Session | RelaySource, reason: GoneReason) -> None:
        if source.id not in self._installed:
            return  # its negotiation failed: it never fed the room, nobody heard of it
        self._installed.discard(source.id)
        if source is self._publisher:
            self._publisher = None
            if not self.closed:
                self.state = RoomState.IDLE
        self._emit(PublisherGone(self.id, source.id, reason))

    def _subscriber_closed(self, session: Session, reason: GoneReason) -> None:
        if self._subscribers.pop(session.id, None) is not None:
            self._emit(SubscriberGone(self.id, session.id, reason))

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _ensure_tick(self) -> None:
        if self._tick_task is None or self._tick_task.done():
            self._tick_task = asyncio.ensure_future(self._run_tick())

    async def _run_tick(self) -> None:
        while not self.closed:
            await asyncio.sleep(self._settings.tick)
            self.tick(time.monotonic())

    def tick(self, now: float) -> None:
        """Housekeeping: producer stats, viewers' sender reports, keyframe retries, timeouts."""
        publisher = self._publisher
        if publisher is not None and not publisher.closed:
            for producer in publisher.ingest.every():
                producer.sample(now)
            settings = self._settings
            limit = settings.media_timeout if publisher.live else settings.connect_timeout
            if now - publisher.last_media_at() > limit:
                self._spawn(publisher.close(GoneReason.MEDIA_TIMEOUT))
        for subscriber in self._subscribers.values():
            subscriber.egress.refresh()
            subscriber.adapt(now)
            for consumer in subscriber.consumers.values():
                consumer.refresh_sender_report(now)
                if (
                    consumer.waiting_keyframe
                    and now - consumer.waiting_since > self._settings.keyframe_retry
                    and consumer.producer is not None
                ):
                    # The keyframe we asked for was lost, or rate-limited away: ask again.
                    consumer.waiting_since = now
                    consumer.producer.request_keyframe()

    def stats(self) -> RoomStats:
        publisher = self._publisher
        return RoomStats(
            room_id=self.id,
            state=self.state.value,
            publisher=publisher.stats() if publisher is not None else None,
            viewers=len(self._subscribers),
            subscribers=[s.stats() for s in self._subscribers.values()],
        )

    async def close(self) -> None:
        """Close the publisher and every subscriber. Idempotent."""
        if self.closed:
            return
        self.state = RoomState.CLOSED
        sessions: list[Session | RelaySource] = list(self._subscribers.values())
        if self._publisher is not None:
            sessions.append(self._publisher)
        await asyncio.gather(*(s.close() for s in sessions))
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self._tick_task is not None:
            self._tick_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tick_task
