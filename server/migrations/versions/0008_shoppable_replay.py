"""Replays sell: a stream may sell from its replay, and orders say where they came from.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("streams") as batch_op:
        batch_op.add_column(
            sa.Column("shoppable_replay", sa.Boolean(), nullable=False, server_default=sa.true())
        )
    with op.batch_alter_table("orders") as batch_op:
        batch_op.add_column(
            sa.Column("from_replay", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch_op:
        batch_op.drop_column("from_replay")
    with op.batch_alter_table("streams") as batch_op:
        batch_op.drop_column("shoppable_replay")
