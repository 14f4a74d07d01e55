"""Funnel analytics: product impressions, unique viewers by playback, a per-minute series.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "stream_minutes",
        sa.Column("stream_id", sa.String(length=22), nullable=False),
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("viewers", sa.Integer(), nullable=False),
        sa.Column("webrtc_viewers", sa.Integer(), nullable=False),
        sa.Column("hls_viewers", sa.Integer(), nullable=False),
        sa.Column("likes", sa.Integer(), nullable=False),
        sa.Column("chat_messages", sa.Integer(), nullable=False),
        sa.Column("clicks", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["stream_id"],
            ["streams.id"],
            name=op.f("fk_stream_minutes_stream_id_streams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("stream_id", "minute", name=op.f("pk_stream_minutes")),
    )
    with op.batch_alter_table("stream_products", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("impressions", sa.Integer(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("streams", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("unique_webrtc_viewers", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("unique_hls_viewers", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("streams", schema=None) as batch_op:
        batch_op.drop_column("unique_hls_viewers")
        batch_op.drop_column("unique_webrtc_viewers")
    with op.batch_alter_table("stream_products", schema=None) as batch_op:
        batch_op.drop_column("impressions")
    op.drop_table("stream_minutes")
