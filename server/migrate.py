"""Schema migrations (Alembic), driven from settings rather than an alembic.ini."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from server.database import create_engine

MIGRATIONS = Path(__file__).with_name("migrations")
# The full-text indexes (``api.shows.search``): made by migration 0012, not by the models.
SEARCH_OBJECTS = ("search_", "ix_search_")


def tracked(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic's ``include_name``: what the models describe, so what autogenerate compares."""
    return not (name or "").startswith(SEARCH_OBJECTS)


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)


def revision(database_url: str, message: str) -> None:
    """Write the next numbered migration from the difference between models and database."""
    config = alembic_config(database_url)
    head = ScriptDirectory.from_config(config).get_current_head()
    rev_id = f"{int(head or 0) + 1:04d}"
    command.revision(config, message=message, autogenerate=True, rev_id=rev_id)


def pending(database_url: str) -> tuple[str | None, str]:
    """The database's revision and the code's head; equal when nothing is left to apply."""
    config = alembic_config(database_url)
    head = ScriptDirectory.from_config(config).get_current_head() or ""
    return asyncio.run(_current(database_url)), head


async def _current(database_url: str) -> str | None:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )
    finally:
        await engine.dispose()
