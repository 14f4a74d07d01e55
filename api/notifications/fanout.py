"""A show went live: queue its fan-out, then expand it into notifications, a batch at a time.

Who is told: the seller's followers (the show's ``notify_followers``), on each channel they
keep on for every seller (``notification_settings``) and have not turned off for this one
(``notification_mutes``); push only to followers with a subscribed device, email only when this
node can send email. The neighbourhood (``notify_neighborhood``) is a second audience of the
same fan-out: another query beside ``_followers`` once neighbourhoods are places.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from api.db import new_id, utcnow
from api.identity.models import Follow, User
from api.notifications.models import (
    Channel,
    Fanout,
    JobState,
    Notification,
    NotificationMute,
    NotificationSettings,
    PushSubscription,
)


async def queue_go_live(session: AsyncSession, stream_id: str, seller_id: str, title: str) -> None:
    """Queue the fan-out of a show that just went live, in the caller's transaction; a show
    goes live once, and a second call for it changes nothing. A seller nobody follows gets
    no fan-out at all."""
    if await session.scalar(select(exists().where(Follow.seller_id == seller_id))) is not True:
        return
    seller = await session.scalar(select(User.display_name).where(User.id == seller_id))
    insert = _insert_for(session)
    await session.execute(
        insert(Fanout)
        .values(
            id=new_id(),
            stream_id=stream_id,
            seller_id=seller_id,
            message={"title": title, "seller": seller or ""},
            state=JobState.QUEUED,
            cursor="",
            attempts=0,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing()
    )


@dataclass(frozen=True)
class Batch:
    """What one step of a fan-out wrote: how many followers it read, how many notifications."""

    followers: int
    notifications: int
    cursor: str


def _wants(channel: Channel, default: bool, setting: Any, seller_id: str) -> Any:
    muted = exists().where(
        NotificationMute.user_id == Follow.follower_id,
        NotificationMute.seller_id == seller_id,
        NotificationMute.channel == channel.value,
    )
    return and_(func.coalesce(setting, default), ~muted)


def _followers(seller_id: str, cursor: str, limit: int) -> Any:
    device = exists().where(PushSubscription.user_id == Follow.follower_id)
    return (
        select(
            Follow.follower_id,
            and_(_wants(Channel.PUSH, True, NotificationSettings.push, seller_id), device).label(
                "push"
            ),
            _wants(Channel.EMAIL, False, NotificationSettings.email, seller_id).label("email"),
        )
        .outerjoin(NotificationSettings, NotificationSettings.user_id == Follow.follower_id)
        .where(Follow.seller_id == seller_id, Follow.follower_id > cursor)
        .order_by(Follow.follower_id)
        .limit(limit)
    )


async def expand(
    session: AsyncSession, fanout: Fanout, channels: frozenset[Channel], limit: int
) -> Batch:
    """Write the notifications of the next ``limit`` followers after ``fanout.cursor``; a
    notification already there (a batch written twice) is left as it is."""
    rows = (await session.execute(_followers(fanout.seller_id, fanout.cursor, limit))).all()
    now = utcnow()
    values = [
        _notification(fanout, row.follower_id, channel, now)
        for row in rows
        for channel in channels
        if getattr(row, channel.value)
    ]
    if values:
        insert = _insert_for(session)
        # executemany: one compiled statement, not a VALUES list of 5,000 parameters
        await session.execute(insert(Notification).on_conflict_do_nothing(), values)
    cursor = rows[-1].follower_id if rows else fanout.cursor
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
