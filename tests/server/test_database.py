"""SQLite's writers take turns in order of arrival; its readers do not wait for them."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import text
from sqlalchemy.exc import TimeoutError as PoolTimeout

from api.web.context import SERVICES
from server import database
from server.app import build_app
from server.database import Database, open_database
from server.settings import Settings
from tests.conftest import expect_error

HELD = 0.6  # seconds the first writer keeps its transaction open: longer than the busy timeout


@pytest.fixture
async def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Database]:
    monkeypatch.setattr(database, "SQLITE_BUSY_TIMEOUT_MS", 200)
    opened = open_database(f"sqlite+aiosqlite:///{tmp_path / 'turns.db'}")
    async with opened.sessions.begin() as session:
        await session.execute(text("CREATE TABLE turns (name TEXT NOT NULL)"))
    yield opened
    await opened.dispose()


class Hold:
    """A writer's transaction kept open: ``taken`` once it holds the write lock, released by
    ``release()``. Tests wait on ``taken`` rather than sleep, which a loaded machine outruns."""

    def __init__(self) -> None:
        self.taken = asyncio.Event()
        self._release = asyncio.Event()

    def release(self) -> None:
        self._release.set()

    async def keep(self) -> None:
        self.taken.set()
        async with asyncio.timeout(60):
            await self._release.wait()


async def _write(db: Database, name: str, hold: Hold | None = None) -> None:
    async with db.sessions.begin() as session:
        await session.execute(text("INSERT INTO turns (name) VALUES (:name)"), {"name": name})
        if hold is not None:
            await hold.keep()


async def test_writers_wait_past_the_busy_timeout_in_order_of_arrival(db: Database) -> None:
    hold = Hold()
    first = asyncio.create_task(_write(db, "a", hold))
    await hold.taken.wait()
    later = []
    for name in "bcdef":
        later.append(asyncio.create_task(_write(db, name)))
        await asyncio.sleep(0.01)
    await asyncio.sleep(HELD)
    hold.release()
    await asyncio.wait_for(asyncio.gather(first, *later), timeout=30)
    async with db.reads() as session:
        order = (await session.scalars(text("SELECT name FROM turns ORDER BY rowid"))).all()
    assert "".join(order) == "abcdef"


async def test_a_reader_does_not_wait_for_the_writer(db: Database) -> None:
    await _write(db, "committed")
    hold = Hold()
    writer = asyncio.create_task(_write(db, "pending", hold))
    await hold.taken.wait()
    async with db.reads() as session:
        seen = (await session.scalars(text("SELECT name FROM turns"))).all()
    assert not writer.done()
    assert seen == ["committed"]
    hold.release()
    await writer


async def test_a_writer_past_the_queue_timeout_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(database, "SQLITE_WRITE_QUEUE_SECONDS", 0.1)
    db = open_database(f"sqlite+aiosqlite:///{tmp_path / 'queue.db'}")
    try:
        hold = Hold()
        holder = asyncio.create_task(_hold_connection(db, hold))
        await hold.taken.wait()
        with pytest.raises(PoolTimeout):
            async with db.sessions.begin() as session:
                await session.execute(text("SELECT 1"))
        hold.release()
        await holder
    finally:
        await db.dispose()


async def test_a_request_past_the_queue_timeout_is_503_and_changes_nothing(
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
) -> None:
    monkeypatch.setattr(database, "SQLITE_WRITE_QUEUE_SECONDS", 0.1)
    settings = Settings(_env_file=None, data_dir=tmp_path / "data", database_url=sqlite_url)
    client = await aiohttp_client(build_app(settings))
    services = client.app[SERVICES]
    body = {"email": "ann@example.com", "password": "correct horse", "display_name": "Ann"}
    hold = Hold()
    holder = asyncio.create_task(
        _hold_connection(Database(services.sessions, services.reads, ()), hold)
    )
    await hold.taken.wait()
    response = await client.post("/api/v1/auth/register", json=body)
    hold.release()
    await expect_error(response, 503, "database_busy")
    assert response.headers["Retry-After"] == "2"
    await holder
    async with services.reads() as session:
        users = await session.scalar(text("SELECT count(*) FROM users"))
    assert users == 0
    response = await client.post("/api/v1/auth/register", json=body)
    assert response.status == 201


async def _hold_connection(db: Database, hold: Hold) -> None:
    async with db.sessions.begin() as session:
        await session.execute(text("SELECT 1"))
        await hold.keep()
