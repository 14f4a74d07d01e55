"""Shared fixtures: every database test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import gc
import inspect
import os
import secrets
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from api.tables import Base
from api.web.context import SERVICES
from server import migrate
from server.app import build_app
from server.database import create_engine
from server.settings import Settings
from tests.nodes import Node
from tests.socket_client import Viewer

# Rows written by the clock, not by requests: a show's minute of analytics starts while viewers
# watch, whatever they do.
CLOCKED = frozenset({"stream_minutes"})
# Columns that background jobs move on their own (a delivery's tries, a notification's state):
# a rejected request must not add or change the rows, but their jobs may run meanwhile.
WORKED = {
    "webhook_deliveries": {"attempts", "next_attempt_at", "delivered_at", "last_error"},
    "notification_fanouts": {"state", "cursor", "attempts", "worker", "lease_expires_at"},
    "notifications": {
        "state",
        "attempts",
        "next_attempt_at",
        "worker",
        "lease_expires_at",
        "sent_to",
        "error",
        "sent_at",
    },
}
POSTGRES_URL = os.environ.get(
    "SHOPCAST_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


async def _admin(sql: str) -> None:
    url = make_url(POSTGRES_URL)
    conn = await asyncpg.connect(
        host=url.host,
        port=url.port,
        user=url.username,
        password=url.password,
        database=url.database,
    )
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(autouse=True)
def no_node_left() -> Iterator[None]:
    """Every ``shopcast serve`` a test started is stopped after it, with its workers, even when
    the test failed before its own ``finally`` (``tests.nodes.Node.stop_all``)."""
    yield
    Node.stop_all()


@pytest.fixture(autouse=True)
def collect_garbage() -> Iterator[None]:
    """Collect after each test, so a leaked connection or socket fails the test that leaked it."""
    yield
    gc.collect()


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test run, dropped at the end."""
    name = f"shopcast_test_{secrets.token_hex(4)}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    try:
        migrate.upgrade(url)
        yield url
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that each test copies, so migrations run once per session."""
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    migrate.upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def engine_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    """A migrated SQLite database of this test's own: a copy of the template."""
    path = tmp_path / "shopcast.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
def migrated(engine_name: str, request: pytest.FixtureRequest) -> str:
    """A migrated database URL: a copy of the SQLite template, or the run's PostgreSQL."""
    if engine_name == "postgresql":
        return str(request.getfixturevalue("postgres_database"))
    return str(request.getfixturevalue("sqlite_url"))


@pytest.fixture
async def database_url(migrated: str) -> AsyncIterator[str]:
    """The test's database, empty: the run's PostgreSQL is emptied before and after each test
    (tests of whole nodes use ``migrated`` itself and may leave rows behind)."""
    await _empty(migrated)
    yield migrated
    await _empty(migrated)


async def _empty(url: str) -> None:
    if not url.startswith("postgresql"):
        return
    engine = create_engine(url)
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    await engine.dispose()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        database_url=database_url,
        public_url="http://shopcast.test",
        cors_origins=["https://shop.example"],
        ice_host_addresses=["127.0.0.1"],
        sfu_workers=1,
        signaling_burst=100_000,  # tests post many offers from 127.0.0.1; one test lowers it
    )


@pytest.fixture
async def client(
    settings: Settings, aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]]
) -> TestClient[Any, Any]:
    return await aiohttp_client(build_app(settings))


@dataclass
class Account:
    id: str
    token: str
    email: str
    password: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class Shop:
    """Shortcuts for tests: create accounts, products and streams through the public API."""

    def __init__(self, client: TestClient[Any, Any], database_url: str) -> None:
        self.client = client
        self.database_url = database_url

    async def account(self, role: str = "viewer", **extra: Any) -> Account:
        email = f"{role}-{secrets.token_hex(4)}@example.com"
        body = {"email": email, "password": "correct horse", "display_name": role, **extra}
        if role in ("viewer", "seller"):
            body["role"] = role
        response = await self.client.post("/api/v1/auth/register", json=body)
        assert response.status == 201, await response.text()
        data = await response.json()
        account = Account(data["user"]["id"], data["access_token"], email, "correct horse")
        if role not in ("viewer", "seller"):
            await self.execute(
                "UPDATE users SET role = :role WHERE id = :id", role=role, id=account.id
            )
        return account

    async def product(self, seller: Account, **fields: Any) -> dict[str, Any]:
        body = {"title": "Mug", "price_cents": 1500, "stock": 5, **fields}
        response = await self.client.post("/api/v1/products", json=body, headers=seller.auth)
        assert response.status == 201, await response.text()
        return dict(await response.json())

    async def stream(self, seller: Account, **fields: Any) -> dict[str, Any]:
        body = {"title": "Friday show", **fields}
        response = await self.client.post("/api/v1/streams", json=body, headers=seller.auth)
        assert response.status == 201, await response.text()
        return dict(await response.json())

    async def execute(self, sql: str, **params: Any) -> None:
        """Run ``sql`` in one of the app's own write transactions: on SQLite it waits its turn
        in the app's write queue instead of racing it for the file's lock."""
        async with self.client.app[SERVICES].sessions.begin() as session:
            await session.execute(text(sql), params)

    async def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table but the clock's (``CLOCKED``), without the columns jobs
        move (``WORKED``), to prove a rejected request changed nothing."""
        engine = create_engine(self.database_url)
        try:
            async with engine.connect() as conn:
                result = {}
                for table in Base.metadata.sorted_tables:
                    if table.name in CLOCKED:
                        continue
                    moving = WORKED.get(table.name, set())
                    columns = [c for c in table.columns if c.name not in moving]
                    rows = await conn.execute(select(*columns).order_by(*table.primary_key.columns))
                    result[table.name] = [tuple(r) for r in rows]
                return result
        finally:
            await engine.dispose()

    @asynccontextmanager
    async def unchanged(self) -> AsyncIterator[None]:
        # What the rooms gathered before is written first, so that the periodic flush cannot
        # write it inside the window.
        await self.client.app[SERVICES].rooms.flush_all()
        before = await self.snapshot()
        yield
        assert await self.snapshot() == before, "a rejected request changed the database"


@pytest.fixture
def shop(client: TestClient[Any, Any], database_url: str) -> Shop:
    return Shop(client, database_url)


async def expect_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """Assert the error contract: status, JSON body with this code and a message."""
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    body = dict(await response.json())
    assert body["error"] == code, body
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["details"], dict)
    return body


@pytest.fixture
async def viewers(client: TestClient[Any, Any]) -> AsyncIterator[Callable[..., Awaitable[Viewer]]]:
    """Open Socket.IO clients against the test server; all are closed at the end."""
    opened: list[Viewer] = []

    async def open_viewer(account: Account | None = None, **auth: Any) -> Viewer:
        if account is not None:
            auth["token"] = account.token
        viewer = await Viewer().connect(str(client.make_url("/")), **auth)
        opened.append(viewer)
        return viewer

    yield open_viewer
    for viewer in opened:
        await viewer.close()


async def eventually(check: Callable[[], Any], within: float, what: str | Callable[[], str]) -> Any:
    """Poll ``check`` (plain or async) every 0.1 s until it returns something truthy; else fail
    saying ``what`` (a function: what it says when it fails, e.g. the last values seen)."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        assert time.monotonic() < deadline, what() if callable(what) else what
        await asyncio.sleep(0.1)
