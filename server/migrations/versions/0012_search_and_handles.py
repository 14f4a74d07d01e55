"""Discovery: each account's public handle, and the full-text indexes of shows and products.

PostgreSQL indexes the words of each row (a GIN index over ``to_tsvector('simple', ...)``);
SQLite keeps FTS5 tables in step with triggers. Neither is in the models: ``api.search`` owns
them, and ``server.migrate.tracked`` leaves them out of the comparison with the models. A later
migration that rebuilds ``streams`` or ``products`` in SQLite's batch mode drops their triggers
with the old table: it must make them again (``server.search_index.sqlite_triggers``).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

import re
import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from server.search_index import sqlite_table, sqlite_triggers

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEARCHED = ("streams", "products")


def _handle(name: str, taken: set[str]) -> str:
    """What ``api.accounts.handles.new_handle`` makes, for the accounts that exist already."""
    base = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:24] or "seller"
    handle = base
    while handle in taken:
        handle = f"{base}-{secrets.randbelow(10_000)}"
    taken.add(handle)
    return handle


def upgrade() -> None:
    users = sa.table("users", sa.column("id", sa.String), sa.column("display_name", sa.String))
    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(sa.Column("handle", sa.String(length=40), nullable=True))
    taken: set[str] = set()
    bind = op.get_bind()
    for user_id, name in bind.execute(sa.select(users.c.id, users.c.display_name)).all():
        bind.execute(
            sa.text("UPDATE users SET handle = :handle WHERE id = :id"),
            {"handle": _handle(name, taken), "id": user_id},
        )
    with op.batch_alter_table("users") as batch_op:
        batch_op.alter_column("handle", existing_type=sa.String(length=40), nullable=False)
        batch_op.create_unique_constraint(op.f("uq_users_handle"), ["handle"])
    for table in SEARCHED:
        if bind.dialect.name == "sqlite":
            for statement in sqlite_table(table) + sqlite_triggers(table):
                op.execute(statement)
        else:
            op.execute(
                f"CREATE INDEX ix_search_{table} ON {table} "
                "USING gin (to_tsvector('simple', title || ' ' || description))"
            )


def downgrade() -> None:
    bind = op.get_bind()
    for table in SEARCHED:
        if bind.dialect.name == "sqlite":
            for trigger in ("insert", "delete", "update"):
                op.execute(f"DROP TRIGGER search_{table}_{trigger}")
            op.execute(f"DROP TABLE search_{table}")
        else:
            op.execute(f"DROP INDEX ix_search_{table}")
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_constraint(op.f("uq_users_handle"), type_="unique")
        batch_op.drop_column("handle")
