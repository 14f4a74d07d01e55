"""Bad-input tests: hypothesis runs a fixed, derandomized set of examples so CI is repeatable.

Every test that serves a node runs on SQLite and on PostgreSQL (``database_url``): the same
input can pass one engine and fail the other (NUL, lone surrogates, out-of-range integers reach
the drivers differently), and PostgreSQL's tables are truncated after each test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from argon2 import PasswordHasher
from hypothesis import HealthCheck, given, settings
from hypothesis.strategies import SearchStrategy
from sqlalchemy import select

from api.tables import Base
from server.app import build_app
from server.database import create_engine
from server.settings import Settings
from tests.conftest import Shop

settings.register_profile(
    "shopcast",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=40,
    # One server serves every example: that it keeps serving is part of what is checked.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.load_profile("shopcast")

Client = TestClient[Any, Any]
# Hypothesis draws examples on a thread while the server's loop runs aiortc, which uses the
# `random` module: hypothesis takes that for a strategy using `random` and warns.
SHARED_RANDOM = pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module:hypothesis.errors.HypothesisDeprecationWarning"
)


CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture(autouse=True)
def cheap_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2 at its production cost (a tenth of a second a hash, or more) would be most of
    this suite's time: it signs up accounts by the hundred and fuzzes sign-ins, each unknown
    email checked against a dummy hash. Nothing checked here depends on that cost."""
    monkeypatch.setattr("api.identity.auth._hasher", CHEAP_HASHER)
    monkeypatch.setattr("api.accounts.users.DUMMY_HASH", CHEAP_HASHER.hash("dummy"))


@pytest.fixture
def fuzz_settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        database_url=database_url,
        public_url="http://shopcast.test",
        cors_origins=["https://shop.example"],
        ice_host_addresses=["127.0.0.1"],
        # The fuzzers must reach the parsers; floods are tested against the real limits.
        auth_burst=1000,
        signaling_burst=10_000,
        sfu_workers=1,
        # The live show the offers are fuzzed against: its publisher shares the loop with the
        # node, which a loaded machine can starve past the usual 5 s without media.
        media_timeout_seconds=120,
    )


@pytest.fixture
async def node(
    fuzz_settings: Settings, aiohttp_client: Any, monkeypatch: pytest.MonkeyPatch
) -> Client:
    # The periodic analytics flush writes viewer statistics: it would change the database
    # between the snapshots that prove a refusal changed nothing.
    monkeypatch.setattr("api.realtime.sockets.FLUSH_EVERY", 3600.0)
    client: Client = await aiohttp_client(build_app(fuzz_settings))
    return client


class FuzzShop(Shop):
    """A :class:`Shop` whose snapshots share one engine: the fuzzers take one or two for each
    example, and a new engine (a new connection) for each costs more than the request."""

    def __init__(self, client: Client, database_url: str) -> None:
        super().__init__(client, database_url)
        self.engine = create_engine(database_url)

    async def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        async with self.engine.connect() as conn:
            result = {}
            for table in Base.metadata.sorted_tables:
                rows = await conn.execute(select(table).order_by(*table.primary_key.columns))
                result[table.name] = [tuple(r) for r in rows]
            return result


@pytest.fixture
async def shop(node: Client, database_url: str) -> AsyncIterator[Shop]:
    shop = FuzzShop(node, database_url)
    yield shop
    await shop.engine.dispose()


async def fuzz(
    check: Callable[..., Awaitable[None]],
    *,
    examples: int | None = None,
    **strategies: SearchStrategy[Any],
) -> None:
    """Run ``check`` on hypothesis' examples (``examples`` of them, else the profile's)
    against the server on this loop.

    Hypothesis cannot await: it drives the examples from a thread, each one run (and awaited)
    on this loop, which keeps serving meanwhile.
    """
    loop = asyncio.get_running_loop()

    @given(**strategies)
    def example(**values: Any) -> None:
        asyncio.run_coroutine_threadsafe(check(**values), loop).result(timeout=60)

    run = settings(max_examples=examples)(example) if examples else example
    await asyncio.to_thread(run)
