"""Go-live notifications: push subscriptions, preferences, fan-outs and notifications.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATES = "('queued', 'running', 'done', 'failed')"
CHANNELS = "('push', 'email')"


def _foreign(column: str, table: str, referred: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column],
        [f"{referred}.id"],
        name=op.f(f"fk_{table}_{column}_{referred}"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "push_subscriptions",
        sa.Column("id", sa.String(length=22), nullable=False),
        sa.Column("user_id", sa.String(length=22), nullable=False),
        sa.Column("endpoint", sa.String(length=2048), nullable=False),
        sa.Column("p256dh", sa.String(length=128), nullable=False),
        sa.Column("auth", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _foreign("user_id", "push_subscriptions", "users"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_push_subscriptions")),
        sa.UniqueConstraint("endpoint", name=op.f("uq_push_subscriptions_endpoint")),
    )
    op.create_index("ix_push_subscriptions_user_id", "push_subscriptions", ["user_id"])
    op.create_table(
        "notification_settings",
        sa.Column("user_id", sa.String(length=22), nullable=False),
        sa.Column("push", sa.Boolean(), nullable=False),
        sa.Column("email", sa.Boolean(), nullable=False),
        _foreign("user_id", "notification_settings", "users"),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_notification_settings")),
    )
    op.create_table(
        "notification_mutes",
        sa.Column("user_id", sa.String(length=22), nullable=False),
        sa.Column("seller_id", sa.String(length=22), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.CheckConstraint(f"channel IN {CHANNELS}", name=op.f("ck_notification_mutes_channel")),
        _foreign("user_id", "notification_mutes", "users"),
        _foreign("seller_id", "notification_mutes", "users"),
        sa.PrimaryKeyConstraint(
            "user_id", "seller_id", "channel", name=op.f("pk_notification_mutes")
        ),
    )
    op.create_table(
        "notification_fanouts",
        sa.Column("id", sa.String(length=22), nullable=False),
        sa.Column("stream_id", sa.String(length=22), nullable=False),
        sa.Column("seller_id", sa.String(length=22), nullable=False),
        sa.Column("message", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("cursor", sa.String(length=22), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=64), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(f"state IN {STATES}", name=op.f("ck_notification_fanouts_state")),
        _foreign("stream_id", "notification_fanouts", "streams"),
        _foreign("seller_id", "notification_fanouts", "users"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_fanouts")),
        sa.UniqueConstraint("stream_id", name=op.f("uq_notification_fanouts_stream_id")),
    )
    op.create_index(
        "ix_notification_fanouts_claim", "notification_fanouts", ["state", "lease_expires_at"]
    )
    op.create_table(
        "notifications",
        sa.Column("id", sa.String(length=22), nullable=False),
        sa.Column("fanout_id", sa.String(length=22), nullable=False),
        sa.Column("stream_id", sa.String(length=22), nullable=False),
        sa.Column("user_id", sa.String(length=22), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("worker", sa.String(length=64), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_to", sa.JSON(), nullable=False),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(f"channel IN {CHANNELS}", name=op.f("ck_notifications_channel")),
        sa.CheckConstraint(f"state IN {STATES}", name=op.f("ck_notifications_state")),
        _foreign("fanout_id", "notifications", "notification_fanouts"),
        _foreign("stream_id", "notifications", "streams"),
        _foreign("user_id", "notifications", "users"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint(
            "stream_id", "user_id", "channel", name=op.f("uq_notifications_stream_id")
        ),
    )
    op.create_index("ix_notifications_claim", "notifications", ["state", "next_attempt_at"])
    op.create_index("ix_notifications_fanout_id", "notifications", ["fanout_id"])
    op.create_index("ix_notifications_user_id", "notifications", ["user_id"])


def downgrade() -> None:
    op.drop_table("notifications")
    op.drop_table("notification_fanouts")
    op.drop_table("notification_mutes")
    op.drop_table("notification_settings")
    op.drop_table("push_subscriptions")
