"""This node's view of a stream's room: who is in it, its rules, and its unflushed analytics."""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import case, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from api.analytics.models import StreamMinute, StreamReaction
from api.identity.models import Role, User
from api.shows.models import Sanction, SanctionKind, Stream, StreamProduct
from live.states import FINISHED

STAFF = frozenset({Role.ADMIN, Role.MODERATOR})
Playback = Literal["webrtc", "hls"]
PLAYBACKS: tuple[Playback, ...] = ("webrtc", "hls")


def room_name(stream_id: str) -> str:
    """The Socket.IO room of a show."""
    return f"stream:{stream_id}"


def user_room(user_id: str) -> str:
    """The Socket.IO room of one account's sockets (their orders' news), on every node."""
    return f"user:{user_id}"


def minute_now() -> int:
    """The current UTC minute, as minutes since the epoch: cheap enough for every event."""
    return int(time.time() // 60)


class Mentions:
    """Which of a show's products a chat line names: a title in any case, as whole words."""

    def __init__(self, titles: Mapping[str, str]) -> None:
        self._patterns = [
            (product_id, re.compile(rf"(?<!\w){re.escape(title)}(?!\w)", re.IGNORECASE))
            for product_id, title in titles.items()
        ]

    def __call__(self, text: str) -> list[str]:
        return [product_id for product_id, pattern in self._patterns if pattern.search(text)]


@dataclass(frozen=True)
class RoomPolicy:
    """A stream's rules as the room enforces them; reloaded when a node hears they changed."""

    stream_id: str
    owner_id: str
    status: str
    audience: str
    enable_chat: bool
    slow_mode_seconds: int
    muted: frozenset[str]
    banned: frozenset[str]

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def is_moderator(self, user: User) -> bool:
        return user.id == self.owner_id or user.role in STAFF

    def public(self) -> dict[str, Any]:
        return {
            "id": self.stream_id,
            "status": self.status,
            "enable_chat": self.enable_chat,
            "slow_mode_seconds": self.slow_mode_seconds,
        }


@dataclass
class Member:
    """One connected socket: its account (None when anonymous) and the rooms it joined."""

    sid: str
    user: User | None
    viewer_key: str
    rooms: dict[str, float] = field(default_factory=dict)
    playback: dict[str, Playback] = field(default_factory=dict)
    expires_at: float | None = None  # the token's expiry (unix time): the socket ends then


@dataclass
class Minute:
    """One minute's peaks (viewers, by playback) and counts, as this node saw them."""

    viewers: int = 0
    webrtc_viewers: int = 0
    hls_viewers: int = 0
    likes: int = 0
    chat_messages: int = 0
    clicks: int = 0

    def saw(self, viewers: int, webrtc: int, hls: int) -> None:
        self.viewers = max(self.viewers, viewers)
        self.webrtc_viewers = max(self.webrtc_viewers, webrtc)
        self.hls_viewers = max(self.hls_viewers, hls)

    def merge(self, other: Minute) -> None:
        self.saw(other.viewers, other.webrtc_viewers, other.hls_viewers)
        self.likes += other.likes
        self.chat_messages += other.chat_messages
        self.clicks += other.clicks


@dataclass
class RoomStats:
    """Analytics gathered since the last flush: deltas, plus the running peak and uniques."""

    chats: int = 0
    watch_seconds: float = 0.0
    sessions: int = 0
    peak: int = 0
    unique: int = 0
    unique_by: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PLAYBACKS, 0))
    reactions: Counter[str] = field(default_factory=Counter)
    # Per product id.
    clicks: Counter[str] = field(default_factory=Counter)
    inquiries: Counter[str] = field(default_factory=Counter)
    impressions: Counter[str] = field(default_factory=Counter)
    views: Counter[str] = field(default_factory=Counter)
    # Per minute since the epoch.
    minutes: dict[int, Minute] = field(default_factory=dict)

    def running(self) -> tuple[int, ...]:
        """The figures that are maxima, not deltas: written again until they stop rising."""
        return (self.peak, self.unique, *self.unique_by.values())

    def carry(self) -> RoomStats:
        """Empty deltas that keep the running maxima, to gather the next batch."""
        return RoomStats(peak=self.peak, unique=self.unique, unique_by=dict(self.unique_by))

    def minute(self) -> Minute:
        index = minute_now()
        found = self.minutes.get(index)
        if found is None:
            found = self.minutes[index] = Minute()
        return found

    def changed_since(self, written: tuple[int, ...]) -> bool:
        """Whether there is anything to write beyond the maxima already stored."""
        return bool(
            self.chats
            or self.watch_seconds
            or self.sessions
            or self.reactions
            or self.clicks
            or self.inquiries
            or self.impressions
            or self.minutes
            or any(now > was for now, was in zip(self.running(), written, strict=True))
        )

    def merge(self, other: RoomStats) -> None:
        self.chats += other.chats
        self.watch_seconds += other.watch_seconds
        self.sessions += other.sessions
        self.reactions.update(other.reactions)
        self.peak = max(self.peak, other.peak)
        self.unique = max(self.unique, other.unique)
        for playback, count in other.unique_by.items():
            self.unique_by[playback] = max(self.unique_by[playback], count)
        for counter, more in (
            (self.clicks, other.clicks),
            (self.inquiries, other.inquiries),
            (self.impressions, other.impressions),
            (self.views, other.views),
        ):
            counter.update(more)
        for index, minute in other.minutes.items():
            self.minutes.setdefault(index, Minute()).merge(minute)


@dataclass
class Room:
    policy: RoomPolicy
    members: set[str] = field(default_factory=set)
    viewers: set[str] = field(default_factory=set)
    remote: int = 0
    pending: Counter[str] = field(default_factory=Counter)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    stats: RoomStats = field(default_factory=RoomStats)
    written: tuple[int, ...] = (0, 0, 0, 0)  # the running maxima as last written
    sent_count: int = -1
    sent_at: float = 0.0
    # The show's products (id -> title), and the viewer keys shown each pinned product: in
    # the current pin, and over the show (impressions count the first, views the second).
    products: dict[str, str] = field(default_factory=dict)
    mentions: Mentions = field(default_factory=lambda: Mentions({}))
    pins: dict[str, set[str]] = field(default_factory=dict)
    seen: dict[str, set[str]] = field(default_factory=dict)

    def catalogue(self, titles: dict[str, str]) -> None:
        """The show's products, as stored."""
        self.products, self.mentions = titles, Mentions(titles)

    def pinned(self, product_id: str, viewer_keys: Iterable[str]) -> None:
        """A pin starts: everyone watching sees it (pinning it again changes nothing here)."""
        if product_id not in self.pins:
            self.pins[product_id] = set()
            for key in viewer_keys:
                self.impress(product_id, key)

    def unpinned(self, product_id: str) -> None:
        self.pins.pop(product_id, None)

    def show_pins(self, viewer_key: str) -> None:
        """A viewer starts watching: they see what is pinned."""
        for product_id in self.pins:
            self.impress(product_id, viewer_key)

    def impress(self, product_id: str, viewer_key: str) -> None:
        shown = self.pins[product_id]
        if viewer_key not in shown:
            shown.add(viewer_key)
            self.stats.impressions[product_id] += 1
            ever = self.seen.setdefault(product_id, set())
            if viewer_key not in ever:
                ever.add(viewer_key)
                self.stats.views[product_id] += 1


async def load_policy(session: AsyncSession, stream_id: str) -> RoomPolicy | None:
    stream = await session.get(Stream, stream_id, populate_existing=True)
    if stream is None:
        return None
    rows = (
        await session.execute(
            select(Sanction.user_id, Sanction.kind).where(Sanction.stream_id == stream_id)
        )
    ).all()
    return RoomPolicy(
        stream_id=stream.id,
        owner_id=stream.owner_id,
        status=stream.status,
        audience=stream.audience,
        enable_chat=stream.enable_chat,
        slow_mode_seconds=stream.slow_mode_seconds,
        muted=frozenset(u for u, k in rows if k == SanctionKind.MUTE),
        banned=frozenset(u for u, k in rows if k == SanctionKind.BAN),
    )


async def load_products(session: AsyncSession, stream_id: str) -> tuple[dict[str, str], list[str]]:
    """The show's products (id -> title) and the ids pinned now."""
    rows = await session.scalars(
        select(StreamProduct)
        .options(selectinload(StreamProduct.product))
        .where(StreamProduct.stream_id == stream_id)
    )
    products = list(rows)
    titles = {r.product_id: r.product.title for r in products}
    return titles, [r.product_id for r in products if r.pinned_at is not None]


def _at_least(column: Any, value: Any) -> Any:
    return case((column < value, value), else_=column)


async def write_stats(session: AsyncSession, stream_id: str, stats: RoomStats) -> None:
    """One UPDATE of the stream row, one per product touched, one upsert per emoji and per
    minute: never a write per event."""
    likes = sum(stats.reactions.values())
    sessions = Stream.watch_sessions + stats.sessions
    watched = Stream.total_watch_seconds + stats.watch_seconds
    await session.execute(
        update(Stream)
        .where(Stream.id == stream_id)
        .values(
            total_likes=Stream.total_likes + likes,
            chat_messages_count=Stream.chat_messages_count + stats.chats,
            total_watch_seconds=watched,
            watch_sessions=sessions,
            average_watch_time=watched / case((sessions > 0, sessions), else_=1),
            peak_viewers=_at_least(Stream.peak_viewers, stats.peak),
            unique_viewers=_at_least(Stream.unique_viewers, stats.unique),
            unique_webrtc_viewers=_at_least(
                Stream.unique_webrtc_viewers, stats.unique_by["webrtc"]
            ),
            unique_hls_viewers=_at_least(Stream.unique_hls_viewers, stats.unique_by["hls"]),
        )
    )
    await _write_products(session, stream_id, stats)
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    for emoji, count in stats.reactions.items():
        statement = insert(StreamReaction).values(stream_id=stream_id, emoji=emoji, count=count)
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=["stream_id", "emoji"],
                set_={"count": StreamReaction.count + statement.excluded.count},
            )
        )
    for index, minute in stats.minutes.items():
        row = insert(StreamMinute).values(
            stream_id=stream_id,
            minute=datetime.fromtimestamp(index * 60, UTC),
            viewers=minute.viewers,
            webrtc_viewers=minute.webrtc_viewers,
            hls_viewers=minute.hls_viewers,
            likes=minute.likes,
            chat_messages=minute.chat_messages,
            clicks=minute.clicks,
        )
        new = row.excluded
        await session.execute(
            row.on_conflict_do_update(
                index_elements=["stream_id", "minute"],
                set_={
                    "viewers": _at_least(StreamMinute.viewers, new.viewers),
                    "webrtc_viewers": _at_least(StreamMinute.webrtc_viewers, new.webrtc_viewers),
                    "hls_viewers": _at_least(StreamMinute.hls_viewers, new.hls_viewers),
                    "likes": StreamMinute.likes + new.likes,
                    "chat_messages": StreamMinute.chat_messages + new.chat_messages,
                    "clicks": StreamMinute.clicks + new.clicks,
                },
            )
        )


async def _write_products(session: AsyncSession, stream_id: str, stats: RoomStats) -> None:
    touched = set(stats.clicks) | set(stats.inquiries) | set(stats.impressions)
    for product_id in sorted(touched):
        await session.execute(
            update(StreamProduct)
            .where(StreamProduct.stream_id == stream_id, StreamProduct.product_id == product_id)
            .values(
                clicks=StreamProduct.clicks + stats.clicks[product_id],
                inquiries=StreamProduct.inquiries + stats.inquiries[product_id],
                impressions=StreamProduct.impressions + stats.impressions[product_id],
                views=StreamProduct.views + stats.views[product_id],
            )
        )
