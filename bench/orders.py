"""Flash-sale contention: N buyers at once for a few units, on SQLite or PostgreSQL.

    python -m bench.orders --buyers 1000 --units 10 --engine sqlite
    python -m bench.orders --buyers 1000 --units 10 --engine postgresql

Prints orders accepted, refusals, requests per second and p50/p99 latency, without the sales
gate (SHOPCAST_SALES_GATE_SECONDS=0: every buyer asks the database) and with it (the default),
each on a fresh database. Loopback only; the PostgreSQL run uses (and drops) its own database
next to SHOPCAST_TEST_POSTGRES_URL's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web
from sqlalchemy import insert, text
from sqlalchemy.engine import make_url

from api.db import new_id
from api.identity.auth import hash_password
from api.identity.models import User
from api.shows.lifecycle import StreamLifecycle
from api.web.context import SERVICES
from bench import emit
from server import migrate
from server.app import build_app
from server.database import create_engine
from server.settings import Settings

POSTGRES = os.environ.get(
    "SHOPCAST_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


async def _admin(sql: str) -> None:
    url = make_url(POSTGRES)
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


@asynccontextmanager
async def database(engine: str, tmp: Path) -> AsyncIterator[str]:
    """A fresh database's URL: a SQLite file in ``tmp``, or a PostgreSQL database dropped after."""
    if engine == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp}/bench.db"
        return
    name = f"shopcast_bench_{secrets.token_hex(4)}"
    await _admin(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(POSTGRES).set(database=name).render_as_string(hide_password=False)
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


GATES = (0.0, Settings.model_fields["sales_gate_seconds"].default)


@dataclass
class Served:
    """A node on loopback with a seller's live show of one product, and ``buyers`` accounts."""

    app: web.Application
    base: str
    http: aiohttp.ClientSession
    database_url: str
    seller: dict[str, str]  # the seller's Authorization header
    buyers: list[str]  # account ids
    product: str
    stream: str

    def token(self, user_id: str) -> str:
        return self.app[SERVICES].tokens.issue(user_id)


@asynccontextmanager
async def served(
    database_url: str, data_dir: Path, buyers: int, stock: int = 1, **settings: Any
) -> AsyncIterator[Served]:
    await asyncio.to_thread(migrate.upgrade, database_url)
    app = build_app(
        Settings(
            _env_file=None, data_dir=data_dir, database_url=database_url, auth_burst=100, **settings
        )
    )
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    seller_id = new_id()
    users = [
        {
            "id": seller_id,
            "email": "seller@bench.example.com",
            "display_name": "seller",
            "password_hash": hash_password("bench password"),
            "role": "seller",
        }
    ]
    users += [
        {
            "id": new_id(),
            "email": f"b{n}@bench.example.com",
            "display_name": f"b{n}",
            "password_hash": "x",
            "role": "viewer",
        }
        for n in range(buyers)
    ]
    engine = create_engine(database_url)
    async with engine.begin() as conn:
        await conn.execute(insert(User), users)
    await engine.dispose()
    seller = {"Authorization": f"Bearer {app[SERVICES].tokens.issue(seller_id)}"}
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)) as http:
            async with http.post(
                f"{base}/api/v1/products",
                headers=seller,
                json={"title": "Bench", "price_cents": 1000, "stock": stock},
            ) as r:
                product = (await r.json())["id"]
            async with http.post(
                f"{base}/api/v1/streams",
                headers=seller,
                json={"title": "Bench", "product_ids": [product]},
            ) as r:
                stream = (await r.json())["id"]
            services = app[SERVICES]
            lifecycle = StreamLifecycle(services.sessions, services.rooms, services.bus)
            await lifecycle.media_started(stream)
            buyer_ids = [u["id"] for u in users[1:]]
            yield Served(app, base, http, database_url, seller, buyer_ids, product, stream)
    finally:
        await runner.cleanup()


async def run(buyers: int, units: int, database_url: str, data_dir: Path, gate: float) -> None:
    async with served(
        database_url, data_dir, buyers, stock=units * 5, sales_gate_seconds=gate
    ) as shop:
        await _sale(shop, buyers, units, gate)


async def _sale(shop: Served, buyers: int, units: int, gate: float) -> None:
    http, base, stream, product = shop.http, shop.base, shop.stream, shop.product
    sale = {
        "price_cents": 500,
        "quantity": units,
        "per_buyer_limit": 1,
        "duration_seconds": 300,
    }
    async with http.post(
        f"{base}/api/v1/streams/{stream}/pins",
        headers=shop.seller,
        json={"product_id": product, "sale": sale},
    ) as r:
        assert r.status == 201

    async def buy(user_id: str, body: dict[str, object]) -> tuple[int, float]:
        headers = {
            "Authorization": f"Bearer {shop.token(user_id)}",
            "Idempotency-Key": secrets.token_hex(8),
        }
        started = time.perf_counter()
        async with http.post(
            f"{base}/api/v1/streams/{stream}/orders",
            headers=headers,
            json=body,
        ) as response:
            await response.read()
            return response.status, time.perf_counter() - started

    began = time.perf_counter()
    results = await asyncio.gather(*(buy(b, {"product_id": product}) for b in shop.buyers))
    wall = time.perf_counter() - began
    # The same-run floor: as many requests refused by validation, before any database work.
    floor = await asyncio.gather(*(buy(b, {"product_id": ""}) for b in shop.buyers))
    statuses = Counter(status for status, _ in results)
    latencies = sorted(latency for _, latency in results)
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
    bare = sorted(latency for _, latency in floor)
    f = lambda q: bare[min(len(bare) - 1, int(q * len(bare)))] * 1000  # noqa: E731
    name = make_url(shop.database_url).get_backend_name()
    print(
        f"{name}, sales gate "
        f"{f'{gate:g} s' if gate else 'off'}: {buyers} buyers for {units} units: "
        f"{statuses[201]} orders, refusals {dict((k, v) for k, v in statuses.items() if k != 201)}"
    )
    print(
        f"  {buyers / wall:,.0f} requests/s over {wall:.2f} s; latency p50 {p(0.5):.0f} ms, "
        f"p99 {p(0.99):.0f} ms"
    )
    print(
        f"  floor, {buyers} requests refused by validation (no database): "
        f"p50 {f(0.5):.0f} ms, p99 {f(0.99):.0f} ms"
    )
    check = create_engine(shop.database_url)
    async with check.connect() as conn:
        stock = (await conn.execute(text("SELECT stock FROM products"))).scalar_one()
    await check.dispose()
    print(f"  stock left {stock} (started {units * 5}); never negative by the CHECK constraint")
    emit(
        engine=name,
        gate_seconds=gate,
        buyers=buyers,
        units=units,
        orders=statuses[201],
        requests_per_s=round(buyers / wall),
        p99_ms=round(p(0.99)),
        floor_p99_ms=round(f(0.99)),
    )


async def main(buyers: int, units: int, engine: str) -> None:
    for gate in GATES:
        with tempfile.TemporaryDirectory() as tmp:
            async with database(engine, Path(tmp)) as url:
                await run(buyers, units, url, Path(tmp), gate)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buyers", type=int, default=1000)
    parser.add_argument("--units", type=int, default=10)
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    asyncio.run(main(args.buyers, args.units, args.engine))
