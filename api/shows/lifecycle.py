"""A stream's lifecycle: the one place its status changes.

created -> live -> (reconnecting -> live)* -> ended, or interrupted when its node died mid-show;
created -> cancelled when the seller calls a planned show off.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.db import utcnow
from api.notifications.fanout import Show, queue
from api.notifications.models import Notice
from api.shows.models import Stream
from api.web.context import Rooms
from api.web.errors import ApiError
from api.webhooks import webhooks
from live.messages import StatusChanged
from live.states import FINISHED, TRANSITIONS, StreamStatus
from twins.bus import Bus

S = StreamStatus


class InvalidTransition(ApiError):
    def __init__(self, stream: Stream, target: StreamStatus) -> None:
        super().__init__(
            409,
            "invalid_status",
            f"A {stream.status} stream cannot become {target}",
            {"status": stream.status, "requested": target.value},
        )


def transition(stream: Stream, target: StreamStatus, now: datetime | None = None) -> None:
    """Move ``stream`` to ``target`` or raise 409 with its current status."""
    if target not in TRANSITIONS[StreamStatus(stream.status)]:
        raise InvalidTransition(stream, target)
    now = now or utcnow()
    stream.status = target
    if target is S.LIVE and stream.started_at is None:
        stream.started_at = now
    if target in FINISHED:
        stream.ended_at = now


def ensure_not_finished(stream: Stream) -> None:
    if stream.status in FINISHED:
        raise ApiError(
            409, "stream_finished", f"The stream is {stream.status}", {"status": stream.status}
        )


def show_of(stream: Stream) -> Show:
    return Show(
        stream.id,
        stream.owner_id,
        stream.title,
        stream.notify_followers,
        stream.notify_neighborhood,
        stream.scheduled_at,
    )


async def tell(session: AsyncSession, notice: Notice, stream: Stream) -> None:
    """Queue a notice of ``stream`` for its audience (``api.notifications.fanout``)."""
    await queue(session, notice, show_of(stream))


async def stream_webhook(session: AsyncSession, stream: Stream, source: str) -> None:
    """Queue stream.live (the first time media arrived), stream.cancelled or stream.ended for
    the seller's shop, and the notice of the first two for the show's audience."""
    event = None
    if stream.status == S.LIVE and source == S.CREATED:
        event = "stream.live"
    elif stream.status == S.CANCELLED:
        event = "stream.cancelled"
    elif stream.status in FINISHED:
        event = "stream.ended"
    if event is not None:
        data = {
            "id": stream.id,
            "title": stream.title,
            "status": stream.status,
            "started_at": stream.started_at.isoformat() if stream.started_at else None,
            "ended_at": stream.ended_at.isoformat() if stream.ended_at else None,
        }
        await webhooks.enqueue(session, stream.owner_id, event, data)
    if event == "stream.live":
        await tell(session, Notice.LIVE, stream)
    elif event == "stream.cancelled":
        await tell(session, Notice.CANCELLED, stream)


async def announce_status(rooms: Rooms, bus: Bus, stream_id: str, status: StreamStatus) -> None:
    """Tell the stream's viewers and every node that its status changed (after commit)."""
    await rooms.to_stream(stream_id, "stream:status", {"stream_id": stream_id, "status": status})
    await bus.publish(StatusChanged(stream_id, status.value))


class StreamLifecycle:
    """Status changes driven by the media plane (media arrived, publisher gone)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], rooms: Rooms, bus: Bus) -> None:
        self._sessions = sessions
        self._rooms = rooms
        self._bus = bus

    async def media_started(self, stream_id: str) -> bool:
        """The publisher's media arrives: created or reconnecting -> live."""
        return await self._move(stream_id, S.LIVE, frozenset({S.CREATED, S.RECONNECTING}))

    async def publisher_lost(self, stream_id: str) -> bool:
        """The publisher went away: live -> reconnecting, while the grace period runs."""
        return await self._move(stream_id, S.RECONNECTING, frozenset({S.LIVE}))

    async def interrupted(self, stream_id: str) -> bool:
        """The node carrying the show died mid-show: live or reconnecting -> interrupted."""
        return await self._move(stream_id, S.INTERRUPTED, frozenset({S.LIVE, S.RECONNECTING}))

    async def publisher_gone(self, stream_id: str) -> bool:
        """The grace period ran out: reconnecting -> ended."""
        return await self._move(stream_id, S.ENDED, frozenset({S.RECONNECTING}))

    async def running(self) -> list[str]:
        """Streams whose media should be flowing somewhere: live or reconnecting."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(Stream.id).where(Stream.status.in_([S.LIVE, S.RECONNECTING]))
            )
            return list(rows)

    async def _move(
        self, stream_id: str, target: StreamStatus, sources: frozenset[StreamStatus]
    ) -> bool:
        async with self._sessions.begin() as session:
            stream = await session.scalar(
                select(Stream).where(Stream.id == stream_id).with_for_update()
            )
            if stream is None:
                return False  # deleted meanwhile: nothing to move
            source = stream.status
            changed = source in sources
            if changed:
                transition(stream, target)
                await stream_webhook(session, stream, source)
                if target in FINISHED:
                    stream.publish_token_hash = None
                    await self._rooms.flush(stream_id, session)
        if changed:
            await announce_status(self._rooms, self._bus, stream_id, target)
        return changed
