"""Migrations build the schema the models describe, and undo it, on both engines."""

import asyncio
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

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


async def _rows(url: str, *statements: str) -> list[list[tuple[Any, ...]]]:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            results = [await conn.execute(text(s)) for s in statements]
            return [[tuple(r) for r in result] if result.returns_rows else [] for result in results]
    finally:
        await engine.dispose()


def test_rebuilding_streams_keeps_what_refers_to_them(database_url: str) -> None:
    """0016 rebuilds ``streams`` in SQLite: the rows that refer to a show stay (foreign keys
    are off while batch mode drops the old table) and its full-text index still finds it."""
    migrate.downgrade(database_url, "0015")
    try:
        asyncio.run(
            _rows(
                database_url,
                "INSERT INTO users (id, email, password_hash, display_name, role, handle, "
                "created_at) VALUES ('u1', 'a@b.test', 'x', 'Ana', 'seller', 'ana', "
                "CURRENT_TIMESTAMP)",
                "INSERT INTO streams (id, owner_id, title, description, status, audience, "
                "notify_followers, notify_neighborhood, enable_chat, enable_comments, "
                "record_stream, peak_viewers, unique_viewers, total_likes, chat_messages_count, "
                "average_watch_time, created_at, updated_at) VALUES ('s1', 'u1', 'Glaze night', "
                "'', 'live', 'everyone', true, false, true, true, true, 0, 0, 0, 0, 0, "
                "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
                "INSERT INTO chat_messages (id, stream_id, user_id, text, created_at) "
                "VALUES ('c1', 's1', 'u1', 'hello', CURRENT_TIMESTAMP)",
            )
        )
    finally:
        migrate.upgrade(database_url)
    search = (
        "SELECT rowid FROM search_streams WHERE search_streams MATCH 'glaze'"
        if database_url.startswith("sqlite")
        else "SELECT id FROM streams WHERE to_tsvector('simple', title) @@ 'glaze'"
    )
    chat, found = asyncio.run(_rows(database_url, "SELECT id FROM chat_messages", search))
    assert chat == [("c1",)]
    assert len(found) == 1
