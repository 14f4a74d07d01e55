"""The seller's side of fulfilment on both engines: shipping a paid order, the show's sales
summary, and its orders as CSV."""

import csv
import io
from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import select, update

from api.commerce.holds import HoldExpiry
from api.commerce.models import Order
from api.db import utcnow
from api.shows.lifecycle import StreamLifecycle
from api.web.context import SERVICES
from api.webhooks.models import WebhookDelivery
from server.database import create_engine, session_factory
from tests.api.test_commerce import buy, live_show
from tests.conftest import Account, Shop, eventually, expect_error

Client = TestClient[Any, Any]
TRACKING = "https://track.example/parcel?id=JD0141"
ANN = {
    "name": "Ann Lee",
    "phone": "+49 30 1234567",
    "line1": "Torstraße 1",
    "line2": '=HYPERLINK("https://evil.example")',  # a formula, as a buyer may type one
    "city": "Berlin",
    "postal_code": "10119",
    "country": "DE",
}


async def order_for(client: Client, sid: str, buyer: Account, pid: str, qty: int = 1) -> Any:
    response = await buy(client, sid, buyer, pid, qty)
    assert response.status == 201, await response.text()
    return await response.json()


async def pay(client: Client, seller: Account, order: dict[str, Any]) -> None:
    paid = await client.post(f"/api/v1/orders/{order['id']}/pay", headers=seller.auth)
    assert paid.status == 200, await paid.text()


async def with_delivery(database_url: str, order_id: str, delivery: dict[str, str]) -> None:
    """The delivery details an order carries (copied from the buyer's account when placed)."""
    engine = create_engine(database_url)
    try:
        async with session_factory(engine).begin() as session:
            await session.execute(
                update(Order).where(Order.id == order_id).values(delivery=delivery)
            )
    finally:
        await engine.dispose()


async def deliveries(database_url: str, event: str) -> list[dict[str, Any]]:
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            rows = await session.scalars(
                select(WebhookDelivery.payload).where(WebhookDelivery.event == event)
            )
            return list(rows)
    finally:
        await engine.dispose()


async def test_the_seller_ships_a_paid_order(
    client: Client, shop: Shop, viewers: Any, database_url: str
) -> None:
    seller, sid, (pid,) = await live_show(client, shop, stock=5)
    buyer, stranger = await shop.account(), await shop.account("seller")
    buyer_page = await viewers(buyer)
    tracked = await order_for(client, sid, buyer, pid)
    untracked = await order_for(client, sid, buyer, pid)
    ship = f"/api/v1/orders/{tracked['id']}/ship"

    async with shop.unchanged():
        # Not paid yet: nothing ships.
        body = await expect_error(
            await client.post(ship, json={"tracking_url": TRACKING}, headers=seller.auth),
            409,
            "invalid_status",
        )
        assert body["details"] == {"status": "reserved"}
    await pay(client, seller, tracked)
    await pay(client, seller, untracked)
    async with shop.unchanged():
        for who in (buyer, stranger):
            await expect_error(await client.post(ship, json={}, headers=who.auth), 403, "forbidden")
        await expect_error(await client.post(ship, json={}), 401, "unauthorized")
        for bad in (
            "http://track.example/1",
            "javascript:alert(1)",
            "https://" + "a" * 2050 + ".example",
            "not a url",
            42,
        ):
            await expect_error(
                await client.post(ship, json={"tracking_url": bad}, headers=seller.auth),
                422,
                "invalid",
            )
        await expect_error(
            await client.post(ship, json={"carrier": "DHL"}, headers=seller.auth), 422, "invalid"
        )
        await expect_error(
            await client.post(ship, data="tracking", headers=seller.auth),
            415,
            "unsupported_media_type",
        )
        await expect_error(
            await client.post("/api/v1/orders/nope/ship", json={}, headers=seller.auth),
            404,
            "not_found",
        )

    # Without tracking first; "not again", and no cancelling once shipped (returns are the
    # shop's business).
    plain_url = f"/api/v1/orders/{untracked['id']}/ship"
    plain = await client.post(plain_url, json={"tracking_url": None}, headers=seller.auth)
    assert plain.status == 200 and (await plain.json())["tracking_url"] is None
    async with shop.unchanged():
        await expect_error(
            await client.post(plain_url, json={}, headers=seller.auth), 409, "invalid_status"
        )
        await expect_error(
            await client.post(f"/api/v1/orders/{untracked['id']}/cancel", headers=seller.auth),
            409,
            "invalid_status",
        )

    # With tracking, to a seller whose shop hears its webhooks (the outbox is checked: its
    # dispatcher's attempts would change the rows the checks above compare).
    hook = await client.post(
        "/api/v1/webhooks", json={"url": "https://shop.example/hooks"}, headers=seller.auth
    )
    assert hook.status == 201
    shipped = await client.post(ship, json={"tracking_url": TRACKING}, headers=seller.auth)
    assert shipped.status == 200, await shipped.text()
    order = await shipped.json()
    assert (order["status"], order["tracking_url"]) == ("shipped", TRACKING)
    assert order["shipped_at"] is not None and order["paid_at"] <= order["shipped_at"]

    def heard() -> list[dict[str, Any]]:
        return [o for o in buyer_page.received("order:status") if o["status"] == "shipped"]

    await eventually(lambda: len(heard()) == 2, 5, "the buyer's page missed the shipping")
    assert {o["id"]: o["tracking_url"] for o in heard()} == {
        tracked["id"]: TRACKING,
        untracked["id"]: None,
    }
    (event,) = await deliveries(database_url, "order.shipped")
    assert event["type"] == "order.shipped"
    assert (event["data"]["id"], event["data"]["status"], event["data"]["tracking_url"]) == (
        tracked["id"],
        "shipped",
        TRACKING,
    )
    # Shipped orders are still paid ones in the analytics.
    funnel = await (
        await client.get(f"/api/v1/streams/{sid}/analytics", headers=seller.auth)
    ).json()
    assert (funnel["products"][0]["paid"], funnel["products"][0]["revenue_cents"]) == (2, 5000)


async def sales_mix(client: Client, shop: Shop) -> tuple[Account, str, list[str], list[Any]]:
    """Two products; live orders paid, shipped, reserved, cancelled, refunded and expired (two),
    then the show ends and its replay sells one (reserved) and one more (paid)."""
    seller, sid, (scarf, mug) = await live_show(client, shop, stock=20, products=2)
    ann, ben = await shop.account(display_name="Ann"), await shop.account(display_name="Ben")
    paid = await order_for(client, sid, ann, scarf, 2)  # 2 x 25.00
    shipped = await order_for(client, sid, ben, mug)  # 1 x 25.00
    reserved = await order_for(client, sid, ann, mug, 3)  # 3 x 25.00
    cancelled = await order_for(client, sid, ben, scarf)
    refunded = await order_for(client, sid, ann, scarf)
    for order in (paid, shipped, refunded):
        await pay(client, seller, order)
    ship = await client.post(f"/api/v1/orders/{shipped['id']}/ship", json={}, headers=seller.auth)
    assert ship.status == 200
    for order in (cancelled, refunded):
        response = await client.post(f"/api/v1/orders/{order['id']}/cancel", headers=seller.auth)
        assert response.status == 200
    expired = await order_for(client, sid, ben, mug, 4)
    services = client.app[SERVICES]
    holds = HoldExpiry(services.sessions, services.rooms)
    assert await holds.sweep(utcnow() + timedelta(minutes=11)) == 2  # Ann's 3 mugs, Ben's 4
    again = await order_for(client, sid, ann, mug, 3)
    assert (await client.post(f"/api/v1/streams/{sid}/end", headers=seller.auth)).status == 200
    from_replay = await order_for(client, sid, ben, scarf)
    replay_paid = await order_for(client, sid, ann, mug)
    await pay(client, seller, replay_paid)
    orders = [paid, shipped, again, cancelled, refunded, expired, from_replay, replay_paid]
    orders.append(reserved)  # expired too
    return seller, sid, [scarf, mug], orders


def figure(orders: int, units: int, amount_cents: int) -> dict[str, int]:
    return {"orders": orders, "units": units, "amount_cents": amount_cents}


async def test_the_sales_summary_adds_up(client: Client, shop: Shop) -> None:
    seller, sid, (scarf, mug), _ = await sales_mix(client, shop)
    response = await client.get(f"/api/v1/streams/{sid}/sales", headers=seller.auth)
    assert response.status == 200, await response.text()
    sales = await response.json()
    assert sales["stream_id"] == sid
    (usd,) = sales["currencies"]
    price = 2500
    # Live: paid 2 scarves, shipped 1 mug, reserved 3 mugs; replay: reserved 1 scarf, paid 1 mug.
    assert {k: usd[k] for k in ("currency", "gross", "paid", "shipped", "pending")} == {
        "currency": "USD",
        "gross": figure(5, 8, 8 * price),
        "paid": figure(3, 4, 4 * price),
        "shipped": figure(1, 1, price),
        "pending": figure(2, 4, 4 * price),
    }
    assert usd["cancelled"] == figure(1, 1, price)  # Ben's scarf, never paid
    assert usd["refunded"] == figure(1, 1, price)  # Ann's scarf, paid, then cancelled
    assert usd["expired"] == figure(2, 7, 7 * price)  # the first 3 mugs and Ben's 4
    assert usd["by_product"] == [
        {
            "product_id": mug,
            "name": "P1",
            "units": 5,
            "gross_cents": 5 * price,
            "paid_cents": 2 * price,
            "pending_cents": 3 * price,
        },
        {
            "product_id": scarf,
            "name": "P0",
            "units": 3,
            "gross_cents": 3 * price,
            "paid_cents": 2 * price,
            "pending_cents": 1 * price,
        },
    ]
    live, replay = usd["by_source"]["live"], usd["by_source"]["replay"]
    assert (live["gross"], live["paid"], live["pending"]) == (
        figure(3, 6, 6 * price),
        figure(2, 3, 3 * price),
        figure(1, 3, 3 * price),
    )
    assert (replay["gross"], replay["paid"], replay["pending"]) == (
        figure(2, 2, 2 * price),
        figure(1, 1, price),
        figure(1, 1, price),
    )
    assert replay["cancelled"] == replay["expired"] == figure(0, 0, 0)

    other = await shop.account("seller")
    await expect_error(
        await client.get(f"/api/v1/streams/{sid}/sales", headers=other.auth), 403, "forbidden"
    )
    await expect_error(await client.get(f"/api/v1/streams/{sid}/sales"), 401, "unauthorized")
    await expect_error(
        await client.get("/api/v1/streams/nope/sales", headers=seller.auth), 404, "not_found"
    )
    moderator = await shop.account("moderator")
    staff = await client.get(f"/api/v1/streams/{sid}/sales", headers=moderator.auth)
    assert staff.status == 200 and await staff.json() == sales


async def test_mixed_currencies_are_summed_apart(client: Client, shop: Shop) -> None:
    seller = await shop.account("seller")
    dollars = await shop.product(seller, title="Mug", price_cents=1500)
    euros = await shop.product(seller, title="Tasse", price_cents=1200, currency="EUR")
    stream = await shop.stream(seller, product_ids=[dollars["id"], euros["id"]])
    services = client.app[SERVICES]
    await StreamLifecycle(services.sessions, services.rooms, services.bus).media_started(
        stream["id"]
    )
    buyer = await shop.account()
    for product, times in ((euros, 2), (dollars, 1)):
        for _ in range(times):
            await order_for(client, stream["id"], buyer, product["id"])
    sales = await (
        await client.get(f"/api/v1/streams/{stream['id']}/sales", headers=seller.auth)
    ).json()
    assert [(c["currency"], c["gross"]) for c in sales["currencies"]] == [
        ("EUR", figure(2, 2, 2400)),
        ("USD", figure(1, 1, 1500)),
    ]
    empty = await shop.stream(seller)
    nothing = await client.get(f"/api/v1/streams/{empty['id']}/sales", headers=seller.auth)
    assert await nothing.json() == {"stream_id": empty["id"], "currencies": []}


async def test_the_orders_csv(client: Client, shop: Shop, database_url: str) -> None:
    seller, sid, _, orders = await sales_mix(client, shop)
    await with_delivery(database_url, orders[0]["id"], ANN)
    await shop.execute(
        "UPDATE users SET display_name = :name WHERE id = :id",
        name="@SUM(A1:A9)",
        id=orders[1]["buyer_id"],
    )
    await shop.execute(
        "UPDATE streams SET title = :t WHERE id = :id", t="Scarves & mugs <live>", id=sid
    )
    url = f"/api/v1/streams/{sid}/orders.csv"
    response = await client.get(url, headers=seller.auth)
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert (
        response.headers["Content-Disposition"]
        == 'attachment; filename="scarves-mugs-live-orders.csv"'
    )
    rows = list(csv.DictReader(io.StringIO(await response.text(encoding="utf-8"))))
    assert list(rows[0]) == [
        "created_at",
        "order_id",
        "status",
        "product",
        "quantity",
        "unit_price",
        "total",
        "currency",
        "source",
        "buyer_name",
        "buyer_email",
        "delivery_name",
        "phone",
        "line1",
        "line2",
        "city",
        "postal_code",
        "region",
        "country",
        "payment_method",
        "paid_at",
        "shipped_at",
        "tracking_url",
    ]
    # An id may start with "-" (URL-safe base64): guarded too, a spreadsheet shows it as is.
    by_id = {row["order_id"].removeprefix("'"): row for row in rows}
    assert set(by_id) == {o["id"] for o in orders}
    first = by_id[orders[0]["id"]]
    assert {k: first[k] for k in ("status", "product", "quantity", "unit_price", "total")} == {
        "status": "paid",
        "product": "P0",
        "quantity": "2",
        "unit_price": "25.00",
        "total": "50.00",
    }
    assert (first["currency"], first["source"], first["buyer_name"]) == ("USD", "live", "Ann")
    assert first["buyer_email"].startswith("viewer-") and first["payment_method"] == "pay_later"
    assert (first["delivery_name"], first["line1"], first["city"], first["country"]) == (
        "Ann Lee",
        "Torstraße 1",
        "Berlin",
        "DE",
    )
    # No cell runs as a formula: each one that would starts with a quote.
    assert first["phone"] == "'+49 30 1234567"
    assert first["line2"] == '\'=HYPERLINK("https://evil.example")'
    assert by_id[orders[1]["id"]]["buyer_name"] == "'@SUM(A1:A9)"
    assert by_id[orders[1]["id"]]["status"] == "shipped"
    assert by_id[orders[1]["id"]]["shipped_at"] != ""
    assert by_id[orders[6]["id"]]["source"] == "replay"
    assert all(
        not cell.startswith(("=", "+", "-", "@", "\t", "\r")) for r in rows for cell in r.values()
    )
    assert [r["created_at"] for r in rows] == sorted(r["created_at"] for r in rows)

    buyer = await shop.account()
    await expect_error(await client.get(url, headers=buyer.auth), 403, "forbidden")
    await expect_error(await client.get(url), 401, "unauthorized")
    await expect_error(
        await client.get("/api/v1/streams/nope/orders.csv", headers=seller.auth), 404, "not_found"
    )
    admin = await shop.account("admin")
    assert (await client.get(url, headers=admin.auth)).status == 200


async def test_the_sellers_order_list_names_and_reaches_the_buyer(
    client: Client, shop: Shop, database_url: str
) -> None:
    seller, sid, (pid,) = await live_show(client, shop)
    buyer = await shop.account(display_name="Ann")
    order = await order_for(client, sid, buyer, pid)
    await with_delivery(database_url, order["id"], {**ANN, "line2": "Hinterhaus"})
    listed = await (await client.get(f"/api/v1/streams/{sid}/orders", headers=seller.auth)).json()
    assert listed[0]["buyer"] == {
        "id": buyer.id,
        "display_name": "Ann",
        "handle": "ann",
        "role": "viewer",
        "email": buyer.email,
    }
    assert listed[0]["delivery"]["city"] == "Berlin"
