"""Show notifications: devices, preferences, reminders asked for, the fan-out of each notice of
a show and each notification."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from api.db import ID_LENGTH, Base, check_in, new_id, utcnow


class Channel(enum.StrEnum):
    PUSH = "push"  # Web Push to each of the user's subscribed devices
    EMAIL = "email"  # to the account's address, over SMTP


class Notice(enum.StrEnum):
    """What a fan-out tells, and so who hears it (``api.notifications.fanout``)."""

    LIVE = "live"  # the show started: followers, neighbours, who asked to be reminded
    REMINDER = "reminder"  # it starts in 15 minutes: who asked to be reminded
    RESCHEDULED = "rescheduled"  # it moved: followers and who asked to be reminded
    CANCELLED = "cancelled"  # it was called off: the same


class JobState(enum.StrEnum):
    """Of a fan-out and of a notification: queued -> running -> done | failed (running again
    when its worker's lease ran out)."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class PushSubscription(Base):
    """One device's Web Push subscription (the browser's PushSubscription, RFC 8030)."""

    __tablename__ = "push_subscriptions"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    endpoint: Mapped[str] = mapped_column(String(2048), unique=True)
    p256dh: Mapped[str] = mapped_column(String(128))  # the device's ECDH public key, base64url
    auth: Mapped[str] = mapped_column(String(64))  # its authentication secret, base64url
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class NotificationSettings(Base):
    """A user's channels for every seller; no row means the defaults (push on, email off)."""

    __tablename__ = "notification_settings"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    push: Mapped[bool] = mapped_column(Boolean, default=True)
    email: Mapped[bool] = mapped_column(Boolean, default=False)


class NotificationMute(Base):
    """A channel a user turned off for one seller (the settings, or an unsubscribe link)."""

    __tablename__ = "notification_mutes"
    __table_args__ = (CheckConstraint(check_in("channel", Channel), name="channel"),)

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    seller_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    channel: Mapped[str] = mapped_column(String(8), primary_key=True)


class ShowReminder(Base):
    """A user's "Remind me" for a planned show, on the channels they picked."""

    __tablename__ = "show_reminders"

    stream_id: Mapped[str] = mapped_column(
        ForeignKey("streams.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    push: Mapped[bool] = mapped_column(Boolean)
    email: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Fanout(Base):
    """One notice of a show, expanded into notifications a batch of its audience at a time.

    ``key`` makes each notice happen once: ``live`` and ``cancelled`` once per show, a reminder
    and a reschedule once per start time (``reminder@<time>``). ``cursor`` is the last user id
    expanded: it moves in the transaction that writes the batch, so a worker that dies costs at
    most the batch it was writing.
    """

    __tablename__ = "notification_fanouts"
    __table_args__ = (
        UniqueConstraint("stream_id", "key"),
        CheckConstraint(check_in("state", JobState), name="state"),
        CheckConstraint(check_in("kind", Notice), name="kind"),
        Index("ix_notification_fanouts_claim", "state", "lease_expires_at"),
    )

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    stream_id: Mapped[str] = mapped_column(ForeignKey("streams.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(64))
    seller_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # who hears it besides who asked to be reminded: {"followers": bool, "cells": [H3 cells]}
    audience: Mapped[dict[str, Any]] = mapped_column(JSON)
    # the title, the seller's name and, for a reminder or a reschedule, the start time
    message: Mapped[dict[str, str]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(8), default=JobState.QUEUED)
    cursor: Mapped[str] = mapped_column(String(ID_LENGTH), default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Notification(Base):
    """One user told one notice on one channel: at most one, by the unique constraint.

    A push notification goes to each of the user's devices; ``sent_to`` keeps the devices that
    took it, so a retry after one device failed sends only to the others.
    """

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("fanout_id", "user_id", "channel"),
        CheckConstraint(check_in("channel", Channel), name="channel"),
        CheckConstraint(check_in("state", JobState), name="state"),
        Index("ix_notifications_claim", "state", "next_attempt_at"),
    )

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    fanout_id: Mapped[str] = mapped_column(
        ForeignKey("notification_fanouts.id", ondelete="CASCADE")
    )
    stream_id: Mapped[str] = mapped_column(ForeignKey("streams.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(8))
    state: Mapped[str] = mapped_column(String(8), default=JobState.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    worker: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column()
    sent_to: Mapped[list[str]] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column()
