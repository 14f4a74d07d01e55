"""Reactions: taps on an emoji, counted in memory and sent to the room four times a second.

A reaction is never written one by one: each tick adds the room's new ones to its analytics and
to ``Counters`` (the totals shared by every node) and sends them as one ``stream:reactions``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.analytics.models import StreamReaction
from api.realtime.payloads import Refusal, retry_seconds
from api.realtime.rooms import Member, Room
from twins.counters import Counters
from twins.ratelimit import Limit, RateLimiter

EMOJIS = frozenset(
    {"\u2764\ufe0f", "\U0001f525", "\U0001f44f", "\U0001f602", "\U0001f62e", "\U0001f48e"}
)
REACTION_LIMIT = Limit(rate=10, burst=20)
REACTION_TICK = 0.25


class Reactions:
    def __init__(
        self,
        limiter: RateLimiter,
        counters: Counters,
        to_stream: Callable[[str, str, dict[str, Any]], Awaitable[None]],
    ) -> None:
        self._limiter = limiter
        self._counters = counters
        self._to_stream = to_stream

    async def add(self, member: Member, room: Room, emoji: str) -> None:
        """Count one reaction of ``member`` in ``room``, or refuse it."""
        if room.policy.finished:
            raise Refusal("stream_ended", "the stream has ended")
        if emoji not in EMOJIS:
            raise Refusal("unknown_emoji", "use one of " + " ".join(sorted(EMOJIS)))
        if member.user and member.user.id in room.policy.banned:
            raise Refusal("banned", "you are banned from this stream")
        wait = await self._limiter.acquire(f"react:{member.viewer_key}", REACTION_LIMIT)
        if wait:
            raise Refusal("rate_limited", "slow down", retry_after=retry_seconds(wait))
        room.pending[emoji] += 1

    async def tick(self, rooms: dict[str, Room]) -> None:
        for stream_id, room in list(rooms.items()):
            if not room.pending:
                continue
            counts, room.pending = dict(room.pending), type(room.pending)()
            room.stats.reactions.update(counts)
            room.stats.minute().likes += sum(counts.values())
            await self._counters.add_reactions(stream_id, counts)
            await self._to_stream(
                stream_id, "stream:reactions", {"stream_id": stream_id, "counts": counts}
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
