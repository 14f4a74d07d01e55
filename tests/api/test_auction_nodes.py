"""Two real nodes on PostgreSQL and Redis racing bids on one auction, over Socket.IO and REST:
one strictly increasing sequence, one close, one winner, one order."""

from __future__ import annotations

import asyncio
import random
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import insert, text

from api.db import new_id
from api.identity.auth import TokenIssuer
from api.identity.models import User
from server.database import create_engine
from tests.api.test_cluster import _register
from tests.conftest import eventually
from tests.nodes import Node, RedisServer
from tests.socket_client import Viewer

SECRET = secrets.token_urlsafe(40)
BIDDERS = 60  # on each node: half bid over Socket.IO, half over REST
ROUNDS = 3


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    yield server
    server.stop()


async def _bidders(database_url: str, n: int) -> list[tuple[str, str]]:
    """``n`` viewers written to the database: (id, access token)."""
    ids = [new_id() for _ in range(n)]
    engine = create_engine(database_url)
    async with engine.begin() as conn:
        await conn.execute(
            insert(User),
            [
                {
                    "id": i,
                    "email": f"{i}@example.com",
                    "display_name": "bidder",
                    "password_hash": "x",
                    "role": "viewer",
                }
                for i in ids
            ],
        )
    await engine.dispose()
    tokens = TokenIssuer(SECRET, 3600)
    return [(i, tokens.issue(i)) for i in ids]


async def _auction(http: aiohttp.ClientSession, node: Node, database_url: str) -> tuple[str, str]:
    """A live show on ``node`` with its product pinned and under auction: (stream, auction)."""
    seller = await _register(node.url, "seller")
    auth = {"Authorization": f"Bearer {seller['access_token']}"}
    product = {"title": "Card", "price_cents": 100, "stock": 1}
    async with http.post(f"{node.url}/api/v1/products", json=product, headers=auth) as r:
        pid = (await r.json())["id"]
    show = {"title": "Cards", "product_ids": [pid]}
    async with http.post(f"{node.url}/api/v1/streams", json=show, headers=auth) as r:
        sid = (await r.json())["id"]
    engine = create_engine(database_url)
    async with engine.begin() as conn:  # live without a publisher: auctions need only the status
        await conn.execute(text("UPDATE streams SET status = 'live' WHERE id = :id"), {"id": sid})
    await engine.dispose()
    async with http.post(
        f"{node.url}/api/v1/streams/{sid}/pins", json={"product_id": pid}, headers=auth
    ) as r:
        assert r.status == 201, await r.text()
    body = {
        "product_id": pid,
        "start_price_cents": 100,
        "increment_cents": 1,
        "duration_seconds": 10,
        "soft_close_seconds": 0,
    }
    async with http.post(f"{node.url}/api/v1/streams/{sid}/auctions", json=body, headers=auth) as r:
        assert r.status == 201, await r.text()
        return sid, str((await r.json())["id"])


@pytest.mark.timeout(240)
async def test_two_nodes_racing_bids_make_one_sequence_and_one_winner(
    postgres_database: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    settings = {
        "database_url": postgres_database,
        "redis_url": redis_server.url,
        "jwt_secret": SECRET,
    }
    nodes = [Node(tmp_path / "a", **settings)]
    pages: list[Viewer] = []
    try:
        nodes.append(Node(tmp_path / "b", **settings))
        async with aiohttp.ClientSession() as http:
            sid, aid = await _auction(http, nodes[0], postgres_database)
            bidders = await _bidders(postgres_database, 2 * BIDDERS)
            amounts = iter(random.sample(range(1000, 10_000_000), len(bidders) * ROUNDS))
            plans = [[next(amounts) for _ in range(ROUNDS)] for _ in bidders]
            for n, (_, token) in enumerate(bidders):
                if n % 2 == 0:
                    page = await Viewer().connect(nodes[n // BIDDERS].url, token=token)
                    pages.append(page)
                    assert (await page.call("stream:join", {"stream_id": sid}))["ok"]

            async def by_socket(page: Viewer, plan: list[int]) -> list[dict[str, Any]]:
                base = {"stream_id": sid, "auction_id": aid}
                return [
                    await page.sio.call("auction:bid", {**base, "amount_cents": a}, timeout=60)
                    for a in plan
                ]

            async def by_rest(node: Node, token: str, plan: list[int]) -> list[dict[str, Any]]:
                acks = []
                for amount in plan:
                    async with http.post(
                        f"{node.url}/api/v1/auctions/{aid}/bids",
                        json={"amount_cents": amount},
                        headers={"Authorization": f"Bearer {token}"},
                    ) as r:
                        acks.append(dict(await r.json()))
                return acks

            sockets = iter(pages)
            work = [
                by_socket(next(sockets), plan)
                if n % 2 == 0
                else by_rest(nodes[n // BIDDERS], token, plan)
                for n, ((_, token), plan) in enumerate(zip(bidders, plans, strict=True))
            ]
            acks = [a for acks in await asyncio.gather(*work) for a in acks]
            won = sorted(a["amount_cents"] for a in acks if a.get("status") == "accepted")
            refused = {a.get("error") for a in acks if a.get("status") != "accepted"}
            assert refused <= {"too_low", "outbid"}, refused
            assert won[-1] == max(max(p) for p in plans)

            async def closed() -> dict[str, Any] | None:
                async with http.get(f"{nodes[1].url}/api/v1/streams/{sid}/auctions") as r:
                    auction = dict((await r.json())[0])
                return auction if auction["state"] != "open" else None

            # Both nodes sweep: the auction ends 10 s after it started, closes 5 s later.
            auction = await eventually(closed, 60, "the auction never closed")
        assert (auction["state"], auction["high_cents"]) == ("sold", won[-1])
        engine = create_engine(postgres_database)
        async with engine.connect() as conn:
            sequence = list(
                await conn.scalars(
                    text("SELECT amount_cents FROM bids WHERE auction_id = :a ORDER BY id"),
                    {"a": aid},
                )
            )
            orders = list(
                await conn.execute(
                    text("SELECT buyer_id, unit_price_cents FROM orders WHERE stream_id = :s"),
                    {"s": sid},
                )
            )
        await engine.dispose()
        assert sequence == won and sequence == sorted(set(sequence))
        winner = [i for (i, _), plan in zip(bidders, plans, strict=True) if won[-1] in plan]
        assert [tuple(o) for o in orders] == [(winner[0], won[-1])]
    finally:
        await asyncio.gather(*(p.close() for p in pages))
        for node in nodes:
            node.stop()
