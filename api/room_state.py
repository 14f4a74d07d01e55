"""This node's view of a stream's room: who is in it, its rules, and its unflushed analytics."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import case, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from api.lifecycle import FINISHED
from api.models import Role, Sanction, SanctionKind, Stream, StreamReaction, User
from server.counters import Counters

STAFF = frozenset({Role.ADMIN, Role.MODERATOR})


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

    def counts_as_viewer(self, policy: RoomPolicy) -> bool:
        """Viewers of a running show count; the seller, and visitors after the end, do not."""
        return not policy.finished and (self.user is None or self.user.id != policy.owner_id)


@dataclass
class RoomStats:
    """Analytics gathered since the last flush: deltas, plus the running peak and uniques."""

    chats: int = 0
    watch_seconds: float = 0.0
    sessions: int = 0
    peak: int = 0
    unique: int = 0
    reactions: Counter[str] = field(default_factory=Counter)

    def changed_since(self, peak: int, unique: int) -> bool:
        """Whether there is anything to write beyond the ``peak``/``unique`` already stored."""
        return bool(
            self.chats
            or self.watch_seconds
            or self.sessions
            or self.reactions
            or self.peak > peak
            or self.unique > unique
        )

    def merge(self, other: RoomStats) -> None:
        self.chats += other.chats
        self.watch_seconds += other.watch_seconds
        self.sessions += other.sessions
        self.reactions.update(other.reactions)
        self.peak = max(self.peak, other.peak)
        self.unique = max(self.unique, other.unique)


@dataclass
class Room:
    policy: RoomPolicy
    members: set[str] = field(default_factory=set)
    viewers: set[str] = field(default_factory=set)
    remote: int = 0
    pending: Counter[str] = field(default_factory=Counter)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    stats: RoomStats = field(default_factory=RoomStats)
    written: tuple[int, int] = (0, 0)  # peak and unique as last written
    sent_count: int = -1
    sent_at: float = 0.0


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


async def reaction_totals(
    session: AsyncSession, counters: Counters, stream_id: str
) -> dict[str, int]:
    totals = await counters.reactions(stream_id)
    if totals is None:
        rows = await session.execute(
            select(StreamReaction.emoji, StreamReaction.count).where(
                StreamReaction.stream_id == stream_id
            )
        )
        stored = {emoji: count for emoji, count in rows.all()}
        await counters.seed_reactions(stream_id, stored)
        totals = await counters.reactions(stream_id) or stored
    return totals


def _at_least(column: Any, value: int) -> Any:
    return case((column < value, value), else_=column)


async def write_stats(session: AsyncSession, stream_id: str, stats: RoomStats) -> None:
    """One UPDATE of the stream row and one upsert per emoji: never a write per event."""
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
        )
    )
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
