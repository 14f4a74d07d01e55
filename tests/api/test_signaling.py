"""WHIP and WHEP over HTTP with real aiortc peers on loopback."""

import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from api.identity.ice import turn_password
from api.streaming.signaling import MEDIA
from peers.webrtc import PublisherPeer, ViewerPeer, wait_until
from server.app import build_app
from server.settings import Settings
from tests.conftest import Account, Shop, expect_error

Client = TestClient[Any, Any]
SDP = {"Content-Type": "application/sdp"}


async def go_live(client: Client, seller: Account, stream_id: str) -> str:
    data = await (
        await client.post(f"/api/v1/streams/{stream_id}/go-live", headers=seller.auth)
    ).json()
    return str(data["publish_token"])


async def publish(client: Client, stream_id: str, token: str) -> tuple[PublisherPeer, Any]:
    peer = PublisherPeer()
    response = await client.post(
        f"/whip/{stream_id}",
        data=await peer.offer(),
        headers={**SDP, "Authorization": f"Bearer {token}"},
    )
    assert response.status == 201, await response.text()
    await peer.accept(await response.text())
    return peer, response


def viewer_stats_ready(client: Client, stream_id: str) -> bool:
    room = client.app[MEDIA].sfu.get_room(stream_id)
    stats = room.stats() if room is not None else None
    return bool(
        stats
        and stats.publisher
        and all(getattr(t, "bitrate_bps", 0) > 0 for t in stats.publisher.tracks)
    )


async def status(client: Client, stream_id: str) -> str:
    return str((await (await client.get(f"/api/v1/streams/{stream_id}")).json())["status"])


async def wait_status(client: Client, stream_id: str, wanted: str, within: float = 10) -> None:
    import asyncio
    import time

    deadline = time.monotonic() + within
    while (current := await status(client, stream_id)) != wanted:
        assert time.monotonic() < deadline, f"stream stayed {current}, wanted {wanted}"
        await asyncio.sleep(0.05)


@pytest.fixture
async def graceful(settings: Settings, aiohttp_client: Callable[..., Awaitable[Client]]) -> Client:
    settings.publisher_grace_seconds = 0.5
    return await aiohttp_client(build_app(settings))


async def test_publish_watch_and_end(graceful: Client, database_url: str) -> None:
    client = graceful
    shop = Shop(client, database_url)
    seller = await shop.account("seller")
    stream = await shop.stream(seller)
    sid = stream["id"]
    token = await go_live(client, seller, sid)
    publisher, response = await publish(client, sid, token)
    assert response.headers["Content-Type"].startswith("application/sdp")
    location = response.headers["Location"]
    assert location.startswith(f"/whip/{sid}/") and len(location.rsplit("/", 1)[1]) >= 22
    assert response.headers["ETag"].startswith('"')
    await wait_status(client, sid, "live")

    viewer = ViewerPeer()
    watched = await client.post(f"/whep/{sid}", data=await viewer.offer(), headers=SDP)
    assert watched.status == 201, await watched.text()
    await viewer.accept(await watched.text())
    await wait_until(lambda: len(viewer.video_packets()) > 20)
    assert watched.headers["Location"].startswith(f"/whep/{sid}/")

    await wait_until(lambda: viewer_stats_ready(client, sid))
    health = await (await client.get(f"/api/v1/streams/{sid}/health", headers=seller.auth)).json()
    assert health["status"] == "live" and health["media"]["viewers"] == 1
    tracks = {t["kind"]: t for t in health["media"]["publisher"]["tracks"]}
    assert tracks["video"]["codec"] == "video/H264" and tracks["video"]["bitrate_bps"] > 0
    assert tracks["audio"]["codec"] == "audio/opus"
    (delivery,) = health["media"]["subscribers"]
    assert sum(t["packets_sent"] for t in delivery["tracks"]) > 0
    stranger = await shop.account()
    response = await client.get(f"/api/v1/streams/{sid}/health", headers=stranger.auth)
    await expect_error(response, 403, "forbidden")
    metrics = await (await client.get("/metrics")).text()
    assert "shopcast_webrtc_sessions 2.0" in metrics
    assert f'shopcast_webrtc_viewers{{stream="{sid}"}} 1.0' in metrics
    assert f'shopcast_ingest_bytes_total{{kind="video",layer="",stream="{sid}"}}' in metrics

    gone = await client.delete(location, headers={"Authorization": f"Bearer {token}"})
    assert gone.status == 200
    await wait_status(client, sid, "reconnecting")
    await wait_status(client, sid, "ended")
    media = client.app[MEDIA]
    await wait_until(lambda: media.sfu.get_room(sid) is None and media.sfu.session_count() == 0)
    await viewer.close()
    await publisher.close()


async def test_a_new_publisher_replaces_the_old_one(client: Client, shop: Shop) -> None:
    seller = await shop.account("seller")
    stream = await shop.stream(seller)
    sid = stream["id"]
    token = await go_live(client, seller, sid)
    first, _ = await publish(client, sid, token)
    await wait_status(client, sid, "live")
    viewer = ViewerPeer()
    watched = await client.post(f"/whep/{sid}", data=await viewer.offer(), headers=SDP)
    await viewer.accept(await watched.text())
    await wait_until(lambda: len(viewer.video_packets()) > 10)
    second, _ = await publish(client, sid, token)
    before = len(viewer.video_packets())
    await first.close()
    await wait_until(lambda: len(viewer.video_packets()) > before + 30)
    assert await status(client, sid) == "live"
    assert len({p.ssrc for p in viewer.video_packets()}) == 1, "viewers keep one SSRC"
    for peer in (viewer, second):
        await peer.close()


async def test_whip_refusals_create_nothing(client: Client, shop: Shop) -> None:
    seller = await shop.account("seller")
    stream, other = await shop.stream(seller), await shop.stream(seller)
    sid = stream["id"]
    token = await go_live(client, seller, sid)
    other_token = await go_live(client, seller, other["id"])
    probe = PublisherPeer()
    offer = await probe.offer()
    await probe.close()
    bearer = {"Authorization": f"Bearer {token}"}
    media = client.app[MEDIA]
    async with shop.unchanged():
        response = await client.post(f"/whip/{sid}", data=offer, headers=SDP)
        await expect_error(response, 401, "unauthorized")
        assert response.headers["WWW-Authenticate"] == "Bearer"
        await expect_error(
            await client.post(
                f"/whip/{sid}", data=offer, headers={**SDP, "Authorization": "Bearer nope"}
            ),
            401,
            "unauthorized",
        )
        await expect_error(
            await client.post(
                f"/whip/{sid}",
                data=offer,
                headers={**SDP, "Authorization": f"Bearer {other_token}"},
            ),
            403,
            "forbidden",
        )
        await expect_error(
            await client.post("/whip/missing", data=offer, headers={**SDP, **bearer}),
            404,
            "not_found",
        )
        await expect_error(await client.get(f"/whip/{sid}"), 405, "method_not_allowed")
        await expect_error(
            await client.post(
                f"/whip/{sid}", data=offer, headers={"Content-Type": "text/plain", **bearer}
            ),
            415,
            "unsupported_media_type",
        )
        await expect_error(
            await client.post(
                f"/whip/{sid}", data="v=0\r\n" + "a=x\r\n" * 20000, headers={**SDP, **bearer}
            ),
            413,
            "payload_too_large",
        )
        await expect_error(
            await client.post(f"/whip/{sid}", data="this is not sdp", headers={**SDP, **bearer}),
            400,
            "invalid_sdp",
        )
        unsupported = offer.replace("H264/90000", "AV1X/90000").replace("VP8/90000", "AV1Y/90000")
        unsupported = unsupported.replace("opus/48000/2", "speex/16000")
        await expect_error(
            await client.post(f"/whip/{sid}", data=unsupported, headers={**SDP, **bearer}),
            422,
            "unsupported_media",
        )
    assert media.sfu.session_count() == 0
    assert media.sfu.get_room(sid) is None or media.sfu.get_room(sid).publisher is None


async def test_failed_offers_do_not_skew_the_session_count(
    settings: Settings, aiohttp_client: Any, database_url: str
) -> None:
    # A WHIP offer whose sections share one a=mid used to fail in the middle of answering: a
    # 500, and a PublisherGone with no session opened, so each one let one more session in.
    settings.max_sessions = 2
    client = await aiohttp_client(build_app(settings))
    shop = Shop(client, database_url)
    seller = await shop.account("seller")
    stream = await shop.stream(seller)
    sid = stream["id"]
    token = await go_live(client, seller, sid)
    probe = PublisherPeer()
    offer = await probe.offer()
    await probe.close()
    mids = [line for line in offer.split("\r\n") if line.startswith("a=mid:")]
    twins = offer.replace(mids[1], mids[0])
    bearer = {**SDP, "Authorization": f"Bearer {token}"}
    media = client.app[MEDIA]
    for _ in range(6):
        response = await client.post(f"/whip/{sid}", data=twins, headers=bearer)
        await expect_error(response, 400, "invalid_sdp")
        assert media.sfu.session_count() == 0
    publisher, _ = await publish(client, sid, token)
    await wait_status(client, sid, "live")
    viewer = ViewerPeer()
    first = await client.post(f"/whep/{sid}", data=await viewer.offer(), headers=SDP)
    assert first.status == 201
    extra = ViewerPeer()
    response = await client.post(f"/whep/{sid}", data=await extra.offer(), headers=SDP)
    await expect_error(response, 503, "node_full")
    assert media.sfu.session_count() == 2
    for peer in (extra, viewer, publisher):
        await peer.close()


async def test_whip_on_an_ended_stream_is_409(client: Client, shop: Shop) -> None:
    seller = await shop.account("seller")
    stream = await shop.stream(seller)
    token = await go_live(client, seller, stream["id"])
    await shop.execute("UPDATE streams SET status = 'ended' WHERE id = :id", id=stream["id"])
    probe = PublisherPeer()
    offer = await probe.offer()
    await probe.close()
    async with shop.unchanged():
        response = await client.post(
            f"/whip/{stream['id']}", data=offer, headers={**SDP, "Authorization": f"Bearer {token}"}
        )
        await expect_error(response, 409, "stream_finished")


async def test_node_full_is_503(settings: Settings, aiohttp_client: Any, database_url: str) -> None:
    settings.max_sessions = 1
    client = await aiohttp_client(build_app(settings))
    shop = Shop(client, database_url)
    seller = await shop.account("seller")
    stream = await shop.stream(seller)
    token = await go_live(client, seller, stream["id"])
    publisher, _ = await publish(client, stream["id"], token)
    await wait_status(client, stream["id"], "live")
    viewer = ViewerPeer()
    response = await client.post(f"/whep/{stream['id']}", data=await viewer.offer(), headers=SDP)
    await expect_error(response, 503, "node_full")
    assert response.headers["Retry-After"]
    for peer in (viewer, publisher):
        await peer.close()


async def test_banned_viewers_cannot_play(client: Client, shop: Shop) -> None:
    seller, troll = await shop.account("seller"), await shop.account()
    stream = await shop.stream(seller)
    sid = stream["id"]
    token = await go_live(client, seller, sid)
    publisher, _ = await publish(client, sid, token)
    await wait_status(client, sid, "live")
    ban = await client.put(f"/api/v1/streams/{sid}/sanctions/{troll.id}/ban", headers=seller.auth)
    assert ban.status == 204
    probe = ViewerPeer()
    offer = await probe.offer()
    await probe.close()
    response = await client.post(f"/whep/{sid}", data=offer, headers={**SDP, **troll.auth})
    await expect_error(response, 403, "banned")
    assert client.app[MEDIA].sfu.session_count() == 1
    await publisher.close()


async def test_whep_refusals(client: Client, shop: Shop) -> None:
    seller, stranger = await shop.account("seller"), await shop.account()
    stream = await shop.stream(seller)
    private = await shop.stream(seller, audience="followers")
    probe = ViewerPeer()
    offer = await probe.offer()
    await probe.close()
    async with shop.unchanged():
        response = await client.post(f"/whep/{stream['id']}", data=offer, headers=SDP)
        await expect_error(response, 409, "not_live")
        assert int(response.headers["Retry-After"]) > 0
        await expect_error(
            await client.post("/whep/missing", data=offer, headers=SDP), 404, "not_found"
        )
        await expect_error(
            await client.post(f"/whep/{private['id']}", data=offer, headers=SDP),
            401,
            "unauthorized",
        )
        await expect_error(
            await client.post(
                f"/whep/{private['id']}", data=offer, headers={**SDP, **stranger.auth}
            ),
            403,
            "audience_restricted",
        )
    assert client.app[MEDIA].sfu.session_count() == 0


async def test_patch_and_options(client: Client, shop: Shop) -> None:
    seller = await shop.account("seller")
    stream = await shop.stream(seller)
    sid = stream["id"]
    token = await go_live(client, seller, sid)
    publisher, response = await publish(client, sid, token)
    location, etag = response.headers["Location"], response.headers["ETag"]
    bearer = {"Authorization": f"Bearer {token}"}
    trickle = {"Content-Type": "application/trickle-ice-sdpfrag", **bearer}
    fragment = "a=ice-ufrag:{}\r\na=ice-pwd:{}\r\na=end-of-candidates\r\n"
    ufrag = next(
        line.split(":", 1)[1]
        for line in (await publisher.offer()).splitlines()
        if line.startswith("a=ice-ufrag:")
    )
    body = fragment.format(ufrag, "x" * 22)
    await expect_error(
        await client.patch(location, data=body, headers=trickle), 428, "precondition_required"
    )
    await expect_error(
        await client.patch(location, data=body, headers={**trickle, "If-Match": '"stale"'}),
        412,
        "precondition_failed",
    )
    await expect_error(
        await client.patch(location, data=body, headers={**trickle, "If-Match": "*"}),
        422,
        "ice_restart_unsupported",
    )
    await expect_error(
        await client.patch(
            location, data=body, headers={**bearer, "If-Match": etag, "Content-Type": "text/plain"}
        ),
        415,
        "unsupported_media_type",
    )
    await expect_error(
        await client.patch(f"/whip/{sid}/nope", data=body, headers={**trickle, "If-Match": etag}),
        404,
        "not_found",
    )
    await expect_error(await client.delete(location), 401, "unauthorized")
    wrong_kind = location.replace("/whip/", "/whep/")
    await expect_error(await client.delete(wrong_kind), 404, "not_found")
    ok = await client.patch(location, data=body, headers={**trickle, "If-Match": etag})
    assert ok.status == 204, await ok.text()
    options = await client.options(
        f"/whip/{sid}",
        headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"},
    )
    assert options.status == 204
    assert options.headers["Accept-Post"] == "application/sdp"
    assert options.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    assert "Location" in options.headers["Access-Control-Expose-Headers"]
    foreign = await client.options(f"/whip/{sid}", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in foreign.headers
    await publisher.close()


async def test_ice_servers_as_link_headers(
    settings: Settings, aiohttp_client: Any, database_url: str
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
    token = await go_live(client, seller, stream["id"])
    publisher, response = await publish(client, stream["id"], token)
    links = response.headers.getall("Link")
    assert links[0] == '<stun:stun.shopcast.test:3478>; rel="ice-server"'
    assert links[1].startswith(
        '<turn:turn.shopcast.test:3478?transport=udp>; rel="ice-server"; username="'
    )
    assert 'credential-type="password"' in links[1]
    await publisher.close()


async def test_ice_servers_for_whoever_may_watch(
    settings: Settings, aiohttp_client: Any, database_url: str
) -> None:
    # The pages build their peer connections with these: TURN for a viewer whose UDP is blocked.
    settings.ice_servers = ["stun:stun.shopcast.test:3478", "turns:turn.shopcast.test:443"]
    settings.turn_secret = SecretStr("coturn shared secret")
    settings.turn_ttl_seconds = 900
    client = await aiohttp_client(build_app(settings))
    shop = Shop(client, database_url)
    seller, fan, stranger = (
        await shop.account("seller"),
        await shop.account(),
        await shop.account(),
    )
    assert (await client.post(f"/api/v1/users/{seller.id}/follow", headers=fan.auth)).status in (
        200,
        204,
    )
    public = (await shop.stream(seller))["id"]
    private = (await shop.stream(seller, audience="followers"))["id"]
    before = time.time()
    answer = await client.get(f"/api/v1/streams/{public}/ice-servers")
    assert answer.status == 200, await answer.text()
    body = await answer.json()
    assert body["expires_in"] == 900
    stun, turn = body["ice_servers"]
    assert stun == {"urls": "stun:stun.shopcast.test:3478", "username": None, "credential": None}
    expiry, _, user = turn["username"].partition(":")
    assert int(before) + 900 <= int(expiry) <= time.time() + 901 and user == f"viewer-{public}"
    assert turn["credential"] == turn_password("coturn shared secret", turn["username"])
    await expect_error(
        await client.get(f"/api/v1/streams/{private}/ice-servers"), 401, "unauthorized"
    )
    refused = await client.get(f"/api/v1/streams/{private}/ice-servers", headers=stranger.auth)
    await expect_error(refused, 403, "audience_restricted")
    mine = await client.get(f"/api/v1/streams/{private}/ice-servers", headers=fan.auth)
    assert (await mine.json())["ice_servers"][1]["username"].endswith(f":{fan.id}")
    live = await client.post(f"/api/v1/streams/{public}/go-live", headers=seller.auth)
    assert (await live.json())["ice_expires_in"] == 900
    codes = [(await client.get(f"/api/v1/streams/{public}/ice-servers")).status for _ in range(20)]
    assert 429 in codes and codes.count(200) >= 8, codes


async def test_viewers_in_a_worker_process(
    settings: Settings, aiohttp_client: Any, database_url: str
) -> None:
    settings.sfu_workers = 2
    client = await aiohttp_client(build_app(settings))
    shop = Shop(client, database_url)
    seller = await shop.account("seller")
    sid = (await shop.stream(seller))["id"]
    token = await go_live(client, seller, sid)
    publisher, _ = await publish(client, sid, token)
    await wait_status(client, sid, "live")
    viewers = [ViewerPeer(), ViewerPeer()]
    locations = []
    for viewer in viewers:
        watched = await client.post(f"/whep/{sid}", data=await viewer.offer(), headers=SDP)
        assert watched.status == 201, await watched.text()
        await viewer.accept(await watched.text())
        locations.append((watched.headers["Location"], watched.headers["ETag"]))
    for viewer in viewers:
        await wait_until(lambda v=viewer: len(v.video_packets()) > 20)
    sfu = client.app[MEDIA].sfu
    room = sfu.get_room(sid)
    assert room is not None and len(room.subscribers) == 1  # the other is in the worker
    health = await (await client.get(f"/api/v1/streams/{sid}/health", headers=seller.auth)).json()
    assert health["media"]["viewers"] == 2 and len(health["media"]["subscribers"]) == 2
    assert all(
        sum(t["packets_sent"] for t in s["tracks"]) > 0 for s in health["media"]["subscribers"]
    )
    metrics = await (await client.get("/metrics")).text()
    assert f'shopcast_webrtc_viewers{{stream="{sid}"}} 2.0' in metrics

    remote, etag = next(
        loc for loc in locations if loc[0].rsplit("/", 1)[1] not in {s.id for s in room.subscribers}
    )
    candidate = "a=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\n"
    frag = {"Content-Type": "application/trickle-ice-sdpfrag"}
    response = await client.patch(remote, data=candidate, headers={**frag, "If-Match": etag})
    assert response.status == 204
    response = await client.patch(
        remote, data="a=candidate:junk\r\n", headers={**frag, "If-Match": etag}
    )
    await expect_error(response, 400, "invalid_sdp")
    assert (await client.delete(remote)).status == 200
    await expect_error(await client.delete(remote), 404, "not_found")
    await wait_until(lambda: client.app[MEDIA].sfu.session_count() == 2)
    assert sfu.viewers(sid) == 1
    ended = await client.post(f"/api/v1/streams/{sid}/end", headers=seller.auth)
    assert ended.status == 200
    await wait_until(lambda: client.app[MEDIA].sfu.session_count() == 0)
    for viewer in viewers:
        await viewer.close()
    await publisher.close()


async def test_offers_are_rate_limited_per_address(
    settings: Settings, aiohttp_client: Any, database_url: str
) -> None:
    settings.signaling_burst, settings.signaling_attempts_per_second = 3, 0.01
    client = await aiohttp_client(build_app(settings))
    shop = Shop(client, database_url)
    seller = await shop.account("seller")
    sid = (await shop.stream(seller))["id"]
    token = await go_live(client, seller, sid)
    whip = {**SDP, "Authorization": f"Bearer {token}"}
    for _ in range(3):
        await expect_error(
            await client.post(f"/whep/{sid}", data="v=0", headers=SDP), 409, "not_live"
        )
    async with shop.unchanged():
        refused = await client.post(f"/whep/{sid}", data="v=0", headers=SDP)
        await expect_error(refused, 429, "rate_limited")
        assert int(refused.headers["Retry-After"]) >= 1
    # Publishing has its own budget: a crowd of viewers cannot lock the seller out.
    for _ in range(3):
        await expect_error(
            await client.post(f"/whip/{sid}", data="v=0", headers=whip), 400, "invalid_sdp"
        )
    await expect_error(
        await client.post(f"/whip/{sid}", data="v=0", headers=whip), 429, "rate_limited"
    )


async def test_whep_plays_from_any_origin(client: Client, shop: Shop) -> None:
    # A player on a shop's own site, an origin nobody configured, plays a public show; a
    # followers-only one needs the viewer's token. Publishing stays with the configured origins.
    seller, fan = await shop.account("seller"), await shop.account()
    assert (await client.post(f"/api/v1/users/{seller.id}/follow", headers=fan.auth)).status in (
        200,
        204,
    )
    public = (await shop.stream(seller))["id"]
    private = (await shop.stream(seller, audience="followers"))["id"]
    publishers = [
        (await publish(client, sid, await go_live(client, seller, sid)))[0]
        for sid in (public, private)
    ]
    for sid in (public, private):
        await wait_until(lambda s=sid: viewer_stats_ready(client, s))  # type: ignore[misc]
    site = {"Origin": "https://another-shop.example"}
    try:
        preflight = await client.options(
            f"/whep/{public}",
            headers={
                **site,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        assert preflight.status == 204
        assert preflight.headers["Access-Control-Allow-Origin"] == "*"
        assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
        assert "PATCH" in preflight.headers["Access-Control-Allow-Methods"]
        assert "Access-Control-Allow-Credentials" not in preflight.headers
        whip = await client.options(f"/whip/{public}", headers=site)
        assert "Access-Control-Allow-Origin" not in whip.headers

        viewers = []
        for sid, auth in ((public, {}), (private, fan.auth)):
            viewer = ViewerPeer()
            watched = await client.post(
                f"/whep/{sid}", data=await viewer.offer(), headers={**SDP, **site, **auth}
            )
            assert watched.status == 201, await watched.text()
            assert watched.headers["Access-Control-Allow-Origin"] == "*"
            exposed = watched.headers["Access-Control-Expose-Headers"]
            assert "Location" in exposed and "X-Request-ID" in exposed  # a player may report it
            await viewer.accept(await watched.text())
            viewers.append(viewer)
        stranger = ViewerPeer()
        refused = await client.post(
            f"/whep/{private}", data=await stranger.offer(), headers={**SDP, **site}
        )
        await stranger.close()
        await expect_error(refused, 401, "unauthorized")
        assert refused.headers["Access-Control-Allow-Origin"] == "*"
        assert "WWW-Authenticate" in refused.headers["Access-Control-Expose-Headers"]
        for viewer in viewers:
            await wait_until(lambda v=viewer: len(v.video_packets()) > 10)  # type: ignore[misc]
            await viewer.close()
    finally:
        for peer in publishers:
            await peer.close()
