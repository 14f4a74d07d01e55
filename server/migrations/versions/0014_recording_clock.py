"""The replay's clock: when a show's recording got its first media.

Plain ALTER TABLE, not batch mode: rebuilding ``streams`` in SQLite would drop the triggers
that keep its search index (migration 0012). SQLite adds and drops columns itself since 3.35.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "streams", sa.Column("recording_started_at", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("streams", "recording_started_at")
