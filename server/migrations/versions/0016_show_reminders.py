"""Scheduled shows: "Remind me", notices other than going live, and cancelled shows.

A fan-out is one notice of a show (``kind``), made once per ``key``; a notification is unique
per fan-out, user and channel, no longer per show. ``streams.status`` may be ``cancelled``: in
SQLite that rebuilds ``streams``, so its full-text triggers are made again.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from server.search_index import sqlite_triggers

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES = ("created", "live", "reconnecting", "ended", "interrupted")
NOTICES = "('live', 'reminder', 'rescheduled', 'cancelled')"


def _in(values: Sequence[str]) -> str:
    return "status IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def _statuses(values: Sequence[str]) -> None:
    with op.batch_alter_table("streams") as batch_op:
        batch_op.drop_constraint(op.f("ck_streams_status"), type_="check")
        batch_op.create_check_constraint(op.f("ck_streams_status"), _in(values))
    if op.get_bind().dialect.name == "sqlite":
        for statement in sqlite_triggers("streams"):
            op.execute(statement)


def upgrade() -> None:
    op.create_table(
        "show_reminders",
        sa.Column("stream_id", sa.String(length=22), nullable=False),
        sa.Column("user_id", sa.String(length=22), nullable=False),
        sa.Column("push", sa.Boolean(), nullable=False),
        sa.Column("email", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["stream_id"],
            ["streams.id"],
            name=op.f("fk_show_reminders_stream_id_streams"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_show_reminders_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("stream_id", "user_id", name=op.f("pk_show_reminders")),
    )
    op.create_index("ix_show_reminders_user_id", "show_reminders", ["user_id"])
    with op.batch_alter_table("notification_fanouts") as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=16), nullable=False, server_default="live")
        )
        batch_op.add_column(
            sa.Column("key", sa.String(length=64), nullable=False, server_default="live")
        )
        batch_op.add_column(sa.Column("audience", sa.JSON(), nullable=True))
    fanouts = sa.table("notification_fanouts", sa.column("audience", sa.JSON()))
    op.execute(fanouts.update().values(audience={"followers": True, "cells": []}))
    with op.batch_alter_table("notification_fanouts") as batch_op:
        batch_op.alter_column("kind", server_default=None)
        batch_op.alter_column("key", server_default=None)
        batch_op.alter_column("audience", existing_type=sa.JSON(), nullable=False)
        batch_op.drop_constraint(op.f("uq_notification_fanouts_stream_id"), type_="unique")
        batch_op.create_unique_constraint(
            op.f("uq_notification_fanouts_stream_id"), ["stream_id", "key"]
        )
        batch_op.create_check_constraint(op.f("ck_notification_fanouts_kind"), f"kind IN {NOTICES}")
    with op.batch_alter_table("notifications") as batch_op:
        batch_op.drop_constraint(op.f("uq_notifications_stream_id"), type_="unique")
        batch_op.drop_index("ix_notifications_fanout_id")
        batch_op.create_unique_constraint(
            op.f("uq_notifications_fanout_id"), ["fanout_id", "user_id", "channel"]
        )
    _statuses((*STATUSES, "cancelled"))


def downgrade() -> None:
    op.execute("DELETE FROM streams WHERE status = 'cancelled'")
    _statuses(STATUSES)
    op.execute("DELETE FROM notification_fanouts WHERE kind <> 'live'")
    with op.batch_alter_table("notifications") as batch_op:
        batch_op.drop_constraint(op.f("uq_notifications_fanout_id"), type_="unique")
        batch_op.create_index("ix_notifications_fanout_id", ["fanout_id"])
        batch_op.create_unique_constraint(
            op.f("uq_notifications_stream_id"), ["stream_id", "user_id", "channel"]
        )
    with op.batch_alter_table("notification_fanouts") as batch_op:
        batch_op.drop_constraint(op.f("ck_notification_fanouts_kind"), type_="check")
        batch_op.drop_constraint(op.f("uq_notification_fanouts_stream_id"), type_="unique")
        batch_op.create_unique_constraint(op.f("uq_notification_fanouts_stream_id"), ["stream_id"])
        batch_op.drop_column("audience")
        batch_op.drop_column("key")
        batch_op.drop_column("kind")
    op.drop_index("ix_show_reminders_user_id", table_name="show_reminders")
    op.drop_table("show_reminders")
