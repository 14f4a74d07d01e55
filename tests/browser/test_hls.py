"""Chromium plays a running show over HLS with hls.js (low-latency mode), then its replay."""

import asyncio
from typing import Any

from playwright.async_api import Browser

from peers.webrtc import PublisherPeer
from server.settings import Settings
from tests.browser.conftest import ARTIFACTS, serve
from tests.conftest import Shop, eventually

PLAYING = "() => { const v = document.getElementById('player'); return v.currentTime; }"
LATENCY = "() => window.shopcastPlayer?.hls ? window.shopcastPlayer.hls.latency : null"


async def test_hls_live_then_replay(
    browser: Browser, settings: Settings, aiohttp_client: Any, database_url: str
) -> None:
    client = await serve(settings, aiohttp_client)
    base = settings.resolved_public_url
    shop = Shop(client, database_url)
    seller = await shop.account("seller")
    stream = await shop.stream(seller, title="HLS show")
    sid = stream["id"]
    live = await client.post(f"/api/v1/streams/{sid}/go-live", headers=seller.auth)
    token = (await live.json())["publish_token"]
    publisher = PublisherPeer(size=(640, 360))
    answer = await client.post(
        f"/whip/{sid}",
        data=await publisher.offer(),
        headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"},
    )
    await publisher.accept(await answer.text())

    async def segments() -> bool:
        response = await client.get(f"/hls/{sid}/index.m3u8")
        return response.status == 200 and (await response.text()).count("#EXTINF") >= 2

    await eventually(segments, 20, "no live segments")
    page = await browser.new_page()
    await page.goto(f"{base}/watch/{sid}?hls")
    await eventually(lambda: _after(page, PLAYING, 2.0), 20, "HLS never played")
    await page.wait_for_selector("body[data-mode=hls]")
    samples = [await page.evaluate(LATENCY) for _ in range(5) if not await asyncio.sleep(0.5)]
    latencies = [s for s in samples if s is not None]
    assert latencies, "hls.js reported no latency"
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "watch-hls.png"))
    print(f"hls.js latency behind the live edge: {min(latencies):.2f}-{max(latencies):.2f} s")

    assert (await client.post(f"/api/v1/streams/{sid}/end", headers=seller.auth)).status == 200
    await publisher.close()

    async def published() -> bool:
        return bool((await (await client.get(f"/api/v1/streams/{sid}")).json())["vod_url"])

    await eventually(published, 30, "the replay was never published")
    replay = await browser.new_page()
    await replay.goto(f"{base}/watch/{sid}")
    await replay.wait_for_selector("body[data-mode=replay]")
    await eventually(lambda: _after(replay, PLAYING, 1.0), 20, "the replay never played")
    duration = await replay.evaluate("() => document.getElementById('player').duration")
    assert duration > 3


async def _after(page: Any, script: str, seconds: float) -> bool:
    value = await page.evaluate(script)
    return value is not None and value > seconds
