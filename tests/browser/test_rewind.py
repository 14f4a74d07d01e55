"""The WebRTC watch page rewinds into HLS and comes back to live, and says when only audio gets
through: real Chromium at phone size (touch) and desktop size, screenshots in build/screenshots/.
"""

import re
from contextlib import AsyncExitStack
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page

from peers.webrtc import PublisherPeer
from server.settings import Settings
from tests.browser.conftest import serve
from tests.browser.test_story import SHOTS, audit
from tests.conftest import Account, Shop, eventually

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1440, "height": 900}
BEHIND = """() => {
  const hls = window.shopcastPlayer?.hls, video = document.getElementById("player");
  if (!hls?.playingDate || !(video.currentTime > 0) || !(hls.latency > 0)) return null;
  return { latency: hls.latency, age: (Date.now() - hls.playingDate.getTime()) / 1000 };
}"""
FRAMES = """async () => {
  const pc = window.shopcastPlayer?.pc;
  if (window.shopcastPlayer?.mode !== "webrtc" || !pc) return null;
  let frames = null;
  (await pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") frames = s.framesDecoded;
  });
  return frames;
}"""


async def recorded(client: Any, stream_id: str, seconds: float) -> bool:
    """The live playlist holds at least ``seconds`` of the show."""
    text = await (await client.get(f"/hls/{stream_id}/index.m3u8")).text()
    return sum(float(d) for d in re.findall(r"#EXTINF:([\d.]+),", text)) >= seconds


async def video_plays(page: Page, script: str) -> bool:
    """The value ``script`` reads (frames decoded, or the position) grows over a second."""
    before = await page.evaluate(script)
    await page.wait_for_timeout(1000)
    after = await page.evaluate(script)
    return before is not None and after is not None and after > before


async def thumb_sized(page: Page, selector: str) -> None:
    box = await page.locator(selector).bounding_box()
    assert box is not None and box["width"] >= 44 and box["height"] >= 44, (selector, box)


async def shoot(page: Page, name: str) -> None:
    await audit(page, name)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def rewind_and_return(page: Page, tap: bool, name: str) -> None:
    """Rewind lands >= 20 s behind live over HLS; Live brings WebRTC video back."""
    await thumb_sized(page, "#rewind")
    await (page.tap("#rewind") if tap else page.click("#rewind"))
    await page.wait_for_selector("body[data-mode=hls][data-behind=yes]")
    position = await eventually(lambda: page.evaluate(BEHIND), 20, "HLS never played")
    assert position["latency"] >= 20 and position["age"] >= 20, position
    await eventually(
        lambda: video_plays(page, "() => document.getElementById('player').currentTime"),
        20,
        "the rewound video does not play",
    )
    await thumb_sized(page, "#go-live")
    await shoot(page, f"{name}-rewound")
    await (page.tap("#go-live") if tap else page.click("#go-live"))
    await page.wait_for_selector("body[data-mode=webrtc]")
    await eventually(lambda: video_plays(page, FRAMES), 20, "WebRTC video did not come back")
    assert await page.locator("#go-live").is_hidden()
    assert await page.evaluate("() => !window.shopcastPlayer.hls"), "hls.js is gone"
    await shoot(page, f"{name}-live")


async def publish(
    shop: Shop,
    stack: AsyncExitStack,
    seller: Account | None = None,
    size: tuple[int, int] = (640, 360),
    **fields: Any,
) -> tuple[str, PublisherPeer]:
    """A new show of ``seller`` (a new one by default), live from an in-process WHIP publisher
    of pictures of ``size`` (closed with ``stack``): its id and the publisher."""
    client = shop.client
    seller = seller or await shop.account("seller")
    sid = (await shop.stream(seller, **fields))["id"]
    live = await client.post(f"/api/v1/streams/{sid}/go-live", headers=seller.auth)
    publisher = PublisherPeer(size=size)
    stack.push_async_callback(publisher.close)
    answer = await client.post(
        f"/whip/{sid}",
        data=await publisher.offer(),
        headers={
            "Content-Type": "application/sdp",
            "Authorization": f"Bearer {(await live.json())['publish_token']}",
        },
    )
    await publisher.accept(await answer.text())
    return sid, publisher


async def watch(context: BrowserContext, url: str) -> Page:
    """The watch page at ``url``, once its WebRTC video plays."""
    page = await context.new_page()
    await page.goto(url)
    await page.wait_for_selector("body[data-mode=webrtc]")
    await eventually(lambda: video_plays(page, FRAMES), 20, "no WebRTC video")
    return page


@pytest.mark.timeout(180)
async def test_rewind_to_hls_and_back_to_live_webrtc(
    browser: Browser, settings: Settings, aiohttp_client: Any, database_url: str
) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    client = await serve(settings, aiohttp_client)
    base = settings.resolved_public_url
    shop = Shop(client, database_url)
    async with AsyncExitStack() as stack:
        sid, publisher = await publish(shop, stack, title="Rewind show")
        unrecorded, _ = await publish(shop, stack, title="Not recorded", record_stream=False)
        phone = await browser.new_context(viewport=PHONE, has_touch=True, is_mobile=True)  # type: ignore[arg-type]
        page = await watch(phone, f"{base}/watch/{unrecorded}")
        assert await page.locator("#timeshift").is_hidden(), "no recording: nothing to rewind"
        await page.goto(f"{base}/watch/{sid}")
        await page.wait_for_selector("body[data-mode=webrtc]")
        assert await page.locator("#rewind").is_visible()
        assert await page.locator("#go-live").is_hidden()
        await eventually(lambda: recorded(client, sid, 33), 60, "30 s of DVR never came")
        await rewind_and_return(page, True, "watch-rewind-phone")
        await audio_only_notice(page, publisher)
        desktop = await browser.new_context(viewport=DESKTOP)  # type: ignore[arg-type]
        wide = await watch(desktop, f"{base}/watch/{sid}")
        await rewind_and_return(wide, False, "watch-rewind-desktop")


async def audio_only_notice(page: Page, publisher: PublisherPeer) -> None:
    """The publisher stops sending video and keeps its audio: the page says so; not while the
    audio stops too, and no more once the video is back."""
    video, audio = publisher.video_sender, publisher.audio_sender
    assert video is not None and video.track is not None
    assert audio is not None and audio.track is not None
    camera, microphone = video.track, audio.track
    notice = page.locator("#audio-only")
    video.replaceTrack(None)
    await notice.wait_for(state="visible", timeout=15_000)
    assert await notice.inner_text() == "Poor connection — audio only"
    await shoot(page, "watch-audio-only-phone")
    audio.replaceTrack(None)  # briefly: the SFU ends a publisher silent for 5 s
    await notice.wait_for(state="hidden", timeout=4_000)
    audio.replaceTrack(microphone)
    await notice.wait_for(state="visible", timeout=15_000)
    video.replaceTrack(camera)
    await notice.wait_for(state="hidden", timeout=15_000)
    await eventually(lambda: video_plays(page, FRAMES), 20, "video did not come back")
