"""Replay comments: viewers' comments anchored at a moment of a show's replay.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "replay_comments",
        sa.Column("id", sa.String(length=22), nullable=False),
        sa.Column("stream_id", sa.String(length=22), nullable=False),
        sa.Column("user_id", sa.String(length=22), nullable=False),
        sa.Column("at_seconds", sa.Float(), nullable=False),
        sa.Column("text", sa.String(length=500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("at_seconds >= 0", name=op.f("ck_replay_comments_at_not_negative")),
        sa.ForeignKeyConstraint(
            ["stream_id"],
            ["streams.id"],
            name=op.f("fk_replay_comments_stream_id_streams"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_replay_comments_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_replay_comments")),
    )
    op.create_index("ix_replay_comments_stream_at", "replay_comments", ["stream_id", "at_seconds"])
    op.create_index(op.f("ix_replay_comments_user_id"), "replay_comments", ["user_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_replay_comments_user_id"), table_name="replay_comments")
    op.drop_index("ix_replay_comments_stream_at", table_name="replay_comments")
    op.drop_table("replay_comments")
