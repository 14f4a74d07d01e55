"""Bad-input tests: hypothesis runs a fixed, derandomized set of examples so CI is repeatable.

They run on SQLite only: what they check (parsers, refusals, nothing written) does not
depend on the engine, and both engines are covered by the API tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.strategies import SearchStrategy

from server.app import build_app
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


@pytest.fixture
def fuzz_settings(sqlite_url: str, tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        database_url=sqlite_url,
        public_url="http://shopcast.test",
        cors_origins=["https://shop.example"],
        ice_host_addresses=["127.0.0.1"],
        # The fuzzers must reach the parsers; floods are tested against the real limits.
        auth_burst=1000,
        signaling_burst=10_000,
        sfu_workers=1,
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


@pytest.fixture
def shop(node: Client, sqlite_url: str) -> Shop:
    return Shop(node, sqlite_url)


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
