"""A page publishes the fake camera over WHIP; another page plays it over WHEP."""

import time
from typing import Any

from aiohttp.test_utils import TestClient
from playwright.async_api import Browser, Page

from server.app import build_app
from server.settings import Settings
from tests.browser.conftest import ARTIFACTS
from tests.conftest import Shop, eventually

FRAMES_DECODED = """async () => {
  const player = window.shopcastPlayer;
  if (!player) return 0;
  let frames = 0;
  (await player.pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") frames = s.framesDecoded || 0;
  });
  return frames;
}"""


async def stream_status(client: TestClient[Any, Any], stream_id: str) -> str:
    return str((await (await client.get(f"/api/v1/streams/{stream_id}")).json())["status"])


async def test_chromium_publishes_and_chromium_watches(
    browser: Browser, settings: Settings, aiohttp_client: Any, database_url: str
) -> None:
    settings.publisher_grace_seconds = 1
    client = await aiohttp_client(build_app(settings))
    base = str(client.make_url("")).rstrip("/")
    shop = Shop(client, database_url)
    seller = await shop.account("seller")
    stream = await shop.stream(seller, title="Chromium show")
    sid = stream["id"]
    live = await client.post(f"/api/v1/streams/{sid}/go-live", headers=seller.auth)
    token = (await live.json())["publish_token"]

    broadcaster: Page = await browser.new_page()
    await broadcaster.goto(f"{base}/broadcast?stream={sid}&token={token}")
    await broadcaster.click("text=Start camera and go live")
    await broadcaster.wait_for_selector("body[data-connection=connected]", timeout=15000)
    await eventually(lambda: _is(client, sid, "live"), 15, "the stream never turned live")

    viewer: Page = await browser.new_page()
    opened = time.monotonic()
    await viewer.goto(f"{base}/watch/{sid}")
    await eventually(lambda: viewer.evaluate(FRAMES_DECODED), 15, "no frame decoded")
    first_frame = time.monotonic() - opened
    frames = await eventually(
        lambda: _more_than(viewer, 30), 15, "the viewer stopped decoding frames"
    )
    assert frames > 30
    assert await viewer.inner_text("#title") == "Chromium show"
    ARTIFACTS.mkdir(exist_ok=True)
    await viewer.screenshot(path=str(ARTIFACTS / "watch-webrtc.png"))
    print(f"time to first decoded frame in Chromium over WHEP: {first_frame * 1000:.0f} ms")

    await broadcaster.click("#stop")
    await eventually(lambda: _is(client, sid, "ended"), 15, "the stream never ended")


async def _is(client: TestClient[Any, Any], stream_id: str, wanted: str) -> bool:
    return await stream_status(client, stream_id) == wanted


async def _more_than(page: Page, frames: int) -> int:
    decoded = int(await page.evaluate(FRAMES_DECODED))
    return decoded if decoded > frames else 0
