"""The sales gate: the database's last "sold out" repeated by the node for a second, with no
database work, never more than the database said, and never to a buyer's retry."""

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import event

from api.commerce.gate import GATE, SalesGate
from api.commerce.holds import HoldExpiry
from api.db import utcnow
from api.web.context import SERVICES
from api.web.errors import ApiError
from tests.api.test_commerce import buy, live_show
from tests.conftest import Shop, expect_error

SOLD_OUT = ApiError(409, "out_of_stock", "Sold out", {"remaining": 0})


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_the_gate_repeats_a_refusal_for_its_seconds_only() -> None:
    clock = Clock()
    gate = SalesGate(1.0, clock)
    async with gate.admit("s", "p", "ann", "k1"):  # nothing known: let through
        gate.learn("s", "p", 0, SOLD_OUT)
    with pytest.raises(ApiError) as refused:
        async with gate.admit("s", "p", "ben", "k2"):
            pytest.fail("let through a sold-out offer")
    assert (refused.value.code, refused.value.details) == ("out_of_stock", {"gate": True})
    async with gate.admit("s", "p", "ann", "k1"):  # a retry of a request it let through goes on
        pass
    async with gate.admit("s", "other", "ben", "k3"):  # another offer is not closed
        pass
    clock.now += 1.01
    async with gate.admit("s", "p", "cleo", "k4"):  # stale: one buyer asks the database again
        gate.learn("s", "p", 0, SOLD_OUT)
    gate.forget("s", "p")  # units came back
    async with gate.admit("s", "p", "dan", "k5"):
        pass
    off = SalesGate(0, clock)
    off.learn("s", "p", 0, SOLD_OUT)
    async with off.admit("s", "p", "eve", "k6"):
        pass


async def test_no_more_buyers_at_the_database_than_units_left() -> None:
    gate = SalesGate(1.0)
    gate.learn("s", "p", 2)
    asking, most = 0, 0

    async def buyer(n: int) -> str:
        nonlocal asking, most
        try:
            async with gate.admit("s", "p", f"b{n}", f"k{n}"):
                asking += 1
                most = max(most, asking)
                await asyncio.sleep(0.01)
                asking -= 1
                won = n < 2  # the first two take the units; the database says so
                gate.learn("s", "p", 2 - min(n + 1, 2), None if won else SOLD_OUT)
                return "won" if won else "refused by the database"
        except ApiError:
            return "refused by the gate"

    outcomes = await asyncio.gather(*(buyer(n) for n in range(50)))
    assert most <= 2, most
    assert outcomes.count("won") == 2
    assert outcomes.count("refused by the gate") >= 45, outcomes


@contextmanager
def statements(client: TestClient[Any, Any]) -> Iterator[list[str]]:
    """The SQL the app's write engine runs meanwhile."""
    engine = client.app[SERVICES].sessions.kw["bind"].sync_engine
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        seen.append(sql)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def test_a_sold_out_offer_is_refused_without_the_database(
    client: TestClient[Any, Any], shop: Shop
) -> None:
    _, sid, (pid,) = await live_show(client, shop, stock=1)
    ann, ben, cleo = await shop.account(), await shop.account(), await shop.account()
    won = await (await buy(client, sid, ann, pid, key="ann-buys-it")).json()
    # Ann's order left nothing: the node knows, and tells Ben without asking the database.
    with statements(client) as sql:
        gated = await expect_error(await buy(client, sid, ben, pid), 409, "out_of_stock")
    assert gated["details"] == {"gate": True} and sql == []
    # Ann's retry is the database's to answer: she gets her order back.
    again = await buy(client, sid, ann, pid, key="ann-buys-it")
    assert again.status == 201 and (await again.json())["id"] == won["id"]
    # Ann cancels: the unit is back and the gate opens at once on this node.
    cancel = await client.post(f"/api/v1/orders/{won['id']}/cancel", headers=ann.auth)
    assert cancel.status == 200
    assert (await buy(client, sid, cleo, pid)).status == 201


async def test_a_hold_that_runs_out_opens_the_gate_at_once(
    client: TestClient[Any, Any], shop: Shop
) -> None:
    services = client.app[SERVICES]
    holds = HoldExpiry(services.sessions, services.rooms, gate=client.app[GATE])
    _, sid, (pid,) = await live_show(client, shop, stock=1)
    ann, ben = await shop.account(), await shop.account()
    assert (await buy(client, sid, ann, pid)).status == 201
    gated = await expect_error(await buy(client, sid, ben, pid), 409, "out_of_stock")
    assert gated["details"] == {"gate": True}
    # Ann's hold runs out within the gate's second: Ben is not told "sold out" again.
    assert await holds.sweep(utcnow() + timedelta(minutes=11)) == 1
    assert (await buy(client, sid, ben, pid)).status == 201
