"""The buyer's side of orders on both engines: delivery details on the account and on reserved
orders, their copy at purchase, the buyer's own order list, and the seller's checkout method
on the show."""

from typing import Any

from aiohttp.test_utils import TestClient

from tests.api.test_commerce import buy, live_show
from tests.conftest import Shop, expect_error

Client = TestClient[Any, Any]

ADDRESS = {
    "name": " Ann Lee ",
    "phone": "+49 30 1234567",
    "line1": "Oranienstr. 25",
    "city": "Berlin",
    "postal_code": "10999",
    "country": "de",
}
# Trimmed, the country upper-cased, the optional fields left out null.
STORED = {**ADDRESS, "name": "Ann Lee", "country": "DE", "line2": None, "region": None}


def put_delivery(client: Client, auth: dict[str, str], body: Any) -> Any:
    return client.put("/api/v1/me/delivery", json=body, headers=auth)


async def order_of(client: Client, auth: dict[str, str], order_id: str) -> dict[str, Any]:
    return dict(await (await client.get(f"/api/v1/orders/{order_id}", headers=auth)).json())


async def test_delivery_is_kept_and_reaches_reserved_orders_only(
    client: Client, shop: Shop, viewers: Any
) -> None:
    seller, sid, (pid,) = await live_show(client, shop)
    buyer = await shop.account(display_name="Ann")
    page = await viewers(buyer)
    reserved = await (await buy(client, sid, buyer, pid)).json()
    paid = await (await buy(client, sid, buyer, pid)).json()
    assert reserved["delivery"] is None
    marked = await client.post(f"/api/v1/orders/{paid['id']}/pay", headers=seller.auth)
    assert marked.status == 200, await marked.text()
    saved = await put_delivery(client, buyer.auth, ADDRESS)
    assert saved.status == 200, await saved.text()
    me = await saved.json()
    assert me["delivery"] == STORED and me["id"] == buyer.id
    assert (await (await client.get("/api/v1/me", headers=buyer.auth)).json())["delivery"] == STORED
    assert (await order_of(client, buyer.auth, reserved["id"]))["delivery"] == STORED
    assert (await order_of(client, buyer.auth, paid["id"]))["delivery"] is None
    # The buyer's pages hear the reserved order with its details.
    await page.wait_for(
        "order:status", lambda o: o["id"] == reserved["id"] and o["delivery"] == STORED
    )
    # New details change the account, not an order that has its own already.
    moved = {**ADDRESS, "line1": "Kastanienallee 7", "line2": "Hinterhaus"}
    assert (await put_delivery(client, buyer.auth, moved)).status == 200
    assert (await order_of(client, buyer.auth, reserved["id"]))["delivery"] == STORED


async def test_an_order_copies_the_buyers_delivery(client: Client, shop: Shop) -> None:
    seller, sid, (pid,) = await live_show(client, shop)
    buyer = await shop.account()
    assert (await put_delivery(client, buyer.auth, ADDRESS)).status == 200
    order = await (await buy(client, sid, buyer, pid)).json()
    assert order["delivery"] == STORED
    # The seller's list carries it, for shipping.
    listed = await (await client.get(f"/api/v1/streams/{sid}/orders", headers=seller.auth)).json()
    assert [o["delivery"] for o in listed] == [STORED]
    # A field left out is cleared.
    bare = {k: v for k, v in ADDRESS.items() if k != "phone"}
    assert (await (await put_delivery(client, buyer.auth, bare)).json())["delivery"] == {
        **STORED,
        "phone": None,
    }


async def test_bad_delivery_is_refused_and_changes_nothing(client: Client, shop: Shop) -> None:
    _, sid, (pid,) = await live_show(client, shop)
    buyer = await shop.account()
    assert (await put_delivery(client, buyer.auth, ADDRESS)).status == 200
    order = await (await buy(client, sid, buyer, pid)).json()
    bad = [
        {**ADDRESS, "country": "Germany"},
        {**ADDRESS, "country": "D1"},
        {**ADDRESS, "phone": "call me"},
        {**ADDRESS, "name": "   "},
        {**ADDRESS, "postal_code": "1" * 21},
        {**ADDRESS, "extra": "field"},
        {**ADDRESS, "city": 7},
        {**ADDRESS, "line1": "a\x00b"},
        {k: v for k, v in ADDRESS.items() if k != "line1"},
        [],
    ]
    async with shop.unchanged():
        for body in bad:
            refused = await expect_error(
                await put_delivery(client, buyer.auth, body), 422, "invalid"
            )
            assert refused["details"]["errors"], body
        problem = await expect_error(
            await put_delivery(client, buyer.auth, {**ADDRESS, "country": "Germany"}),
            422,
            "invalid",
        )
        assert problem["details"]["errors"][0]["field"] == "country"
        await expect_error(await put_delivery(client, {}, ADDRESS), 401, "unauthorized")
        empty = await client.put(
            "/api/v1/me/delivery",
            data=b"",
            headers={**buyer.auth, "Content-Type": "application/json"},
        )
        await expect_error(empty, 400, "invalid_json")
        text = await client.put("/api/v1/me/delivery", data="name=Ann", headers=buyer.auth)
        await expect_error(text, 415, "unsupported_media_type")
    assert (await order_of(client, buyer.auth, order["id"]))["delivery"] == STORED


async def test_my_orders_newest_first_with_what_a_page_needs(client: Client, shop: Shop) -> None:
    seller, sid, (pid,) = await live_show(client, shop)
    await shop.execute(
        "UPDATE products SET image_urls = :urls, checkout_url = :shop WHERE id = :id",
        urls='["https://img.example/mug.jpg"]',
        shop="https://shop.example/mug",
        id=pid,
    )
    other_seller, other_sid, (other_pid,) = await live_show(client, shop)
    buyer, stranger = await shop.account(), await shop.account()
    placed = [
        await (await buy(client, sid, buyer, pid)).json(),
        await (await buy(client, other_sid, buyer, other_pid)).json(),
        await (await buy(client, sid, buyer, pid, 2)).json(),
    ]
    await buy(client, sid, stranger, pid)
    response = await client.get("/api/v1/me/orders", headers=buyer.auth)
    assert response.status == 200, await response.text()
    mine = await response.json()
    assert [o["id"] for o in mine] == [o["id"] for o in reversed(placed)]
    newest = mine[0]
    assert {k: newest[k] for k in placed[2]} == placed[2], "every field of the order"
    assert newest["product"] == {
        "id": pid,
        "title": "P0",
        "image_url": "https://img.example/mug.jpg",
        "checkout_url": "https://shop.example/mug",
    }
    assert newest["stream"] == {"id": sid, "title": "Friday show"}
    seller_out = {"id": seller.id, "display_name": "seller", "handle": "seller", "role": "seller"}
    assert newest["seller"] == seller_out
    assert newest["checkout"] == "pay_later" and newest["checkout_session_id"] is None
    assert mine[1]["seller"]["id"] == other_seller.id and mine[1]["product"]["image_url"] is None
    # The seller's method as it is now, not as it was when the order was placed.
    await shop.execute("UPDATE users SET checkout = 'shop' WHERE id = :id", id=seller.id)
    now = await (await client.get("/api/v1/me/orders", headers=buyer.auth)).json()
    assert [o["checkout"] for o in now] == ["shop", "pay_later", "shop"]
    # Pages of the list.
    pages = [
        await (await client.get(f"/api/v1/me/orders?limit=2&offset={n}", headers=buyer.auth)).json()
        for n in (0, 2, 4)
    ]
    assert [[o["id"] for o in p] for p in pages] == [
        [placed[2]["id"], placed[1]["id"]],
        [placed[0]["id"]],
        [],
    ]
    assert len(await (await client.get("/api/v1/me/orders", headers=stranger.auth)).json()) == 1


async def test_my_orders_refusals(client: Client, shop: Shop) -> None:
    buyer = await shop.account()
    for query in ("limit=0", "limit=101", "offset=-1", "limit=many", "page=2"):
        await expect_error(
            await client.get(f"/api/v1/me/orders?{query}", headers=buyer.auth), 422, "invalid"
        )
    await expect_error(await client.get("/api/v1/me/orders"), 401, "unauthorized")
    assert await (await client.get("/api/v1/me/orders", headers=buyer.auth)).json() == []


async def test_the_show_says_how_its_seller_takes_payment(client: Client, shop: Shop) -> None:
    seller = await shop.account("seller")
    sid = (await shop.stream(seller))["id"]

    async def checkout() -> str:
        return str((await (await client.get(f"/api/v1/streams/{sid}")).json())["checkout"])

    assert await checkout() == "pay_later"
    await shop.execute("UPDATE users SET checkout = 'stripe' WHERE id = :id", id=seller.id)
    assert await checkout() == "stripe"
    listed = await (await client.get("/api/v1/streams")).json()
    assert [s["checkout"] for s in listed if s["id"] == sid] == ["stripe"]
