"""Several Shopcast nodes sharing Redis and PostgreSQL, and a Redis that goes away."""

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio

from tests.conftest import eventually
from tests.nodes import Node, RedisServer
from tests.socket_client import Viewer

SECRET = secrets.token_urlsafe(40)
HEART = "\u2764\ufe0f"


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    yield server
    server.stop()


async def _register(base: str, role: str) -> dict[str, Any]:
    body = {
        "email": f"{secrets.token_hex(4)}@example.com",
        "password": "long enough",
        "display_name": role,
        "role": role,
    }
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{base}/api/v1/auth/register", json=body) as r,
    ):
        assert r.status == 201
        return dict(await r.json())


async def _stream(base: str, token: str) -> str:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{base}/api/v1/streams",
            json={"title": "two nodes"},
            headers={"Authorization": f"Bearer {token}"},
        ) as r,
    ):
        assert r.status == 201
        return str((await r.json())["id"])


async def _join(base: str, stream_id: str, token: str | None = None) -> Viewer:
    viewer = await Viewer().connect(base, **({"token": token} if token else {}))
    assert (await viewer.call("stream:join", {"stream_id": stream_id}))["ok"]
    return viewer


async def test_two_nodes_share_rooms(
    postgres_database: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    settings = {
        "database_url": postgres_database,
        "redis_url": redis_server.url,
        "jwt_secret": SECRET,
    }
    a = Node(tmp_path / "a", **settings)
    b = Node(tmp_path / "b", **settings)
    opened: list[Viewer] = []
    try:
        seller = await _register(a.url, "seller")
        buyer = await _register(b.url, "viewer")
        stream_id = await _stream(a.url, seller["access_token"])
        on_a = await _join(a.url, stream_id, seller["access_token"])
        on_b = await _join(b.url, stream_id, buyer["access_token"])
        crowd_b = [await _join(b.url, stream_id) for _ in range(2)]
        crowd_a = [await _join(a.url, stream_id) for _ in range(2)]
        opened += [on_a, on_b, *crowd_a, *crowd_b]

        said = await on_b.call("stream:chat", {"stream_id": stream_id, "text": "from node b"})
        assert said["ok"]
        assert (await on_a.wait_for("stream:chat"))["text"] == "from node b"
        assert (await on_a.call("stream:chat", {"stream_id": stream_id, "text": "from a"}))["ok"]
        assert await on_b.wait_for("stream:chat", lambda m: m["text"] == "from a")
        for _ in range(4):
            assert (await on_a.call("stream:reaction", {"stream_id": stream_id, "emoji": HEART}))[
                "ok"
            ]

        # Each node sends the reactions of each 250 ms window: the four may span two.
        def hearts() -> int:
            return sum(m["counts"].get(HEART, 0) for m in on_b.received("stream:reactions"))

        await eventually(lambda: hearts() >= 4, 5, "node b never saw the four hearts")
        assert hearts() == 4
        # Viewers: 3 on b (buyer + 2) and 2 on a (the seller does not count).
        await on_a.wait_for("stream:viewers", lambda d: d["count"] == 5, within=6)
        await on_b.wait_for("stream:viewers", lambda d: d["count"] == 5, within=6)
        # Rate limits are shared: one account's burst is spent across both nodes together.
        buyer_on_a = await _join(a.url, stream_id, buyer["access_token"])
        opened.append(buyer_on_a)
        replies = await asyncio.gather(
            *(
                (buyer_on_a if n % 2 else on_b).call(
                    "stream:chat", {"stream_id": stream_id, "text": f"{n}"}
                )
                for n in range(24)
            )
        )
        accepted = sum(r["ok"] for r in replies)
        assert 10 <= accepted < 24, replies
        assert {r["error"] for r in replies if not r["ok"]} == {"rate_limited"}
        b.kill()
        # Node b dies: its viewers (buyer + 2) leave the count once its heartbeat expires.
        await on_a.wait_for("stream:viewers", lambda d: d["count"] == 3, within=12)
    finally:
        for viewer in opened:
            if viewer.sio.connected:
                await viewer.close()
        a.stop()
        b.stop()


async def test_redis_outage_degrades_to_this_node(
    redis_server: RedisServer, migrated: str, tmp_path: Path
) -> None:
    node = Node(
        tmp_path / "n", database_url=migrated, redis_url=redis_server.url, jwt_secret=SECRET
    )
    opened: list[Viewer] = []
    try:
        seller = await _register(node.url, "seller")
        stream_id = await _stream(node.url, seller["access_token"])
        speaker = await _join(node.url, stream_id, seller["access_token"])
        listener = await _join(node.url, stream_id)
        opened += [speaker, listener]
        redis_server.stop()
        started = asyncio.get_running_loop().time()
        reply = await speaker.call("stream:chat", {"stream_id": stream_id, "text": "redis is down"})
        took = asyncio.get_running_loop().time() - started
        assert reply["ok"], reply
        assert took < 3.5, f"chat waited {took:.1f} s for a dead Redis"
        await listener.wait_for("stream:chat", lambda m: m["text"] == "redis is down")
        assert (await listener.call("stream:reaction", {"stream_id": stream_id, "emoji": HEART}))[
            "ok"
        ]
        await speaker.wait_for("stream:reactions")
        redis_server.start()
        # Once Redis is back, reaction totals are shared there again.
        shared = redis.asyncio.Redis.from_url(redis_server.url)
        try:
            for _ in range(20):
                await speaker.call("stream:reaction", {"stream_id": stream_id, "emoji": HEART})
                await asyncio.sleep(0.5)
                if await shared.hget(f"sc:reactions:{stream_id}", HEART):
                    break
            else:
                raise AssertionError("reaction totals never reached Redis again")
        finally:
            await shared.aclose()
        assert (await speaker.call("stream:chat", {"stream_id": stream_id, "text": "back"}))["ok"]
        await listener.wait_for("stream:chat", lambda m: m["text"] == "back")
    finally:
        for viewer in opened:
            await viewer.close()
        node.stop()
