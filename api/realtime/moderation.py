"""Moderation of a stream's room: delete messages, mute, ban, slow mode.

Each action changes the database inside the caller's transaction and returns a ``RoomChange``
(``api.shows.announcements``);
the caller announces it after commit, so viewers never see a change that was rolled back.
"""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from api.db import utcnow
from api.identity.models import Role, User
from api.realtime.models import ChatMessage
from api.shows.announcements import RoomChange
from api.shows.models import Sanction, SanctionKind, Stream
from api.web.errors import ApiError, forbidden, not_found

STAFF = frozenset({Role.ADMIN, Role.MODERATOR})
MAX_SLOW_MODE_SECONDS = 300


async def moderated_stream(session: AsyncSession, actor: User, stream_id: str) -> Stream:
    stream = await session.get(Stream, stream_id)
    if stream is None:
        raise not_found("Stream")
    if stream.owner_id != actor.id and actor.role not in STAFF:
        raise forbidden("Only the seller and moderators moderate this stream")
    return stream


async def delete_message(
    session: AsyncSession, actor: User, stream_id: str, message_id: str
) -> RoomChange:
    await moderated_stream(session, actor, stream_id)
    message = await session.get(ChatMessage, message_id)
    if message is None or message.stream_id != stream_id or message.deleted_at is not None:
        raise not_found("Message")
    message.deleted_at = utcnow()
    change = RoomChange(stream_id)
    change.events.append(("stream:chat_deleted", {"stream_id": stream_id, "ids": [message.id]}))
    return change


async def sanction(
    session: AsyncSession, actor: User, stream_id: str, user_id: str, kind: SanctionKind
) -> RoomChange:
    stream = await moderated_stream(session, actor, stream_id)
    target = await session.get(User, user_id)
    if target is None:
        raise not_found("User")
    if target.id == stream.owner_id or target.role in STAFF:
        raise ApiError(
            409, "cannot_sanction", "The seller and moderators cannot be muted or banned"
        )
    change = RoomChange(stream_id)
    if await session.get(Sanction, (stream_id, user_id, kind.value)) is None:
        session.add(Sanction(stream_id=stream_id, user_id=user_id, kind=kind, created_by=actor.id))
    if kind is SanctionKind.BAN:
        hidden = await session.scalars(
            update(ChatMessage)
            .where(
                ChatMessage.stream_id == stream_id,
                ChatMessage.user_id == user_id,
                ChatMessage.deleted_at.is_(None),
            )
            .values(deleted_at=utcnow())
            .returning(ChatMessage.id)
        )
        ids = sorted(hidden)
        if ids:
            change.events.append(("stream:chat_deleted", {"stream_id": stream_id, "ids": ids}))
        change.banned.append(user_id)
    await session.flush()
    return change


async def lift(
    session: AsyncSession, actor: User, stream_id: str, user_id: str, kind: SanctionKind
) -> RoomChange:
    await moderated_stream(session, actor, stream_id)
    await session.execute(
        delete(Sanction).where(
            Sanction.stream_id == stream_id, Sanction.user_id == user_id, Sanction.kind == kind
        )
    )
    return RoomChange(stream_id)


async def slow_mode(session: AsyncSession, actor: User, stream_id: str, seconds: int) -> RoomChange:
    if not 0 <= seconds <= MAX_SLOW_MODE_SECONDS:
        raise ApiError(422, "invalid", f"seconds: 0 to {MAX_SLOW_MODE_SECONDS}")
    stream = await moderated_stream(session, actor, stream_id)
    stream.slow_mode_seconds = seconds
    change = RoomChange(stream_id)
    change.events.append(
        ("stream:settings", {"stream_id": stream_id, "slow_mode_seconds": seconds})
    )
    return change


async def sanctions(session: AsyncSession, stream_id: str) -> list[Sanction]:
    """Who is muted or banned in the stream, oldest first, with their accounts."""
    rows = await session.scalars(
        select(Sanction)
        .options(joinedload(Sanction.user))
        .where(Sanction.stream_id == stream_id)
        .order_by(Sanction.created_at)
    )
    return list(rows)
