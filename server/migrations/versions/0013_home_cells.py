"""Neighbourhoods that mean a place: each account's H3 cell, set from an approximate location.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(sa.Column("home_cell", sa.String(length=16), nullable=True))
        batch_op.create_index("ix_users_home_cell", ["home_cell"])


def downgrade() -> None:
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_index("ix_users_home_cell")
        batch_op.drop_column("home_cell")
