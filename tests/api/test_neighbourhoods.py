"""Neighbourhood shows admit accounts by place: H3 cells near the seller's, on both engines."""

from typing import Any

import h3
from aiohttp.test_utils import TestClient

from api.accounts.whereabouts import HOME_RESOLUTION
from tests.api.test_streams import KREUZBERG, locate
from tests.conftest import Account, Shop, expect_error

Client = TestClient[Any, Any]


def centre_at_distance(cell: str, rings: int) -> tuple[float, float]:
    """The centre of a cell exactly ``rings`` cells away from ``cell``."""
    ring = sorted(h3.grid_ring(cell, rings))
    latitude, longitude = h3.cell_to_latlng(ring[0])
    return latitude, longitude


async def watch(client: Client, stream_id: str, account: Account) -> int:
    response = await client.get(f"/api/v1/streams/{stream_id}", headers=account.auth)
    return response.status


async def test_a_neighbourhood_show_admits_the_seller_cell_and_the_ring_around_it(
    client: Client, shop: Shop
) -> None:
    seller = await shop.account("seller")
    await locate(shop, seller, KREUZBERG)
    me = await (await client.get("/api/v1/me", headers=seller.auth)).json()
    cell = me["home_cell"]
    assert h3.get_resolution(cell) == HOME_RESOLUTION
    assert cell == h3.latlng_to_cell(*KREUZBERG, HOME_RESOLUTION)
    show = await shop.stream(seller, title="Street sale", audience="neighborhood")
    next_door, further, unplaced = [await shop.account() for _ in range(3)]
    await locate(shop, next_door, centre_at_distance(cell, 1))
    await locate(shop, further, centre_at_distance(cell, 2))
    assert await watch(client, show["id"], next_door) == 200
    body = await expect_error(
        await client.get(f"/api/v1/streams/{show['id']}", headers=further.auth),
        403,
        "audience_restricted",
    )
    assert "needs_location" not in body["details"]
    body = await expect_error(
        await client.get(f"/api/v1/streams/{show['id']}", headers=unplaced.auth),
        403,
        "audience_restricted",
    )
    assert body["details"]["needs_location"] is True
    listed = await (await client.get("/api/v1/streams", headers=next_door.auth)).json()
    assert show["id"] in [s["id"] for s in listed]
    listed = await (await client.get("/api/v1/streams", headers=further.auth)).json()
    assert show["id"] not in [s["id"] for s in listed]
    # Forgetting one's location leaves the neighbourhood.
    assert (await client.delete("/api/v1/me/location", headers=next_door.auth)).status == 204
    assert await watch(client, show["id"], next_door) == 403


async def test_only_the_cell_is_kept(client: Client, shop: Shop) -> None:
    viewer = await shop.account()
    await locate(shop, viewer, (52.498612, 13.403044))
    [row] = [row for row in (await shop.snapshot())["users"] if row[0] == viewer.id]
    stored = " ".join(str(value) for value in row)
    assert "52.498612" not in stored and "13.403044" not in stored  # in no form, no column
    assert h3.latlng_to_cell(52.498612, 13.403044, HOME_RESOLUTION) in row


async def test_a_neighbourhood_show_needs_a_placed_seller(client: Client, shop: Shop) -> None:
    seller = await shop.account("seller")
    async with shop.unchanged():
        await expect_error(
            await client.post(
                "/api/v1/streams",
                json={"title": "Nowhere", "audience": "neighborhood"},
                headers=seller.auth,
            ),
            409,
            "no_location",
        )
    show = await shop.stream(seller, title="Open to all")
    async with shop.unchanged():
        await expect_error(
            await client.patch(
                f"/api/v1/streams/{show['id']}/settings",
                json={"audience": "neighborhood"},
                headers=seller.auth,
            ),
            409,
            "no_location",
        )
    await locate(shop, seller, KREUZBERG)
    changed = await client.patch(
        f"/api/v1/streams/{show['id']}/settings",
        json={"audience": "neighborhood"},
        headers=seller.auth,
    )
    assert changed.status == 200


async def test_locations_are_checked_and_change_rarely(client: Client, shop: Shop) -> None:
    viewer = await shop.account()
    for body in ({"latitude": 91, "longitude": 0}, {"latitude": 0}, {"latitude": "x"}):
        async with shop.unchanged():
            await expect_error(
                await client.put("/api/v1/me/location", json=body, headers=viewer.auth),
                422,
                "invalid",
            )
    await expect_error(
        await client.put("/api/v1/me/location", json={"latitude": 0, "longitude": 0}),
        401,
        "unauthorized",
    )
    for step in range(3):
        await locate(shop, viewer, (52.0 + step, 13.0))
    async with shop.unchanged():
        refused = await client.put(
            "/api/v1/me/location", json={"latitude": 40.0, "longitude": -3.7}, headers=viewer.auth
        )
        await expect_error(refused, 429, "rate_limited")
    assert refused.headers["Retry-After"]
