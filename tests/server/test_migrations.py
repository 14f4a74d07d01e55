"""Migrations build the schema the models describe, and undo it, on both engines."""

import asyncio
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from api.tables import Base
from server import migrate
from server.database import create_engine


async def _inspect(url: str) -> tuple[set[str], list[Any]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:

            def read(sync: Any) -> tuple[set[str], list[Any]]:
                options = {"compare_type": True, "include_name": migrate.tracked}
                context = MigrationContext.configure(sync, opts=options)
                return set(inspect(sync).get_table_names()), compare_metadata(
                    context, Base.metadata
                )

            return await conn.run_sync(read)
    finally:
        await engine.dispose()


def test_upgrade_matches_models_and_downgrade_empties(migrated: str) -> None:
    tables, drift = asyncio.run(_inspect(migrated))
    assert {t.name for t in Base.metadata.sorted_tables} <= tables
    assert drift == [], "the models changed without a migration"
    current, head = migrate.pending(migrated)
    assert current == head
    migrate.downgrade(migrated, "base")
    try:
        tables, _ = asyncio.run(_inspect(migrated))
        assert tables <= {"alembic_version"}
        assert migrate.pending(migrated)[0] is None
    finally:
        migrate.upgrade(migrated)
    assert migrate.pending(migrated)[0] == head
