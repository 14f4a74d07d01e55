"""Chat lines: what we accept as text, how a line is stored, and how it reaches the room."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import joinedload

from api.identity.models import User
from api.realtime.models import ChatMessage
from api.realtime.payloads import Refusal, retry_seconds
from api.realtime.rooms import Member, Room
from twins.counters import Counters
from twins.ratelimit import Limit, RateLimiter

MAX_CHARS = 500
CHAT_LIMIT = Limit(rate=5, burst=10)
# Chat lines sent within this window reach each viewer as one frame (stream:chat_batch):
# per-viewer cost is per frame, so a busy room costs a frame per window, not per line.
CHAT_TICK = 0.05
HISTORY = 50

# Bidirectional controls can make a line read differently from what was typed.
_BIDI = dict.fromkeys(map(ord, "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"), None) | (
    dict.fromkeys(range(0x2066, 0x206A), None)
)
_SPACES = re.compile(r"\s+")


def clean_text(text: str) -> str:
    """Plain one-line text: controls become spaces, bidi overrides go, spaces collapse."""
    text = text.translate(_BIDI)
    text = "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in text)
    return _SPACES.sub(" ", text).strip()


def message_out(message: ChatMessage, author: User) -> dict[str, Any]:
    return {
        "id": message.id,
        "stream_id": message.stream_id,
        "user": {"id": author.id, "display_name": author.display_name, "role": author.role},
        "text": message.text,
        "created_at": message.created_at.isoformat(),
    }


async def store(session: AsyncSession, stream_id: str, author: User, text: str) -> dict[str, Any]:
    message = ChatMessage(stream_id=stream_id, user_id=author.id, text=text)
    session.add(message)
    await session.flush()
    return message_out(message, author)


async def history(
    session: AsyncSession, stream_id: str, limit: int = HISTORY
) -> list[dict[str, Any]]:
    """The latest visible messages, oldest first."""
    rows = await session.scalars(
        select(ChatMessage)
        .options(joinedload(ChatMessage.user))
        .where(ChatMessage.stream_id == stream_id, ChatMessage.deleted_at.is_(None))
        .order_by(ChatMessage.created_at.desc(), ChatMessage.id.desc())
        .limit(limit)
    )
    return [message_out(m, m.user) for m in reversed(list(rows))]


class ChatLines:
    """A room's chat: each accepted line is stored at once, then sent with the lines of the same
    50 ms window as one frame (``stream:chat``, or ``stream:chat_batch`` for several)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        limiter: RateLimiter,
        counters: Counters,
        to_stream: Callable[[str, str, dict[str, Any]], Awaitable[None]],
    ) -> None:
        self._sessions = sessions
        self._limiter = limiter
        self._counters = counters
        self._to_stream = to_stream

    async def add(self, member: Member, room: Room, text: str) -> dict[str, Any]:
        """Store ``member``'s line in ``room`` and queue it for the room, or refuse it."""
        user = member.user
        if user is None:
            raise Refusal("sign_in_required", "sign in to chat")
        policy = room.policy
        if not policy.enable_chat:
            raise Refusal("chat_disabled", "chat is off for this stream")
        if policy.finished:
            raise Refusal("stream_ended", "the stream has ended")
        if user.id in policy.banned:
            raise Refusal("banned", "you are banned from this stream")
        if user.id in policy.muted:
            raise Refusal("muted", "you are muted in this stream")
        text = clean_text(text)
        if not text:
            raise Refusal("empty", "write something first")
        if len(text) > MAX_CHARS:
            raise Refusal("too_long", f"at most {MAX_CHARS} characters")
        wait = await self._limiter.acquire(f"chat:{user.id}", CHAT_LIMIT)
        if wait:
            raise Refusal("rate_limited", "slow down", retry_after=retry_seconds(wait))
        if policy.slow_mode_seconds and not policy.is_moderator(user):
            wait = await self._counters.slow_mode(
                room.policy.stream_id, user.id, policy.slow_mode_seconds
            )
            if wait:
                raise Refusal("slow_mode", "slow mode is on", retry_after=retry_seconds(wait))
        async with self._sessions.begin() as session:
            message = await store(session, room.policy.stream_id, user, text)
        room.stats.chats += 1
        room.stats.minute().chat_messages += 1
        if member.sid in room.viewers:
            room.stats.inquiries.update(room.mentions(text))
        room.outbox.append(message)
        return message

    async def tick(self, rooms: dict[str, Room]) -> None:
        for stream_id, room in list(rooms.items()):
            if not room.outbox:
                continue
            lines, room.outbox = room.outbox, []
            if len(lines) == 1:
                await self._to_stream(stream_id, "stream:chat", lines[0])
            else:
                await self._to_stream(
                    stream_id, "stream:chat_batch", {"stream_id": stream_id, "messages": lines}
                )
