"""A notice of a show: queue its fan-out, then expand it into notifications, a batch at a time.

Who hears a notice (its ``audience``, fixed when it is queued): the seller's followers when the
show asks for them (``notify_followers``), the accounts around the seller when it asks for its
neighbourhood (``notify_neighborhood``, going live only), and whoever asked to be reminded of
the show (``show_reminders``). Followers and neighbours hear on each channel they keep on for
every seller (``notification_settings``) and have not turned off for this one
(``notification_mutes``); whoever asked to be reminded, on the channels they picked. Push only
to users with a subscribed device, email only when this node can send email; a user in two of
these audiences is told once per channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, exists, func, or_, select, union_all
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from api.accounts.whereabouts import neighbourhood
from api.db import new_id, utcnow
from api.identity.models import Follow, User
from api.notifications.models import (
    Channel,
    Fanout,
    JobState,
    Notice,
    Notification,
    NotificationMute,
    NotificationSettings,
    PushSubscription,
    ShowReminder,
)


@dataclass(frozen=True)
class Show:
    """What a notice says of its show, and whom the show asked to tell."""

    id: str
    seller_id: str
    title: str
    notify_followers: bool
    notify_neighborhood: bool
    scheduled_at: datetime | None = None


def key_of(notice: Notice, show: Show) -> str:
    """``live`` and ``cancelled`` happen once to a show; a reminder and a reschedule once per
    start time."""
    if notice in (Notice.REMINDER, Notice.RESCHEDULED) and show.scheduled_at is not None:
        return f"{notice.value}@{show.scheduled_at.isoformat()}"
    return notice.value


async def queue(session: AsyncSession, notice: Notice, show: Show) -> None:
    """Queue a notice of ``show`` in the caller's transaction; queued again (the same key), it
    changes nothing. A notice nobody would hear is not queued at all."""
    seller = await session.scalar(select(User).where(User.id == show.seller_id))
    if seller is None:
        return
    audience = {
        "followers": show.notify_followers and notice is not Notice.REMINDER,
        "cells": neighbourhood(seller.home_cell)
        if notice is Notice.LIVE and show.notify_neighborhood and seller.home_cell
        else [],
    }
    if not await _anyone(session, show, audience):
        return
    when = show.scheduled_at.isoformat() if show.scheduled_at else ""
    await session.execute(
        _insert_for(session)(Fanout)
        .values(
            id=new_id(),
            stream_id=show.id,
            kind=notice.value,
            key=key_of(notice, show),
            seller_id=show.seller_id,
            audience=audience,
            message={"title": show.title, "seller": seller.display_name, "at": when},
            state=JobState.QUEUED,
            cursor="",
            attempts=0,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing()
    )


async def _anyone(session: AsyncSession, show: Show, audience: dict[str, Any]) -> bool:
    """Whether the fan-out would reach anyone: one query over the audience's parts."""
    reminded = exists().where(ShowReminder.stream_id == show.id)
    found = [reminded]
    if audience["followers"]:
        found.append(exists().where(Follow.seller_id == show.seller_id))
    if audience["cells"]:
        found.append(
            exists().where(User.home_cell.in_(audience["cells"]), User.id != show.seller_id)
        )
    return bool(await session.scalar(select(or_(*found))))


@dataclass(frozen=True)
class Batch:
    """What one step of a fan-out wrote: how many users it read, how many notifications."""

    users: int
    notifications: int
    cursor: str


def _flag(condition: Any) -> Any:
    return case((condition, 1), else_=0)


def _by_settings(users: Any, seller_id: str, cursor: str, limit: int) -> Any:
    """``users`` (a user id column, with its table's conditions applied by the caller) with the
    channels each keeps on for ``seller_id``."""

    def wants(channel: Channel, default: bool, setting: Any) -> Any:
        muted = exists().where(
            NotificationMute.user_id == users,
            NotificationMute.seller_id == seller_id,
            NotificationMute.channel == channel.value,
        )
        return and_(func.coalesce(setting, default), ~muted)

    device = exists().where(PushSubscription.user_id == users)
    return (
        select(
            users.label("user_id"),
            _flag(and_(wants(Channel.PUSH, True, NotificationSettings.push), device)).label("push"),
            _flag(wants(Channel.EMAIL, False, NotificationSettings.email)).label("email"),
        )
        .outerjoin(NotificationSettings, NotificationSettings.user_id == users)
        .where(users > cursor)
        .order_by(users)
        .limit(limit)
    )


def _audience(fanout: Fanout, cursor: str, limit: int) -> Any:
    """The next ``limit`` users after ``cursor`` with the channels each is told on. Each part
    is cut at ``limit`` too: the first ``limit`` of the union are among them."""
    audience = fanout.audience
    parts = []
    if audience["followers"]:
        parts.append(
            _by_settings(Follow.follower_id, fanout.seller_id, cursor, limit).where(
                Follow.seller_id == fanout.seller_id
            )
        )
    if audience["cells"]:
        parts.append(
            _by_settings(User.id, fanout.seller_id, cursor, limit).where(
                User.home_cell.in_(audience["cells"]), User.id != fanout.seller_id
            )
        )
    device = exists().where(PushSubscription.user_id == ShowReminder.user_id)
    parts.append(
        select(
            ShowReminder.user_id,
            _flag(and_(ShowReminder.push, device)).label("push"),
            _flag(ShowReminder.email).label("email"),
        )
        .where(ShowReminder.stream_id == fanout.stream_id, ShowReminder.user_id > cursor)
        .order_by(ShowReminder.user_id)
        .limit(limit)
    )
    union = union_all(*(select(part.subquery()) for part in parts)).subquery()
    return (
        select(
            union.c.user_id,
            func.max(union.c.push).label("push"),
            func.max(union.c.email).label("email"),
        )
        .group_by(union.c.user_id)
        .order_by(union.c.user_id)
        .limit(limit)
    )


async def expand(
    session: AsyncSession, fanout: Fanout, channels: frozenset[Channel], limit: int
) -> Batch:
    """Write the notifications of the next ``limit`` users after ``fanout.cursor``; a
    notification already there (a batch written twice) is left as it is."""
    rows = (await session.execute(_audience(fanout, fanout.cursor, limit))).all()
    now = utcnow()
    values = [
        _notification(fanout, row.user_id, channel, now)
        for row in rows
        for channel in channels
        if getattr(row, channel.value)
    ]
    if values:
        insert = _insert_for(session)
        # executemany: one compiled statement, not a VALUES list of 5,000 parameters
        await session.execute(insert(Notification).on_conflict_do_nothing(), values)
    cursor = rows[-1].user_id if rows else fanout.cursor
    return Batch(len(rows), len(values), cursor)


def _notification(fanout: Fanout, user_id: str, channel: Channel, now: datetime) -> dict[str, Any]:
    return {
        "id": new_id(),
        "fanout_id": fanout.id,
        "stream_id": fanout.stream_id,
        "user_id": user_id,
        "channel": channel.value,
        "state": JobState.QUEUED.value,
        "attempts": 0,
        "next_attempt_at": now,
        "sent_to": [],
        "created_at": now,
    }


def _insert_for(session: AsyncSession) -> Any:
    dialect = session.get_bind().dialect.name
    return postgresql.insert if dialect == "postgresql" else sqlite.insert
