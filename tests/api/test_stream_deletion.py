"""DELETE /api/v1/streams/{id}: a show that never went live goes; one that did keeps its history."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import Shop, expect_error

Client = TestClient[Any, Any]


@pytest.mark.parametrize("who", ["seller", "admin", "moderator"])
async def test_the_seller_or_staff_delete_a_planned_show(
    client: Client, shop: Shop, who: str
) -> None:
    seller = await shop.account("seller")
    product = await shop.product(seller)
    sid = (await shop.stream(seller, product_ids=[product["id"]]))["id"]
    tag = {"x": 0.5, "y": 0.5, "timestamp": 0}
    tagged = await client.post(
        f"/api/v1/streams/{sid}/products/{product['id']}/tag", json=tag, headers=seller.auth
    )
    assert tagged.status == 200, await tagged.text()
    deleter = seller if who == "seller" else await shop.account(who)

    response = await client.delete(f"/api/v1/streams/{sid}", headers=deleter.auth)

    assert response.status == 204, await response.text()
    await expect_error(await client.get(f"/api/v1/streams/{sid}"), 404, "not_found")
    rows = await shop.snapshot()
    assert not [r for r in rows["stream_products"] if sid in r], "the lineup went with it"
    still = await client.get(f"/api/v1/products/{product['id']}", headers=seller.auth)
    assert still.status == 200, "the product stays in the catalogue"
    again = await client.delete(f"/api/v1/streams/{sid}", headers=seller.auth)
    await expect_error(again, 404, "not_found")


async def test_others_cannot_delete_a_show(client: Client, shop: Shop) -> None:
    seller = await shop.account("seller")
    sid = (await shop.stream(seller))["id"]
    other = await shop.account("seller")
    viewer = await shop.account()
    async with shop.unchanged():
        await expect_error(await client.delete(f"/api/v1/streams/{sid}"), 401, "unauthorized")
        for stranger in (other, viewer):
            response = await client.delete(f"/api/v1/streams/{sid}", headers=stranger.auth)
            await expect_error(response, 403, "forbidden")


@pytest.mark.parametrize("status", ["live", "reconnecting", "ended", "interrupted"])
async def test_a_show_that_went_live_is_not_deleted(
    client: Client, shop: Shop, status: str
) -> None:
    seller = await shop.account("seller")
    sid = (await shop.stream(seller))["id"]
    await shop.execute(
        "UPDATE streams SET status = :status, started_at = CURRENT_TIMESTAMP WHERE id = :id",
        status=status,
        id=sid,
    )
    async with shop.unchanged():
        response = await client.delete(f"/api/v1/streams/{sid}", headers=seller.auth)
        body = await expect_error(response, 409, "stream_started")
    assert body["details"] == {"status": status}
