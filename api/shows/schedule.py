"""Planned shows: "Remind me", the reminder before the start, and calling a show off.

A viewer asks to be reminded of a planned show on the channels they pick (push to their
subscribed devices, email). ``Reminders`` queues the reminder notice of each planned show whose
start is at most ``REMIND_BEFORE`` away, once per start time, so a show moved later is reminded
again at its new time; the start itself is the show going live, whose notice reaches whoever
asked too (``api.notifications.fanout``). Moving a show (``PATCH .../settings``) and cancelling
it tell its followers and whoever asked.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from aiohttp import web
from pydantic import model_validator
from sqlalchemy import Select, and_, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.accounts.users import STAFF, require_user
from api.db import utcnow
from api.notifications.fanout import key_of
from api.notifications.models import Fanout, Notice, PushSubscription, ShowReminder
from api.shows.access import owned_stream, viewable_stream
from api.shows.lifecycle import announce_status, show_of, stream_webhook, tell, transition
from api.shows.models import Stream
from api.shows.schemas import StreamOut
from api.shows.streams import stream_out
from api.web.context import Context
from api.web.errors import ApiError, not_found
from api.web.routing import Api
from api.web.schemas import Input, Output
from live.states import StreamStatus

log = logging.getLogger(__name__)
api = Api()
REMIND_BEFORE = timedelta(minutes=15)
DUE_BATCH = 100  # planned shows read per page, and reminders queued per tick


class ReminderIn(Input):
    push: bool = False
    email: bool = False

    @model_validator(mode="after")
    def one_channel(self) -> ReminderIn:
        if not (self.push or self.email):
            raise ValueError("Pick push, email or both")
        return self


class ReminderOut(Output):
    push: bool
    email: bool


def _planned(stream: Stream) -> None:
    if stream.status != StreamStatus.CREATED:
        raise ApiError(
            409,
            "not_planned",
            f"The show is {stream.status}: only a planned show can be reminded",
            {"status": stream.status},
        )


@api.route(
    "GET",
    "/api/v1/streams/{stream_id}/reminder",
    summary="Your reminder of a planned show",
    tag="streams",
    response=ReminderOut,
    errors=(401, 403, 404),
    description="404 `not_found` when you have not asked to be reminded.",
)
async def get_reminder(ctx: Context, stream_id: str) -> ReminderOut:
    user = require_user(ctx)
    await viewable_stream(ctx, stream_id)
    reminder = await ctx.session.get(ShowReminder, (stream_id, user.id))
    if reminder is None:
        raise not_found("Reminder")
    return ReminderOut.model_validate(reminder)


@api.route(
    "PUT",
    "/api/v1/streams/{stream_id}/reminder",
    summary="Remind me of a planned show",
    tag="streams",
    body=ReminderIn,
    response=ReminderOut,
    errors=(401, 403, 404, 409, 413, 415, 422),
    description="Reminded 15 minutes before its start and when it goes live, on the channels "
    "picked: `push` to each device this account subscribed (409 `no_device` without one), "
    "`email` to its address. 409 `not_planned` once the show started or was cancelled.",
)
async def remind_me(ctx: Context, stream_id: str, body: ReminderIn) -> ReminderOut:
    user = require_user(ctx)
    stream = await viewable_stream(ctx, stream_id)
    _planned(stream)
    device = exists().where(PushSubscription.user_id == user.id)
    if body.push and not await ctx.session.scalar(select(device)):
        raise ApiError(409, "no_device", "Allow notifications on this device first")
    reminder = await ctx.session.get(ShowReminder, (stream_id, user.id))
    if reminder is None:
        reminder = ShowReminder(stream_id=stream_id, user_id=user.id)
        ctx.session.add(reminder)
    reminder.push, reminder.email = body.push, body.email
    await ctx.session.flush()
    return ReminderOut.model_validate(reminder)


@api.route(
    "DELETE",
    "/api/v1/streams/{stream_id}/reminder",
    summary="No reminder of this show",
    tag="streams",
    status=204,
    errors=(401, 404),
)
async def forget_reminder(ctx: Context, stream_id: str) -> None:
    user = require_user(ctx)
    reminder = await ctx.session.get(ShowReminder, (stream_id, user.id))
    if reminder is None:
        raise not_found("Reminder")
    await ctx.session.delete(reminder)


@api.route(
    "POST",
    "/api/v1/streams/{stream_id}/cancel",
    summary="Cancel a planned show",
    tag="streams",
    response=StreamOut,
    errors=(401, 403, 404, 409),
    description="A show that never went live becomes `cancelled`, for good: its page says so, "
    "its followers (when it notifies them) and whoever asked to be reminded are told, and the "
    "`stream.cancelled` webhook goes out. 409 `invalid_status` once it went live.",
)
async def cancel_show(ctx: Context, stream_id: str) -> StreamOut:
    stream = await owned_stream(ctx, stream_id, staff=STAFF)
    source = stream.status
    transition(stream, StreamStatus.CANCELLED)
    stream.publish_token_hash = None
    await stream_webhook(ctx.session, stream, source)
    await ctx.session.flush()
    services = ctx.services

    async def announce() -> None:
        await announce_status(services.rooms, services.bus, stream_id, StreamStatus.CANCELLED)

    ctx.after_commit(announce)
    return stream_out(ctx, stream)


class Reminders:
    """Queues the reminders that came due; ``tick`` runs every second on every node, and a
    reminder queued twice is queued once (its fan-out's key).

    ``clock`` is when it is now: a test sets it to move through a show's schedule.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        reads: async_sessionmaker[AsyncSession],
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessions, self._reads = sessions, reads
        self.clock = clock

    async def tick(self) -> int:
        """Queue what came due; how many reminders it queued (``DUE_BATCH`` at most)."""
        now = self.clock()
        todo: list[Stream] = []
        after: tuple[datetime, str] | None = None
        async with self._reads() as session:
            # Page through the window in start order: the shows already reminded are skipped
            # here, so however many of them there are, none keeps a later one waiting.
            while len(todo) < DUE_BATCH:
                due = list(await session.scalars(_due(now, after)))
                if not due:
                    break
                rows = await session.execute(
                    select(Fanout.stream_id, Fanout.key).where(
                        Fanout.stream_id.in_([s.id for s in due]), Fanout.kind == Notice.REMINDER
                    )
                )
                queued = {(row.stream_id, row.key) for row in rows}
                todo += [
                    s for s in due if (s.id, key_of(Notice.REMINDER, show_of(s))) not in queued
                ]
                last = due[-1]
                if len(due) < DUE_BATCH or last.scheduled_at is None:
                    break  # the window's last page
                after = (last.scheduled_at, last.id)
        todo = todo[:DUE_BATCH]
        if todo:
            async with self._sessions.begin() as session:
                for stream in todo:
                    await tell(session, Notice.REMINDER, stream)
            log.info("queued reminders of %d shows", len(todo))
        return len(todo)


def _due(now: datetime, after: tuple[datetime, str] | None) -> Select[Stream]:
    """A page of the planned shows someone asked to be reminded of that start within
    ``REMIND_BEFORE`` of ``now``, after ``(scheduled_at, id)`` if given."""
    query = select(Stream).where(
        Stream.status == StreamStatus.CREATED,
        Stream.scheduled_at > now,
        Stream.scheduled_at <= now + REMIND_BEFORE,
        exists().where(ShowReminder.stream_id == Stream.id),
    )
    if after is not None:
        at, stream_id = after
        query = query.where(
            or_(Stream.scheduled_at > at, and_(Stream.scheduled_at == at, Stream.id > stream_id))
        )
    return query.order_by(Stream.scheduled_at, Stream.id).limit(DUE_BATCH)


REMINDERS = web.AppKey("reminders", Reminders)
