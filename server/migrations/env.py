"""Alembic environment: async engines, batch mode so SQLite can alter tables."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from api.tables import Base
from server.database import create_engine
from server.migrate import tracked

config = context.config


def _foreign_keys_off(connection: Connection) -> None:
    """SQLite's procedure for changing a table's schema (lang_altertable.html, section 7):
    foreign keys off before the transaction, so that batch mode's DROP of a rebuilt table does
    not cascade into the rows that refer to it, and checked before the commit."""
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    cursor.execute("PRAGMA foreign_keys=OFF")
    cursor.close()


def _check_foreign_keys(connection: Connection) -> None:
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
    if broken:
        raise RuntimeError(f"the migration left rows whose references are gone: {broken[:5]}")


def _configure(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        _foreign_keys_off(connection)
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=sqlite,
        compare_type=True,
        include_name=tracked,
    )
    with context.begin_transaction():
        context.run_migrations()
        if sqlite:
            _check_foreign_keys(connection)


async def _run_online() -> None:
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    async with engine.connect() as connection:
        await connection.run_sync(_configure)
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=Base.metadata)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_online())
