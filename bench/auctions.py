"""Auction contention: N bidders on Socket.IO bidding at once on one auction, on both engines.

    python -m bench.auctions                       # 1,000 bidders, SQLite then PostgreSQL
    python -m bench.auctions --bidders 500 --engine postgresql

Each bidder bids ``--rounds`` times at once with the others, each time a little over the next
minimum its last ack named, so most bids race for the same amounts; then a hundred of them
outbid each other in turns (a bidding war, each accepted bid sent to all). Prints accepted bids per
second and the acks' p50/p99 of both, and, as the same-run floor, the acks of as many bids
refused by validation (no database work); then closes the auction and checks there is one
rising sequence and one order.
Loopback only; the PostgreSQL run uses (and drops) its own database next to
SHOPCAST_TEST_POSTGRES_URL's.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable
from datetime import timedelta
from pathlib import Path
from typing import Any

import socketio
from sqlalchemy import text
from sqlalchemy.engine import make_url

from api.commerce.auctions import AUCTIONS
from api.commerce.delays import CAP
from api.commerce.hammer import Hammer
from api.web.context import SERVICES
from bench import emit
from bench.orders import Served, database, served
from server.database import create_engine

CONNECT_AT_ONCE = 50
WAR_BIDS = 200
WAR_BIDDERS = 100


async def _bidders(base: str, tokens: list[str]) -> list[socketio.AsyncClient]:
    clients = []
    for batch in range(0, len(tokens), CONNECT_AT_ONCE):
        chunk = [socketio.AsyncClient(reconnection=False) for _ in tokens[batch:][:CONNECT_AT_ONCE]]
        await asyncio.gather(
            *(
                c.connect(base, auth={"token": t}, transports=["websocket"], wait_timeout=30)
                for c, t in zip(chunk, tokens[batch:], strict=False)
            )
        )
        clients += chunk
    return clients


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def _timed(call: Awaitable[Any]) -> tuple[Any, float]:
    """What ``call`` (not yet started) returns, and how long it took."""
    started = time.perf_counter()
    ack = await call
    return ack, time.perf_counter() - started


async def run(bidders: int, rounds: int, database_url: str, data_dir: Path) -> None:
    async with served(database_url, data_dir, bidders) as shop:
        await _auction(shop, bidders, rounds)


async def _auction(shop: Served, bidders: int, rounds: int) -> None:
    http = shop.http
    pinned = {"product_id": shop.product}
    pins = f"{shop.base}/api/v1/streams/{shop.stream}/pins"
    async with http.post(pins, json=pinned, headers=shop.seller) as r:
        assert r.status == 201, await r.text()
    body = {
        "product_id": shop.product,
        "start_price_cents": 1000,
        "increment_cents": 10,
        "duration_seconds": 300,
    }
    auctions = f"{shop.base}/api/v1/streams/{shop.stream}/auctions"
    async with http.post(auctions, json=body, headers=shop.seller) as r:
        assert r.status == 201, await r.text()
        auction = (await r.json())["id"]
    clients = await _bidders(shop.base, [shop.token(b) for b in shop.buyers])
    try:
        for client in clients:
            joined = await client.call("stream:join", {"stream_id": shop.stream}, timeout=60)
            assert joined["ok"], joined
        base = {"stream_id": shop.stream, "auction_id": auction}

        async def bid(client: socketio.AsyncClient) -> list[tuple[Any, float]]:
            acks, next_min = [], 1000
            for _ in range(rounds):
                payload = {**base, "amount_cents": next_min + 10 * secrets.randbelow(50)}
                ack, took = await _timed(client.call("auction:bid", payload, timeout=120))
                acks.append((ack, took))
                next_min = _next_mins([(ack, took)])[0]
            return acks

        began = time.perf_counter()
        results = [a for acks in await asyncio.gather(*(bid(c) for c in clients)) for a in acks]
        wall = time.perf_counter() - began
        invalid = {**base, "amount_cents": "ten"}
        floor = await asyncio.gather(
            *(_timed(c.call("auction:bid", invalid, timeout=120)) for c in clients)
        )
        war, war_wall = await _war(clients[:WAR_BIDDERS], base, next_min=max(_next_mins(results)))
    finally:
        await asyncio.gather(*(c.disconnect() for c in clients))
    statuses = Counter(ack.get("status", ack.get("error")) for ack, _ in results)
    latencies = [took for _, took in results]
    floors = [took for _, took in floor]
    name = make_url(shop.database_url).get_backend_name()
    accepted = statuses["accepted"]
    print(
        f"{name}: {bidders} bidders x {rounds} bids: {accepted} accepted, "
        f"refused {dict((k, v) for k, v in statuses.items() if k != 'accepted')}"
    )
    print(
        f"  {accepted / wall:,.0f} accepted bids/s, {len(results) / wall:,.0f} acks/s over "
        f"{wall:.2f} s; ack p50 {_percentile(latencies, 0.5):.0f} ms, "
        f"p99 {_percentile(latencies, 0.99):.0f} ms"
    )
    print(
        f"  floor, {len(floor)} bids refused by validation (no database): "
        f"p50 {_percentile(floors, 0.5):.0f} ms, p99 {_percentile(floors, 0.99):.0f} ms"
    )
    war_times = [took for _, took in war]
    print(
        f"  bidding war, {WAR_BIDDERS} bidders in turns at the next minimum, {bidders} watching: "
        f"{len(war) / war_wall:,.0f} accepted bids/s; ack p50 {_percentile(war_times, 0.5):.0f} "
        f"ms, p99 {_percentile(war_times, 0.99):.0f} ms"
    )
    sold = await _close(shop, auction)
    print(f"  closed: {sold}")
    emit(
        engine=name,
        bidders=bidders,
        accepted=accepted,
        accepted_per_s=round(accepted / wall),
        ack_p50_ms=round(_percentile(latencies, 0.5)),
        ack_p99_ms=round(_percentile(latencies, 0.99)),
        floor_p99_ms=round(_percentile(floors, 0.99)),
        war_accepted_per_s=round(len(war) / war_wall),
        war_ack_p99_ms=round(_percentile(war_times, 0.99)),
    )


def _next_mins(results: list[tuple[Any, float]]) -> list[int]:
    return [a["auction"]["next_min_cents"] if a["ok"] else a["next_min_cents"] for a, _ in results]


async def _war(
    turns: list[socketio.AsyncClient], base: dict[str, str], next_min: int
) -> tuple[list[tuple[Any, float]], float]:
    """Bidders outbidding each other by the increment in turns, one bid in flight at a time:
    how fast an auction can move, each accepted bid sent to every watcher (each bidder bids
    within its rate limit)."""
    acks = []
    began = time.perf_counter()
    for turn in range(WAR_BIDS):
        payload = {**base, "amount_cents": next_min}
        bidder = turns[turn % len(turns)]
        ack, took = await _timed(bidder.call("auction:bid", payload, timeout=120))
        assert ack["ok"], ack
        acks.append((ack, took))
        next_min = ack["auction"]["next_min_cents"]
    return acks, time.perf_counter() - began


async def _close(shop: Served, auction: str) -> str:
    """Move the auctions' clock past the close, hammer, and check what the database holds."""
    auctions = shop.app[AUCTIONS]
    later = auctions.clock() + timedelta(seconds=300) + CAP
    auctions.clock = lambda: later
    services = shop.app[SERVICES]
    await Hammer(services.sessions, services.rooms, auctions).close_due()
    engine = create_engine(shop.database_url)
    async with engine.connect() as conn:
        amounts = list(
            await conn.scalars(
                text("SELECT amount_cents FROM bids WHERE auction_id = :a ORDER BY id"),
                {"a": auction},
            )
        )
        state, high = (
            await conn.execute(
                text("SELECT state, high_cents FROM auctions WHERE id = :a"), {"a": auction}
            )
        ).one()
        orders = (await conn.execute(text("SELECT count(*) FROM orders"))).scalar_one()
    await engine.dispose()
    rising = amounts == sorted(set(amounts))
    return (
        f"{state} at {high} ({len(amounts)} bids, strictly rising: {rising}); "
        f"{orders} order{'s' if orders != 1 else ''}"
    )


async def main(bidders: int, rounds: int, engines: list[str]) -> None:
    for engine in engines:
        with tempfile.TemporaryDirectory() as tmp:
            async with database(engine, Path(tmp)) as url:
                await run(bidders, rounds, url, Path(tmp))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bidders", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], action="append")
    args = parser.parse_args()
    asyncio.run(main(args.bidders, args.rounds, args.engine or ["sqlite", "postgresql"]))
