"""A restricted show stays restricted on every path that serves it (issue 14, item 11): the live
HLS, the replay's files and the metrics, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from api.catalog.product_media import MEDIA_UPLOADS
from api.streaming.signaling import MEDIA
from peers.webrtc import PublisherPeer, wait_until
from server.app import build_app
from server.settings import Settings
from tests.api.test_signaling import go_live, publish
from tests.conftest import Account, Shop, expect_error

Client = TestClient[Any, Any]


async def live(client: Client, seller: Account, stream_id: str) -> PublisherPeer:
    peer, _ = await publish(client, stream_id, await go_live(client, seller, stream_id))
    await wait_until(lambda: stream_id in client.app[MEDIA].sfu.local_stats())
    return peer


async def test_open_metrics_name_only_shows_for_everyone(client: Client, shop: Shop) -> None:
    # The attack: /metrics, open to anyone, listed the ids of live followers-only shows.
    seller = await shop.account("seller")
    private = (await shop.stream(seller, audience="followers"))["id"]
    public = (await shop.stream(seller))["id"]
    peers = [await live(client, seller, private), await live(client, seller, public)]
    try:
        metrics = await (await client.get("/metrics")).text()
    finally:
        for peer in peers:
            await peer.close()
    assert "shopcast_webrtc_sessions 2.0" in metrics, "both shows still count"
    assert f'shopcast_webrtc_viewers{{stream="{public}"}} 0.0' in metrics
    assert private not in metrics


async def test_metrics_with_a_token_name_every_show(
    settings: Settings,
    aiohttp_client: Callable[..., Awaitable[Client]],
    database_url: str,
) -> None:
    settings.metrics_token = SecretStr("scrape-secret")
    client = await aiohttp_client(build_app(settings))
    shop = Shop(client, database_url)
    seller = await shop.account("seller")
    private = (await shop.stream(seller, audience="followers"))["id"]
    peer = await live(client, seller, private)
    try:
        await expect_error(await client.get("/metrics"), 401, "unauthorized")
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer scrape-secrex"})
        await expect_error(wrong, 401, "unauthorized")
        scraped = await client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"})
        assert scraped.status == 200
        assert f'shopcast_webrtc_viewers{{stream="{private}"}}' in await scraped.text()
    finally:
        await peer.close()


async def test_hls_and_replays_follow_the_audience_and_bans(client: Client, shop: Shop) -> None:
    # The attack: /media/vod/<id>/ served any replay to anyone, and a ban did not reach HLS.
    seller, fan, stranger, troll = (
        await shop.account("seller"),
        await shop.account(),
        await shop.account(),
        await shop.account(),
    )
    for follower in (fan, troll):
        followed = await client.post(f"/api/v1/users/{seller.id}/follow", headers=follower.auth)
        assert followed.status in (200, 204)
    private = (await shop.stream(seller, audience="followers"))["id"]
    public = (await shop.stream(seller))["id"]
    for sid in (private, public):
        banned = await client.put(
            f"/api/v1/streams/{sid}/sanctions/{troll.id}/ban", headers=seller.auth
        )
        assert banned.status == 204
    store = client.app[MEDIA_UPLOADS].store
    for sid in (private, public):
        await store.put_bytes(f"vod/{sid}/vod.m3u8", b"#EXTM3U\n#EXT-X-ENDLIST\n", "text/plain")
        await store.put_bytes(f"vod/{sid}/seg0.m4s", b"\x00" * 64, "video/iso.segment")
        await store.put_bytes(f"vod/{sid}/q/vod.m3u8", b"#EXTM3U\n#EXT-X-ENDLIST\n", "text/plain")

    async def get(path: str, who: Account | None) -> Any:
        return await client.get(path, headers=who.auth if who else {})

    for path in (
        f"/hls/{private}/index.m3u8",
        f"/hls/{private}/master.m3u8",
        f"/hls/{private}/q/index.m3u8",
        f"/media/vod/{private}/vod.m3u8",
        f"/media/vod/{private}/seg0.m4s",
        f"/media/vod/{private}/q/vod.m3u8",
    ):
        await expect_error(await get(path, None), 401, "unauthorized")
        await expect_error(await get(path, stranger), 403, "audience_restricted")
        await expect_error(await get(path, troll), 403, "banned")
    for path in (f"/hls/{public}/index.m3u8", f"/media/vod/{public}/vod.m3u8"):
        await expect_error(await get(path, troll), 403, "banned")

    # Past the check: no live recording yet, and the replay's files.
    await expect_error(await get(f"/hls/{private}/index.m3u8", fan), 404, "no_recording")
    await expect_error(await get(f"/hls/{public}/index.m3u8", None), 404, "no_recording")
    await expect_error(await get(f"/hls/{public}/master.m3u8", None), 404, "no_recording")
    rendition = await get(f"/media/vod/{private}/q/vod.m3u8", fan)
    assert rendition.status == 200 and (await rendition.read()).startswith(b"#EXTM3U")
    playlist = await get(f"/media/vod/{private}/vod.m3u8", fan)
    assert playlist.status == 200 and (await playlist.read()).startswith(b"#EXTM3U")
    assert playlist.headers["Content-Type"] == "application/vnd.apple.mpegurl"
    assert playlist.headers["Cache-Control"].startswith("private")
    assert playlist.headers["Access-Control-Allow-Origin"] == "*"
    segment = await get(f"/media/vod/{private}/seg0.m4s", fan)
    assert segment.status == 200 and segment.headers["Content-Type"] == "video/iso.segment"
    open_replay = await get(f"/media/vod/{public}/vod.m3u8", None)
    assert open_replay.status == 200 and open_replay.headers["Cache-Control"].startswith("public")
    await expect_error(await get(f"/media/vod/{private}/missing.m4s", fan), 404, "not_found")
    await expect_error(await get("/media/vod/no-such-show/vod.m3u8", fan), 404, "not_found")
    await store.put_bytes(f"vod/{private}/a/deeper/seg1.m4s", b"\x00" * 64, "video/iso.segment")
    for path in (f"/media/vod/{private}/a/deeper/seg1.m4s", f"/media/vod/{private}/.hidden"):
        await expect_error(await get(path, None), 401, "unauthorized")
        await expect_error(await get(path, fan), 404, "not_found")
