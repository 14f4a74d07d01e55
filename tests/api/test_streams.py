from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from api.identity.auth import hash_publish_token
from api.shows.lifecycle import StreamLifecycle
from api.web.context import SERVICES
from server.app import build_app
from tests.conftest import Account, Shop, expect_error

Client = TestClient[Any, Any]


async def start_media(client: Client, stream_id: str) -> None:
    """What the SFU does when the publisher's first packets arrive."""
    services = client.app[SERVICES]
    await StreamLifecycle(services.sessions, services.rooms, services.bus).media_started(stream_id)


async def test_create_stream_with_products(client: Client, shop: Shop) -> None:
    seller = await shop.account("seller")
    mug, cap = await shop.product(seller, title="Mug"), await shop.product(seller, title="Cap")
    body = {
        "title": "Friday show",
        "description": "Mugs!",
        "audience": "everyone",
        "estimated_duration": 45,
        "notify_followers": False,
        "enable_chat": False,
        "record_stream": False,
        "product_ids": [cap["id"], mug["id"], cap["id"]],
    }
    response = await client.post("/api/v1/streams", json=body, headers=seller.auth)
    assert response.status == 201
    stream = await response.json()
    assert stream["status"] == "created"
    assert stream["owner"] == {
        "id": seller.id,
        "display_name": "seller",
        "handle": "seller",
        "role": "seller",
    }
    assert (stream["estimated_duration"], stream["enable_chat"], stream["record_stream"]) == (
        45,
        False,
        False,
    )
    assert stream["whep_url"] == f"http://shopcast.test/whep/{stream['id']}"
    assert stream["hls_url"] == f"http://shopcast.test/hls/{stream['id']}/master.m3u8"
    assert len(stream["id"]) >= 22
    products = await (await client.get(f"/api/v1/streams/{stream['id']}/products")).json()
    assert [p["product"]["title"] for p in products] == ["Cap", "Mug"]
    assert [p["sort_order"] for p in products] == [0, 1]
    fetched = await (await client.get(f"/api/v1/streams/{stream['id']}")).json()
    assert fetched == stream


async def test_create_stream_refusals(client: Client, shop: Shop) -> None:
    seller, other, viewer = (
        await shop.account("seller"),
        await shop.account("seller"),
        await shop.account(),
    )
    foreign = await shop.product(other)
    async with shop.unchanged():
        await expect_error(
            await client.post("/api/v1/streams", json={"title": "x"}), 401, "unauthorized"
        )
        await expect_error(
            await client.post("/api/v1/streams", json={"title": "x"}, headers=viewer.auth),
            403,
            "forbidden",
        )
        response = await client.post(
            "/api/v1/streams",
            json={"title": "x", "product_ids": [foreign["id"]]},
            headers=seller.auth,
        )
        error = await expect_error(response, 422, "unknown_products")
        assert error["details"]["product_ids"] == [foreign["id"]]
        for body in (
            {"title": ""},
            {"title": "x", "audience": "friends"},
            {"title": "x", "estimated_duration": 0},
            {"title": "x", "estimated_duration": 1.5},
        ):
            await expect_error(
                await client.post("/api/v1/streams", json=body, headers=seller.auth), 422, "invalid"
            )


async def test_attach_products(client: Client, shop: Shop) -> None:
    seller = await shop.account("seller")
    stream = await shop.stream(seller)
    a, b = await shop.product(seller, title="A"), await shop.product(seller, title="B")
    url = f"/api/v1/streams/{stream['id']}/products"
    first = await client.post(url, json={"product_ids": [a["id"]]}, headers=seller.auth)
    assert [p["product"]["id"] for p in await first.json()] == [a["id"]]
    both = await client.post(url, json={"product_ids": [b["id"], a["id"]]}, headers=seller.auth)
    assert [(p["product"]["id"], p["sort_order"]) for p in await both.json()] == [
        (a["id"], 0),
        (b["id"], 1),
    ]


async def test_attach_refusals_change_nothing(client: Client, shop: Shop) -> None:
    seller, other = await shop.account("seller"), await shop.account("seller")
    stream = await shop.stream(seller)
    mine, theirs = await shop.product(seller), await shop.product(other)
    url = f"/api/v1/streams/{stream['id']}/products"
    async with shop.unchanged():
        await expect_error(
            await client.post(url, json={"product_ids": [mine["id"]]}, headers=other.auth),
            403,
            "forbidden",
        )
        await expect_error(
            await client.post(
                url, json={"product_ids": [mine["id"], theirs["id"]]}, headers=seller.auth
            ),
            422,
            "unknown_products",
        )
        await expect_error(
            await client.post(url, json={"product_ids": []}, headers=seller.auth), 422, "invalid"
        )
        await expect_error(
            await client.post(
                "/api/v1/streams/nope/products",
                json={"product_ids": [mine["id"]]},
                headers=seller.auth,
            ),
            404,
            "not_found",
        )


async def test_update_settings(client: Client, shop: Shop) -> None:
    seller = await shop.account("seller")
    stream = await shop.stream(seller, estimated_duration=30)
    url = f"/api/v1/streams/{stream['id']}/settings"
    response = await client.patch(
        url,
        json={"enable_chat": False, "audience": "followers", "estimated_duration": None},
        headers=seller.auth,
    )
    assert response.status == 200
    data = await response.json()
    assert (data["enable_chat"], data["audience"], data["estimated_duration"]) == (
        False,
        "followers",
        None,
    )
    assert data["title"] == stream["title"]
    intruder = await shop.account("seller")
    async with shop.unchanged():
        for body in ({}, {"title": None}, {"enable_chat": "maybe"}, {"record_stream": None}):
            await expect_error(
                await client.patch(url, json=body, headers=seller.auth), 422, "invalid"
            )
        await expect_error(
            await client.patch(url, json={"title": "mine"}, headers=intruder.auth), 403, "forbidden"
        )


async def test_go_live_returns_webrtc_credentials(client: Client, shop: Shop) -> None:
    seller = await shop.account("seller")
    stream = await shop.stream(seller)
    url = f"/api/v1/streams/{stream['id']}/go-live"
    first = await (await client.post(url, headers=seller.auth)).json()
    assert first["whip_url"] == f"http://shopcast.test/whip/{stream['id']}"
    assert len(first["publish_token"]) >= 40
    assert first["ice_servers"] == []
    assert first["stream"]["status"] == "created"
    second = await (await client.post(url, headers=seller.auth)).json()
    assert second["publish_token"] != first["publish_token"]
    snapshot = await shop.snapshot()
    (row,) = [r for r in snapshot["streams"] if r[0] == stream["id"]]
    assert hash_publish_token(second["publish_token"]) in row
    assert second["publish_token"] not in row


async def test_go_live_hands_out_turn_credentials(
    settings: Any, aiohttp_client: Any, database_url: str
) -> None:
    settings.ice_servers = [
        "stun:stun.shopcast.test:3478",
        "turn:turn.shopcast.test:3478?transport=udp",
    ]
    settings.turn_secret = SecretStr("coturn shared secret")
    client = await aiohttp_client(build_app(settings))
    shop = Shop(client, database_url)
    seller = await shop.account("seller")
    stream = await shop.stream(seller)
    data = await (
        await client.post(f"/api/v1/streams/{stream['id']}/go-live", headers=seller.auth)
    ).json()
    stun, turn = data["ice_servers"]
    assert stun == {"urls": "stun:stun.shopcast.test:3478", "username": None, "credential": None}
    expiry, user = turn["username"].split(":")
    assert user == seller.id and int(expiry) > 0
    assert turn["credential"] and "coturn" not in str(data)


async def test_lifecycle_end_returns_analytics(client: Client, shop: Shop) -> None:
    seller = await shop.account("seller")
    product = await shop.product(seller)
    stream = await shop.stream(seller, product_ids=[product["id"]])
    sid = stream["id"]
    async with shop.unchanged():
        error = await expect_error(
            await client.post(f"/api/v1/streams/{sid}/end", headers=seller.auth),
            409,
            "invalid_status",
        )
    assert error["details"]["status"] == "created"
    await client.post(f"/api/v1/streams/{sid}/go-live", headers=seller.auth)
    await start_media(client, sid)
    live = await (await client.get(f"/api/v1/streams/{sid}")).json()
    assert live["status"] == "live" and live["started_at"]
    listed = await (await client.get("/api/v1/streams?status=live")).json()
    assert [s["id"] for s in listed] == [sid]
    ended = await client.post(f"/api/v1/streams/{sid}/end", headers=seller.auth)
    assert ended.status == 200
    summary = await ended.json()
    assert summary["status"] == "ended"
    assert summary["duration_seconds"] >= 0
    assert summary["products"] == [
        {
            "product_id": product["id"],
            "title": "Mug",
            "impressions": 0,
            "views": 0,
            "clicks": 0,
            "inquiries": 0,
            "orders": 0,
            "paid": 0,
            "purchases": 0,
            "revenue_cents": 0,
        }
    ]
    assert {
        k: summary[k]
        for k in (
            "peak_viewers",
            "unique_viewers",
            "total_likes",
            "chat_messages_count",
            "average_watch_time",
        )
    } == {
        "peak_viewers": 0,
        "unique_viewers": 0,
        "total_likes": 0,
        "chat_messages_count": 0,
        "average_watch_time": 0.0,
    }
    final = await (await client.get(f"/api/v1/streams/{sid}")).json()
    assert final["status"] == "ended" and final["ended_at"]
    assert (
        await (await client.get(f"/api/v1/streams/{sid}/analytics", headers=seller.auth)).json()
        == summary
    )


async def test_ended_stream_refuses_changes(client: Client, shop: Shop) -> None:
    seller = await shop.account("seller")
    product = await shop.product(seller)
    stream = await shop.stream(seller, product_ids=[product["id"]])
    sid = stream["id"]
    await start_media(client, sid)
    await client.post(f"/api/v1/streams/{sid}/end", headers=seller.auth)
    async with shop.unchanged():
        for method, path, body, code in (
            ("POST", f"/api/v1/streams/{sid}/go-live", None, "stream_finished"),
            ("POST", f"/api/v1/streams/{sid}/end", None, "invalid_status"),
            ("PATCH", f"/api/v1/streams/{sid}/settings", {"title": "again"}, "stream_finished"),
            (
                "POST",
                f"/api/v1/streams/{sid}/products",
                {"product_ids": [product["id"]]},
                "stream_finished",
            ),
            (
                "POST",
                f"/api/v1/streams/{sid}/products/{product['id']}/tag",
                {"x": 0.5, "y": 0.5, "timestamp": 1},
                "stream_finished",
            ),
        ):
            response = await client.request(method, path, json=body, headers=seller.auth)
            error = await expect_error(response, 409, code)
            assert error["details"]["status"] == "ended"


async def test_tag_product(client: Client, shop: Shop) -> None:
    seller = await shop.account("seller")
    product = await shop.product(seller)
    stream = await shop.stream(seller, product_ids=[product["id"]])
    url = f"/api/v1/streams/{stream['id']}/products/{product['id']}/tag"
    response = await client.post(
        url, json={"x": 0.25, "y": 1, "timestamp": 12.5}, headers=seller.auth
    )
    assert response.status == 200
    data = await response.json()
    assert (data["x"], data["y"], data["timestamp"]) == (0.25, 1.0, 12.5)
    listed = await (await client.get(f"/api/v1/streams/{stream['id']}/products")).json()
    assert (listed[0]["x"], listed[0]["y"]) == (0.25, 1.0)


@pytest.mark.parametrize(
    "raw",
    [
        '{"x": 1.5, "y": 0.5, "timestamp": 1}',
        '{"x": -0.1, "y": 0.5, "timestamp": 1}',
        '{"x": NaN, "y": 0.5, "timestamp": 1}',
        '{"x": 0.5, "y": Infinity, "timestamp": 1}',
        '{"x": 0.5, "y": 0.5, "timestamp": -1}',
        '{"x": "left", "y": 0.5, "timestamp": 1}',
        '{"x": 0.5, "y": 0.5}',
    ],
)
async def test_tag_refuses_positions_outside_the_frame(
    client: Client, shop: Shop, raw: str
) -> None:
    seller = await shop.account("seller")
    product = await shop.product(seller)
    stream = await shop.stream(seller, product_ids=[product["id"]])
    url = f"/api/v1/streams/{stream['id']}/products/{product['id']}/tag"
    headers = {**seller.auth, "Content-Type": "application/json"}
    async with shop.unchanged():
        await expect_error(await client.post(url, data=raw, headers=headers), 422, "invalid")


async def test_tag_needs_an_attached_product_and_the_owner(client: Client, shop: Shop) -> None:
    seller, other = await shop.account("seller"), await shop.account("seller")
    attached, loose = await shop.product(seller), await shop.product(seller)
    stream = await shop.stream(seller, product_ids=[attached["id"]])
    body = {"x": 0.5, "y": 0.5, "timestamp": 3}
    base = f"/api/v1/streams/{stream['id']}/products"
    async with shop.unchanged():
        await expect_error(
            await client.post(f"{base}/{loose['id']}/tag", json=body, headers=seller.auth),
            404,
            "not_found",
        )
        await expect_error(
            await client.post(f"{base}/{attached['id']}/tag", json=body, headers=other.auth),
            403,
            "forbidden",
        )


async def test_deleting_a_product_or_stream_cascades(client: Client, shop: Shop) -> None:
    seller = await shop.account("seller")
    a, b = await shop.product(seller), await shop.product(seller)
    stream = await shop.stream(seller, product_ids=[a["id"], b["id"]])
    await client.delete(f"/api/v1/products/{a['id']}", headers=seller.auth)
    listed = await (await client.get(f"/api/v1/streams/{stream['id']}/products")).json()
    assert [p["product"]["id"] for p in listed] == [b["id"]]
    await shop.execute("DELETE FROM streams WHERE id = :id", id=stream["id"])
    assert (await shop.snapshot())["stream_products"] == []
    assert (await client.get(f"/api/v1/products/{b['id']}")).status == 200


# Kreuzberg, Neukölln (2.5 km away) and Potsdam (27 km away).
KREUZBERG, NEUKOLLN, POTSDAM = (52.4986, 13.4030), (52.4811, 13.4350), (52.3906, 13.0645)


async def locate(shop: Shop, account: Account, at: tuple[float, float]) -> None:
    body = {"latitude": at[0], "longitude": at[1]}
    response = await shop.client.put("/api/v1/me/location", json=body, headers=account.auth)
    assert response.status == 200, await response.text()


async def _audience_cast(shop: Shop) -> tuple[Account, Account, Account, Account]:
    # The typed neighbourhood is only a name: places decide, not matching words.
    seller = await shop.account("seller", neighborhood="Soho")
    follower = await shop.account(neighborhood="Soho")
    neighbor = await shop.account(neighborhood="Leith")
    stranger = await shop.account(neighborhood="Soho")
    await locate(shop, seller, KREUZBERG)
    await locate(shop, neighbor, NEUKOLLN)
    await locate(shop, stranger, POTSDAM)
    response = await shop.client.post(f"/api/v1/users/{seller.id}/follow", headers=follower.auth)
    assert response.status == 204
    return seller, follower, neighbor, stranger


async def test_audience_decides_who_sees_a_stream(client: Client, shop: Shop) -> None:
    seller, follower, neighbor, stranger = await _audience_cast(shop)
    moderator = await shop.account("moderator")
    streams = {
        aud: await shop.stream(seller, title=aud, audience=aud)
        for aud in ("everyone", "followers", "neighborhood")
    }
    allowed = {
        "anonymous": {"everyone"},
        "follower": {"everyone", "followers"},
        "neighbor": {"everyone", "neighborhood"},
        "stranger": {"everyone"},
        "seller": {"everyone", "followers", "neighborhood"},
        "moderator": {"everyone", "followers", "neighborhood"},
    }
    who = {
        "anonymous": None,
        "follower": follower,
        "neighbor": neighbor,
        "stranger": stranger,
        "seller": seller,
        "moderator": moderator,
    }
    for name, account in who.items():
        headers = account.auth if account else {}
        listed = await (await client.get("/api/v1/streams", headers=headers)).json()
        assert {s["title"] for s in listed} == allowed[name], name
        for audience, stream in streams.items():
            for path in (
                f"/api/v1/streams/{stream['id']}",
                f"/api/v1/streams/{stream['id']}/products",
            ):
                response = await client.get(path, headers=headers)
                if audience in allowed[name]:
                    assert response.status == 200, (name, audience)
                elif account is None:
                    await expect_error(response, 401, "unauthorized")
                else:
                    error = await expect_error(response, 403, "audience_restricted")
                    assert error["details"]["audience"] == audience


async def test_stream_listing_filters(client: Client, shop: Shop) -> None:
    seller, other = await shop.account("seller"), await shop.account("seller")
    mine = await shop.stream(seller, title="mine")
    await shop.stream(other, title="theirs")
    await start_media(client, mine["id"])
    everything = await (await client.get("/api/v1/streams")).json()
    assert {s["title"] for s in everything} == {"mine", "theirs"}
    own = await (await client.get("/api/v1/streams?mine=true", headers=seller.auth)).json()
    assert [s["title"] for s in own] == ["mine"]
    live = await (await client.get("/api/v1/streams?status=live")).json()
    assert [s["title"] for s in live] == ["mine"]
    created = await (await client.get("/api/v1/streams?status=created&limit=1")).json()
    assert [s["title"] for s in created] == ["theirs"]
    await expect_error(await client.get("/api/v1/streams?status=paused"), 422, "invalid")
    await expect_error(await client.get("/api/v1/streams?limit=0"), 422, "invalid")
    await expect_error(await client.get("/api/v1/streams?mine=true"), 401, "unauthorized")


async def test_analytics_are_for_the_seller_and_staff(client: Client, shop: Shop) -> None:
    seller, viewer, moderator = (
        await shop.account("seller"),
        await shop.account(),
        await shop.account("moderator"),
    )
    stream = await shop.stream(seller)
    url = f"/api/v1/streams/{stream['id']}/analytics"
    assert (await client.get(url, headers=seller.auth)).status == 200
    assert (await client.get(url, headers=moderator.auth)).status == 200
    await expect_error(await client.get(url, headers=viewer.auth), 403, "forbidden")
    await expect_error(await client.get(url), 401, "unauthorized")
    await expect_error(
        await client.get("/api/v1/streams/nope/analytics", headers=seller.auth), 404, "not_found"
    )


async def test_staff_may_end_any_stream(client: Client, shop: Shop) -> None:
    seller, other = await shop.account("seller"), await shop.account("seller")
    for role in ("admin", "moderator"):
        staff = await shop.account(role)
        stream = await shop.stream(seller)
        await start_media(client, stream["id"])
        url = f"/api/v1/streams/{stream['id']}/end"
        async with shop.unchanged():
            await expect_error(await client.post(url, headers=other.auth), 403, "forbidden")
        assert (await client.post(url, headers=staff.auth)).status == 200
