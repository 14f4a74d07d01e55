"""Pins, flash sales and orders on both engines, including 1,000 buyers racing for 10 units."""

import asyncio
import secrets
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import insert

from api.commerce.gate import GATE
from api.commerce.holds import HoldExpiry
from api.commerce.models import Order
from api.db import new_id, utcnow
from api.identity.models import User
from api.shows.lifecycle import StreamLifecycle
from api.web.context import SERVICES
from server.database import create_engine
from tests.conftest import Account, Shop, eventually, expect_error

Client = TestClient[Any, Any]


async def live_show(
    client: Client, shop: Shop, *, stock: int = 10, products: int = 1
) -> tuple[Account, str, list[str]]:
    seller = await shop.account("seller")
    ids = [
        (await shop.product(seller, title=f"P{n}", stock=stock, price_cents=2500))["id"]
        for n in range(products)
    ]
    stream = await shop.stream(seller, product_ids=ids)
    services = client.app[SERVICES]
    await StreamLifecycle(services.sessions, services.rooms, services.bus).media_started(
        stream["id"]
    )
    return seller, stream["id"], ids


def buy(
    client: Client,
    stream_id: str,
    account: Account,
    product_id: str,
    quantity: int = 1,
    key: str | None = None,
) -> Any:
    headers = {**account.auth, "Idempotency-Key": key or secrets.token_hex(8)}
    return client.post(
        f"/api/v1/streams/{stream_id}/orders",
        json={"product_id": product_id, "quantity": quantity},
        headers=headers,
    )


async def test_pin_unpin_and_timeline(client: Client, shop: Shop, viewers: Any) -> None:
    seller, sid, (pid,) = await live_show(client, shop)
    watcher = await viewers()
    assert (await watcher.call("stream:join", {"stream_id": sid}))["ok"]
    pinned = await client.post(
        f"/api/v1/streams/{sid}/pins",
        headers=seller.auth,
        json={"product_id": pid, "x": 0.2, "y": 0.8},
    )
    assert pinned.status == 201
    body = await pinned.json()
    assert (body["x"], body["y"], body["sale"]) == (0.2, 0.8, None)
    event = await watcher.wait_for("product:pinned")
    assert event["product"]["id"] == pid and event["x"] == 0.2
    assert (
        await client.delete(f"/api/v1/streams/{sid}/pins/{pid}", headers=seller.auth)
    ).status == 204
    assert (await watcher.wait_for("product:unpinned"))["product_id"] == pid
    tagged = await client.post(
        f"/api/v1/streams/{sid}/products/{pid}/tag",
        headers=seller.auth,
        json={"x": 0.5, "y": 0.5, "timestamp": 3},
    )
    assert tagged.status == 200
    assert (await watcher.wait_for("product:tagged"))["stock"] == 10
    timeline = await (await client.get(f"/api/v1/streams/{sid}/pins")).json()
    assert timeline["pinned"] == []
    assert [e["action"] for e in timeline["timeline"]] == ["pin", "unpin", "tag"]
    assert all(
        e["offset_seconds"] is not None and e["offset_seconds"] >= 0 for e in timeline["timeline"]
    )
    assert timeline["timeline"][0]["price_cents"] == 2500


async def test_pin_refusals_change_nothing(client: Client, shop: Shop) -> None:
    seller, sid, ids = await live_show(client, shop, products=4, stock=5)
    for pid in ids[:3]:
        assert (
            await client.post(
                f"/api/v1/streams/{sid}/pins", headers=seller.auth, json={"product_id": pid}
            )
        ).status == 201
    other = await shop.account("seller")
    loose = await shop.product(seller)
    url = f"/api/v1/streams/{sid}/pins"
    async with shop.unchanged():
        await expect_error(
            await client.post(url, headers=seller.auth, json={"product_id": ids[3]}),
            409,
            "too_many_pins",
        )
        await expect_error(
            await client.post(url, headers=other.auth, json={"product_id": ids[0]}),
            403,
            "forbidden",
        )
        await expect_error(
            await client.post(url, headers=seller.auth, json={"product_id": loose["id"]}),
            404,
            "not_found",
        )
        await expect_error(
            await client.post(url, headers=seller.auth, json={"product_id": ids[0], "x": 0.5}),
            422,
            "invalid",
        )
        await expect_error(
            await client.post(
                url,
                headers=seller.auth,
                json={
                    "product_id": ids[0],
                    "sale": {"price_cents": 100, "quantity": 6, "duration_seconds": 60},
                },
            ),
            422,
            "not_enough_stock",
        )
        await expect_error(
            await client.post(
                url,
                headers=seller.auth,
                json={
                    "product_id": ids[0],
                    "sale": {"price_cents": 100, "quantity": 1, "duration_seconds": 5},
                },
            ),
            422,
            "invalid",
        )
        await expect_error(
            await client.delete(f"{url}/{ids[3]}", headers=seller.auth), 409, "not_pinned"
        )


async def test_orders_take_stock_and_replays_return_the_same_order(
    client: Client, shop: Shop, viewers: Any
) -> None:
    seller, sid, (pid,) = await live_show(client, shop, stock=3)
    buyer = await shop.account(display_name="Ann")
    watcher = await viewers()
    await watcher.call("stream:join", {"stream_id": sid})
    first = await buy(client, sid, buyer, pid, 2, key="order-key-0001")
    assert first.status == 201
    order = await first.json()
    assert (order["status"], order["quantity"], order["unit_price_cents"], order["in_sale"]) == (
        "reserved",
        2,
        2500,
        False,
    )
    sold = await watcher.wait_for("product:stock")
    assert (sold["stock"], sold["buyer"]) == (1, "Ann")
    async with shop.unchanged():
        replay = await buy(client, sid, buyer, pid, 2, key="order-key-0001")
        assert replay.status == 201 and (await replay.json())["id"] == order["id"]
        await expect_error(
            await buy(client, sid, buyer, pid, 1, key="order-key-0001"),
            422,
            "idempotency_key_reused",
        )
        await expect_error(await buy(client, sid, buyer, pid, 2), 409, "out_of_stock")
        response = await client.post(
            f"/api/v1/streams/{sid}/orders", json={"product_id": pid}, headers=buyer.auth
        )
        await expect_error(response, 400, "idempotency_key_required")
        await expect_error(await buy(client, sid, buyer, pid, 0), 422, "invalid")
        await expect_error(await buy(client, sid, buyer, "nope"), 404, "not_found")
        response = await client.post(
            f"/api/v1/streams/{sid}/orders",
            json={"product_id": pid},
            headers={"Idempotency-Key": "anonymous-key"},
        )
        await expect_error(response, 401, "unauthorized")
    listed = await (await client.get(f"/api/v1/streams/{sid}/orders", headers=seller.auth)).json()
    assert [(o["id"], o["buyer"]["display_name"]) for o in listed] == [(order["id"], "Ann")]
    await expect_error(
        await client.get(f"/api/v1/streams/{sid}/orders", headers=buyer.auth), 403, "forbidden"
    )


async def test_no_orders_unless_live(client: Client, shop: Shop) -> None:
    seller, buyer = await shop.account("seller"), await shop.account()
    product = await shop.product(seller)
    stream = await shop.stream(seller, product_ids=[product["id"]])
    async with shop.unchanged():
        error = await expect_error(
            await buy(client, stream["id"], buyer, product["id"]), 409, "not_live"
        )
    assert error["details"]["status"] == "created"


async def test_orders_follow_the_shows_audience_and_bans(client: Client, shop: Shop) -> None:
    # Buying is watching: a followers-only show sells to followers only, a ban stops orders,
    # and a refused order takes no stock, from the product or from a 1-cent flash sale.
    seller, stranger, troll = (
        await shop.account("seller"),
        await shop.account(),
        await shop.account(),
    )
    product = await shop.product(seller, stock=5)
    pid = product["id"]
    private = await shop.stream(seller, audience="followers", product_ids=[pid])
    public = await shop.stream(seller, product_ids=[pid])
    services = client.app[SERVICES]
    lifecycle = StreamLifecycle(services.sessions, services.rooms, services.bus)
    for sid in (private["id"], public["id"]):
        await lifecycle.media_started(sid)
    sale = {"price_cents": 1, "quantity": 3, "per_buyer_limit": 3, "duration_seconds": 60}
    pinned = await client.post(
        f"/api/v1/streams/{private['id']}/pins",
        headers=seller.auth,
        json={"product_id": pid, "sale": sale},
    )
    assert pinned.status == 201
    ban = await client.put(
        f"/api/v1/streams/{public['id']}/sanctions/{troll.id}/ban", headers=seller.auth
    )
    assert ban.status == 204
    async with shop.unchanged():
        await expect_error(
            await buy(client, private["id"], stranger, pid), 403, "audience_restricted"
        )
        await expect_error(await buy(client, public["id"], troll, pid), 403, "banned")
    follow = await client.post(f"/api/v1/users/{seller.id}/follow", headers=stranger.auth)
    assert follow.status in (200, 204)
    bought = await buy(client, private["id"], stranger, pid)
    assert bought.status == 201
    assert (await bought.json())["unit_price_cents"] == 1
    assert (await buy(client, public["id"], stranger, pid)).status == 201


async def test_flash_sale_limits_and_end(client: Client, shop: Shop) -> None:
    seller, sid, (pid,) = await live_show(client, shop, stock=20)
    sale = {"price_cents": 999, "quantity": 3, "per_buyer_limit": 2, "duration_seconds": 60}
    pinned = await client.post(
        f"/api/v1/streams/{sid}/pins", headers=seller.auth, json={"product_id": pid, "sale": sale}
    )
    assert (await pinned.json())["sale"]["remaining"] == 3
    ann, bob = await shop.account(), await shop.account()
    order = await (await buy(client, sid, ann, pid, 2)).json()
    assert (order["unit_price_cents"], order["in_sale"]) == (999, True)
    async with shop.unchanged():
        error = await expect_error(await buy(client, sid, ann, pid, 1), 409, "limit_reached")
        assert error["details"] == {"limit": 2, "bought": 2}
        await expect_error(await buy(client, sid, bob, pid, 2), 409, "out_of_stock")
    last = await buy(client, sid, bob, pid, 1)
    assert last.status == 201
    await expect_error(await buy(client, sid, bob, pid, 1), 409, "out_of_stock")
    # A cancelled sale order gives its unit back to the running sale.
    bob_order = (await last.json())["id"]
    assert (await client.post(f"/api/v1/orders/{bob_order}/cancel", headers=bob.auth)).status == 200
    pins = await (await client.get(f"/api/v1/streams/{sid}/pins")).json()
    assert pins["pinned"][0]["sale"]["remaining"] == 1
    assert (await buy(client, sid, bob, pid, 1, key="bob-buys-again")).status == 201
    other = await shop.stream(seller, product_ids=[pid])
    async with shop.unchanged():
        reused = await buy(client, other["id"], bob, pid, 1, key="bob-buys-again")
        await expect_error(reused, 422, "idempotency_key_reused")
    await shop.execute(
        "UPDATE stream_products SET sale_remaining = 5, sale_ends_at = :t WHERE product_id = :p",
        t=utcnow() - timedelta(seconds=1),
        p=pid,
    )
    client.app[GATE].forget(sid, pid)  # the rows changed behind the node's back
    carl = await shop.account()
    async with shop.unchanged():
        await expect_error(await buy(client, sid, carl, pid), 409, "sale_ended")
    product = await (await client.get(f"/api/v1/products/{pid}")).json()
    assert product["stock"] == 17


async def test_pay_cancel_and_expiry_return_stock(client: Client, shop: Shop, viewers: Any) -> None:
    seller, sid, (pid,) = await live_show(client, shop, stock=5)
    buyer, stranger = await shop.account(), await shop.account()
    # The buyer's pages hear each order's status as it changes; nobody else's do.
    buyer_page, stranger_page = await viewers(buyer), await viewers(stranger)
    a = await (await buy(client, sid, buyer, pid, 1)).json()
    b = await (await buy(client, sid, buyer, pid, 2)).json()
    c = await (await buy(client, sid, buyer, pid, 1)).json()
    async with shop.unchanged():
        await expect_error(
            await client.post(f"/api/v1/orders/{a['id']}/pay", headers=buyer.auth), 403, "forbidden"
        )
        await expect_error(
            await client.get(f"/api/v1/orders/{a['id']}", headers=stranger.auth), 404, "not_found"
        )
    paid = await (await client.post(f"/api/v1/orders/{a['id']}/pay", headers=seller.auth)).json()
    assert paid["status"] == "paid"
    await expect_error(
        await client.post(f"/api/v1/orders/{a['id']}/pay", headers=seller.auth),
        409,
        "invalid_status",
    )
    await expect_error(
        await client.post(f"/api/v1/orders/{a['id']}/cancel", headers=buyer.auth),
        409,
        "invalid_status",
    )
    cancelled = await (
        await client.post(f"/api/v1/orders/{b['id']}/cancel", headers=buyer.auth)
    ).json()
    assert cancelled["status"] == "cancelled"
    assert (await (await client.get(f"/api/v1/products/{pid}")).json())["stock"] == 3
    services = client.app[SERVICES]
    holds = HoldExpiry(services.sessions, services.rooms)
    assert await holds.sweep() == 0
    assert await holds.sweep(utcnow() + timedelta(minutes=11)) == 1
    assert (await (await client.get(f"/api/v1/orders/{c['id']}", headers=buyer.auth)).json())[
        "status"
    ] == "expired"
    assert (await (await client.get(f"/api/v1/products/{pid}")).json())["stock"] == 4
    expected = {(a["id"], "paid"), (b["id"], "cancelled"), (c["id"], "expired")}
    expected |= {(o["id"], "reserved") for o in (a, b, c)}

    def heard() -> set[tuple[str, str]]:
        return {(o["id"], o["status"]) for o in buyer_page.received("order:status")}

    await eventually(lambda: heard() == expected, 5, "the buyer's page missed a status")
    assert not stranger_page.received("order:status")
    summary = await (
        await client.get(f"/api/v1/streams/{sid}/analytics", headers=seller.auth)
    ).json()
    assert summary["products"][0]["purchases"] == 1


@pytest.mark.timeout(180)
async def test_a_thousand_buyers_for_ten_units(
    client: Client, shop: Shop, database_url: str
) -> None:
    seller, sid, (pid,) = await live_show(client, shop, stock=50)
    sale = {"price_cents": 500, "quantity": 10, "per_buyer_limit": 1, "duration_seconds": 300}
    await client.post(
        f"/api/v1/streams/{sid}/pins", headers=seller.auth, json={"product_id": pid, "sale": sale}
    )
    tokens = client.app[SERVICES].tokens
    users = [
        {
            "id": new_id(),
            "email": f"b{n}-{secrets.token_hex(3)}@example.com",
            "display_name": f"b{n}",
            "password_hash": "x",
            "role": "viewer",
        }
        for n in range(1000)
    ]
    engine = create_engine(database_url)
    async with engine.begin() as conn:
        await conn.execute(insert(User), users)
    await engine.dispose()
    buyers = [Account(u["id"], tokens.issue(u["id"]), u["email"], "") for u in users]
    statuses = await asyncio.gather(*(_status(buy(client, sid, b, pid)) for b in buyers))
    assert statuses.count(201) == 10
    assert set(statuses) == {201, 409}
    snapshot = await shop.snapshot()
    status = Order.__table__.columns.keys().index("status")
    assert len([o for o in snapshot["orders"] if o[status] == "reserved"]) == 10
    product = await (await client.get(f"/api/v1/products/{pid}")).json()
    assert product["stock"] == 40
    pins = await (await client.get(f"/api/v1/streams/{sid}/pins")).json()
    assert pins["pinned"][0]["sale"]["remaining"] == 0


async def _status(request: Any) -> int:
    async with request as response:
        return int(response.status)


async def test_the_replay_sells_at_the_regular_price_while_the_seller_allows_it(
    client: Client, shop: Shop
) -> None:
    seller, sid, (pid,) = await live_show(client, shop, stock=3)
    sale = {"price_cents": 900, "quantity": 2, "duration_seconds": 60}
    pinned = await client.post(
        f"/api/v1/streams/{sid}/pins", json={"product_id": pid, "sale": sale}, headers=seller.auth
    )
    assert pinned.status == 201, await pinned.text()
    live_buyer, replay_buyer = await shop.account(), await shop.account()
    during = await (await buy(client, sid, live_buyer, pid)).json()
    assert (during["unit_price_cents"], during["in_sale"], during["from_replay"]) == (
        900,
        True,
        False,
    )
    assert (await client.post(f"/api/v1/streams/{sid}/end", headers=seller.auth)).status == 200

    # After the show the flash sale is gone: the replay sells at the list price, from stock.
    after = await buy(client, sid, replay_buyer, pid)
    assert after.status == 201, await after.text()
    order = await after.json()
    assert (order["unit_price_cents"], order["in_sale"], order["from_replay"]) == (
        2500,
        False,
        True,
    )
    assert (await (await client.get(f"/api/v1/products/{pid}")).json())["stock"] == 1
    paid = await client.post(f"/api/v1/orders/{order['id']}/pay", headers=seller.auth)
    assert paid.status == 200
    split = (
        await (await client.get(f"/api/v1/streams/{sid}/analytics", headers=seller.auth)).json()
    )["orders_by_source"]
    assert split == {
        "live": {"orders": 1, "paid": 0, "revenue_cents": 0},
        "replay": {"orders": 1, "paid": 1, "revenue_cents": 2500},
    }

    # The seller stops selling from the replay (the one setting a finished show still takes).
    async with shop.unchanged():
        await expect_error(
            await client.patch(
                f"/api/v1/streams/{sid}/settings", json={"title": "New"}, headers=seller.auth
            ),
            409,
            "stream_finished",
        )
    closed = await client.patch(
        f"/api/v1/streams/{sid}/settings", json={"shoppable_replay": False}, headers=seller.auth
    )
    assert closed.status == 200 and (await closed.json())["shoppable_replay"] is False
    async with shop.unchanged():
        await expect_error(await buy(client, sid, replay_buyer, pid), 409, "not_live")
