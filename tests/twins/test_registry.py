"""The stream registry on a private Redis: owners, redirects, orphans, and a Redis restart."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.nodes import RedisServer
from twins import registry
from twins.redislink import RedisLink
from twins.registry import RedisRegistry


@pytest.fixture
async def link(tmp_path: Path) -> AsyncIterator[RedisLink]:
    server = RedisServer(tmp_path)
    link = RedisLink(server.url)
    yield link
    await link.close()
    server.stop()


async def test_owner_redirects_and_orphans(
    link: RedisLink, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry, "OWNER_TTL_SECONDS", 1)
    a = RedisRegistry(link, "node-a", "http://a.test")
    b = RedisRegistry(link, "node-b", "http://b.test")
    await a.heartbeat([])
    await a.claim("s1")
    assert await a.owner("s1") is None  # a carries it itself
    assert await b.owner("s1") == "http://a.test"
    assert await b.owner("s2") is None  # nobody carries it: b may take it
    await b.claim("s1")  # a race lost: b cannot take what a carries
    await b.heartbeat(["s1"])
    assert await b.owner("s1") == "http://a.test" and await a.owner("s1") is None

    await link.client.flushall()  # Redis restarted empty: not an orphan yet
    assert await b.orphans(["s1"]) == []
    await a.heartbeat(["s1"])  # a's next beat restores its claim
    assert await b.owner("s1") == "http://a.test"
    assert await b.orphans(["s1"]) == []

    await link.client.delete("sc:owner:s1", "sc:node-url:node-a")  # a stopped beating
    assert await b.orphans(["s1"]) == []
    await asyncio.sleep(1.1)
    assert await b.orphans(["s1"]) == ["s1"]

    await b.heartbeat([])
    await b.claim("s1")  # the publisher came back on b
    await a.release("s1")  # a cannot release what b now carries
    assert await a.owner("s1") == "http://b.test"
    await b.release("s1")
    assert await a.owner("s1") is None
