"""Discovery: the home page's sections, sellers' handles and search, on both engines."""

from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp.test_utils import TestClient

from tests.api.test_streams import start_media
from tests.conftest import Shop, expect_error

Client = TestClient[Any, Any]


async def found(client: Client, words: str, **auth: Any) -> tuple[list[str], list[str]]:
    """The titles of the shows and of the products a search for ``words`` finds."""
    response = await client.get("/api/v1/search", params={"q": words}, **auth)
    assert response.status == 200, await response.text()
    body = await response.json()
    return [s["title"] for s in body["shows"]], [p["title"] for p in body["products"]]


async def test_search_finds_shows_and_products_by_every_word_as_a_prefix(
    client: Client, shop: Shop
) -> None:
    seller = await shop.account("seller")
    await shop.product(seller, title="Blue linen dress", description="Summer, washed linen")
    await shop.product(seller, title="Red wool scarf")
    await shop.stream(seller, title="Dresses for summer", description="Linen and cotton")
    await shop.stream(seller, title="Scarves", description="Crème brûlée colours")

    assert await found(client, "dress") == (["Dresses for summer"], ["Blue linen dress"])
    assert await found(client, "LINEN summ") == (["Dresses for summer"], ["Blue linen dress"])
    assert await found(client, "wool") == ([], ["Red wool scarf"])
    assert await found(client, "CRÈME brûl") == (["Scarves"], [])  # any script's case
    assert await found(client, "creme") == ([], [])  # accents are letters (as PostgreSQL's)
    assert await found(client, "linen wool") == ([], [])  # every word must match
    assert await found(client, "!!! ''") == ([], [])  # no words: nothing, not an error
    assert await found(client, 'dress" OR "scarf') == ([], [])  # operators are words


async def test_the_index_follows_changes_and_deletions(client: Client, shop: Shop) -> None:
    seller = await shop.account("seller")
    product = await shop.product(seller, title="Teapot")
    assert await found(client, "teapot") == ([], ["Teapot"])
    changed = await client.patch(
        f"/api/v1/products/{product['id']}", json={"title": "Kettle"}, headers=seller.auth
    )
    assert changed.status == 200, await changed.text()
    assert await found(client, "teapot") == ([], [])
    assert await found(client, "kettle") == ([], ["Kettle"])
    deleted = await client.delete(f"/api/v1/products/{product['id']}", headers=seller.auth)
    assert deleted.status == 204
    assert await found(client, "kettle") == ([], [])


async def test_search_shows_only_what_the_caller_may_watch(client: Client, shop: Shop) -> None:
    seller, fan = await shop.account("seller"), await shop.account()
    await shop.stream(seller, title="Followers preview", audience="followers")
    assert await found(client, "preview") == ([], [])
    assert await found(client, "preview", headers=fan.auth) == ([], [])
    follow = await client.post(f"/api/v1/users/{seller.id}/follow", headers=fan.auth)
    assert follow.status == 204
    assert await found(client, "preview", headers=fan.auth) == (["Followers preview"], [])


async def test_search_pages_and_refuses_bad_queries(client: Client, shop: Shop) -> None:
    seller = await shop.account("seller")
    for number in range(3):
        await shop.product(seller, title=f"Mug {number}")
    first = await (await client.get("/api/v1/search?q=mug&limit=2")).json()
    rest = await (await client.get("/api/v1/search?q=mug&limit=2&offset=2")).json()
    titles = [p["title"] for p in first["products"] + rest["products"]]
    assert sorted(titles) == ["Mug 0", "Mug 1", "Mug 2"]
    await expect_error(await client.get("/api/v1/search"), 422, "invalid")
    await expect_error(await client.get("/api/v1/search?q=" + "a" * 201), 422, "invalid")
    await expect_error(await client.get("/api/v1/search?q=mug&limit=0"), 422, "invalid")


async def test_handles_are_made_from_the_name_and_name_the_seller_page(
    client: Client, shop: Shop
) -> None:
    first = await shop.account("seller", display_name="Sam's Vintage Shop")
    second = await shop.account("seller", display_name="Sam's  vintage shop!")
    one = await (await client.get(f"/api/v1/users/{first.id}")).json()
    two = await (await client.get(f"/api/v1/users/{second.id}")).json()
    assert one["handle"] == "sam-s-vintage-shop"
    assert two["handle"].startswith("sam-s-vintage-shop-") and two["handle"] != one["handle"]
    fan = await shop.account()
    await client.post(f"/api/v1/users/{first.id}/follow", headers=fan.auth)
    page = await client.get("/api/v1/sellers/sam-s-vintage-shop", headers=fan.auth)
    assert page.status == 200
    profile = await page.json()
    assert (profile["id"], profile["followers"], profile["following"]) == (first.id, 1, True)
    await expect_error(await client.get("/api/v1/sellers/nobody"), 404, "not_found")


async def test_sections_list_live_upcoming_and_replays_in_their_order(
    client: Client, shop: Shop
) -> None:
    seller, other = await shop.account("seller"), await shop.account("seller")
    soon = datetime.now(UTC) + timedelta(hours=1)
    later = await shop.stream(
        seller, title="Later", scheduled_at=(soon + timedelta(days=1)).isoformat()
    )
    next_one = await shop.stream(seller, title="Next", scheduled_at=soon.isoformat())
    await shop.stream(seller, title="Undated")
    live = await shop.stream(seller, title="On air")
    await start_media(client, live["id"])
    elsewhere = await shop.stream(
        other, title="Elsewhere", scheduled_at=(soon + timedelta(minutes=5)).isoformat()
    )
    replay = await shop.stream(seller, title="Last week")
    await shop.execute(
        "UPDATE streams SET status = 'ended', ended_at = :at, vod_url = :url, "
        "thumbnail_url = :poster WHERE id = :id",
        at=datetime.now(UTC) - timedelta(days=7),
        url="http://media.test/vod/master.m3u8",
        poster="http://media.test/vod/poster.jpg",
        id=replay["id"],
    )
    no_replay = await shop.stream(seller, title="Not recorded")
    await shop.execute("UPDATE streams SET status = 'ended' WHERE id = :id", id=no_replay["id"])

    async def section(name: str, **params: str) -> list[dict[str, Any]]:
        response = await client.get("/api/v1/streams", params={"section": name, **params})
        assert response.status == 200, await response.text()
        return list(await response.json())

    [on_air] = await section("live")
    assert on_air["title"] == "On air" and on_air["viewers"] == 0
    assert on_air["poster_url"] == f"http://shopcast.test/hls/{live['id']}/poster.jpg"
    upcoming = await section("upcoming")
    assert [s["title"] for s in upcoming] == ["Next", "Elsewhere", "Later"]
    assert [s["id"] for s in upcoming if s["title"] != "Elsewhere"] == [next_one["id"], later["id"]]
    assert upcoming[0]["poster_url"] is None and upcoming[0]["viewers"] is None
    [past] = await section("replays")
    assert (past["title"], past["poster_url"]) == ("Last week", "http://media.test/vod/poster.jpg")
    assert await section("upcoming", seller="nobody") == []
    handle = (await (await client.get(f"/api/v1/users/{other.id}")).json())["handle"]
    assert [s["id"] for s in await section("upcoming", seller=handle)] == [elsewhere["id"]]
    await expect_error(await client.get("/api/v1/streams?section=soon"), 422, "invalid")
