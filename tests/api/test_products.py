from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy.exc import IntegrityError

from tests.conftest import Shop, expect_error

Client = TestClient[Any, Any]


async def test_product_crud(client: Client, shop: Shop) -> None:
    seller = await shop.account("seller")
    body = {
        "title": " Mug ",
        "description": "Blue",
        "price_cents": 1999,
        "currency": "EUR",
        "stock": 3,
        "image_urls": ["https://cdn.example/mug.jpg"],
    }
    created = await client.post("/api/v1/products", json=body, headers=seller.auth)
    assert created.status == 201
    product = await created.json()
    assert product["title"] == "Mug"
    assert (product["price_cents"], product["currency"], product["stock"]) == (1999, "EUR", 3)
    assert product["image_urls"] == ["https://cdn.example/mug.jpg"]
    assert product["owner_id"] == seller.id

    listed = await (await client.get("/api/v1/products", headers=seller.auth)).json()
    assert [p["id"] for p in listed] == [product["id"]]
    public = await client.get(f"/api/v1/products/{product['id']}")
    assert (await public.json())["title"] == "Mug"

    patched = await client.patch(
        f"/api/v1/products/{product['id']}",
        json={"stock": 0, "price_cents": 2500},
        headers=seller.auth,
    )
    assert patched.status == 200
    data = await patched.json()
    assert (data["stock"], data["price_cents"], data["title"]) == (0, 2500, "Mug")
    assert data["updated_at"] >= product["updated_at"]

    assert (
        await client.delete(f"/api/v1/products/{product['id']}", headers=seller.auth)
    ).status == 204
    await expect_error(await client.get(f"/api/v1/products/{product['id']}"), 404, "not_found")


async def test_catalogue_lists_only_own_products(client: Client, shop: Shop) -> None:
    alice, bob = await shop.account("seller"), await shop.account("seller")
    await shop.product(alice, title="A")
    await shop.product(bob, title="B")
    titles = [
        p["title"] for p in await (await client.get("/api/v1/products", headers=bob.auth)).json()
    ]
    assert titles == ["B"]


@pytest.mark.parametrize(
    "fields",
    [
        {"price_cents": 0},
        {"price_cents": -5},
        {"price_cents": 9.99},
        {"price_cents": "1000"},
        {"price_cents": 10.0},
        {"stock": -1},
        {"stock": 1.5},
        {"title": ""},
        {"currency": "euro"},
        {"image_urls": ["javascript:alert(1)"]},
        {"image_urls": ["https://x.example/a.jpg"] * 11},
        {"unknown": True},
    ],
)
async def test_invalid_products_are_refused(
    client: Client, shop: Shop, fields: dict[str, Any]
) -> None:
    seller = await shop.account("seller")
    body = {"title": "Mug", "price_cents": 1500, "stock": 5, **fields}
    async with shop.unchanged():
        response = await client.post("/api/v1/products", json=body, headers=seller.auth)
        error = await expect_error(response, 422, "invalid")
    assert error["details"]["errors"]


async def test_invalid_product_patches_change_nothing(client: Client, shop: Shop) -> None:
    seller = await shop.account("seller")
    product = await shop.product(seller)
    url = f"/api/v1/products/{product['id']}"
    async with shop.unchanged():
        for body in ({"price_cents": 0}, {"stock": -3}, {"title": None}, {}, {"stock": "many"}):
            await expect_error(
                await client.patch(url, json=body, headers=seller.auth), 422, "invalid"
            )


async def test_only_the_owner_or_an_admin_changes_a_product(client: Client, shop: Shop) -> None:
    seller, other, viewer = (
        await shop.account("seller"),
        await shop.account("seller"),
        await shop.account(),
    )
    admin = await shop.account("admin")
    product = await shop.product(seller)
    url = f"/api/v1/products/{product['id']}"
    async with shop.unchanged():
        await expect_error(await client.patch(url, json={"stock": 1}), 401, "unauthorized")
        for intruder in (other, viewer):
            await expect_error(
                await client.patch(url, json={"stock": 1}, headers=intruder.auth), 403, "forbidden"
            )
            await expect_error(await client.delete(url, headers=intruder.auth), 403, "forbidden")
        await expect_error(
            await client.patch("/api/v1/products/missing", json={"stock": 1}, headers=seller.auth),
            404,
            "not_found",
        )
    response = await client.patch(url, json={"stock": 9}, headers=admin.auth)
    assert (await response.json())["stock"] == 9


async def test_viewers_have_no_catalogue(client: Client, shop: Shop) -> None:
    viewer = await shop.account()
    async with shop.unchanged():
        response = await client.post(
            "/api/v1/products",
            json={"title": "X", "price_cents": 1, "stock": 1},
            headers=viewer.auth,
        )
        await expect_error(response, 403, "forbidden")


async def test_stock_check_constraint_holds_in_the_database(shop: Shop) -> None:
    seller = await shop.account("seller")
    product = await shop.product(seller, stock=1)
    with pytest.raises(IntegrityError):
        await shop.execute("UPDATE products SET stock = stock - 2 WHERE id = :id", id=product["id"])
    with pytest.raises(IntegrityError):
        await shop.execute("UPDATE products SET price_cents = 0 WHERE id = :id", id=product["id"])


async def test_external_checkout_url(client: Client, shop: Shop) -> None:
    seller = await shop.account("seller")
    product = await shop.product(seller, checkout_url="https://shop.example/mug")
    assert product["checkout_url"] == "https://shop.example/mug"
    url = f"/api/v1/products/{product['id']}"
    cleared = await client.patch(url, json={"checkout_url": None}, headers=seller.auth)
    assert (await cleared.json())["checkout_url"] is None
    async with shop.unchanged():
        response = await client.patch(
            url, json={"checkout_url": "javascript:x"}, headers=seller.auth
        )
        await expect_error(response, 422, "invalid")
