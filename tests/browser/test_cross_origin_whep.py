"""A WHEP player on another site (an origin nobody configured) plays a show in Chromium."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from playwright.async_api import Browser, Page

from peers.webrtc import PublisherPeer
from server.settings import Settings
from tests.browser.conftest import ARTIFACTS, serve
from tests.conftest import Account, Shop, eventually

# A third-party player: what any WHEP player does, in a page of the shop's own site.
PLAYER = """<!doctype html>
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Shop player</title>
<video id="video" autoplay muted playsinline style="width: 100%; background: #000"></video>
<p id="state">starting</p>
<script type="module">
  const { url, token } = JSON.parse(decodeURIComponent(location.hash.slice(1)));
  const pc = new RTCPeerConnection();
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  pc.ontrack = (event) => {
    document.getElementById("video").srcObject = event.streams[0] || new MediaStream([event.track]);
  };
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((resolve) => {
    pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && resolve();
    setTimeout(resolve, 2000);
  });
  const headers = { "Content-Type": "application/sdp" };
  if (token) headers.Authorization = `Bearer ${token}`;
  try {
    const response = await fetch(url, { method: "POST", headers, body: pc.localDescription.sdp });
    window.whepStatus = response.status;
    if (response.status === 201) {
      await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
    }
  } catch (error) {
    window.whepStatus = `blocked: ${error}`;
  }
  document.getElementById("state").textContent = `WHEP ${window.whepStatus}`;
  window.pc = pc;
</script>
"""

FRAMES = """async () => {
  if (!window.pc) return 0;
  let frames = 0;
  (await window.pc.getStats()).forEach((r) => {
    if (r.type === "inbound-rtp" && r.kind === "video") frames = r.framesDecoded || 0;
  });
  return frames;
}"""


async def shop_site(aiohttp_client: Any) -> str:
    """The shop's own site: another origin, serving the player page."""

    async def player(_: web.Request) -> web.Response:
        return web.Response(text=PLAYER, content_type="text/html")

    app = web.Application()
    app.router.add_get("/player.html", player)
    site = await aiohttp_client(app)
    return str(site.make_url("/player.html"))


async def open_player(browser: Browser, page_url: str, whep: str, token: str | None) -> Page:
    page = await browser.new_page(viewport={"width": 390, "height": 844}, has_touch=True)
    await page.goto(f"{page_url}#{json.dumps({'url': whep, 'token': token})}")
    await page.wait_for_function("() => window.whepStatus !== undefined", timeout=15_000)
    return page


async def publishing(client: Any, seller: Account, sid: str) -> PublisherPeer:
    live = await client.post(f"/api/v1/streams/{sid}/go-live", headers=seller.auth)
    token = (await live.json())["publish_token"]
    publisher = PublisherPeer(size=(640, 360))
    answer = await client.post(
        f"/whip/{sid}",
        data=await publisher.offer(),
        headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"},
    )
    assert answer.status == 201, await answer.text()
    await publisher.accept(await answer.text())
    return publisher


async def test_a_player_on_another_site_plays(
    browser: Browser, settings: Settings, aiohttp_client: Any, database_url: str
) -> None:
    client = await serve(settings, aiohttp_client)
    base = settings.resolved_public_url
    page_url = await shop_site(aiohttp_client)
    assert page_url.split("/")[2] != base.split("/")[2], "the player's origin is another one"
    shop = Shop(client, database_url)
    seller, fan = await shop.account("seller"), await shop.account()
    followed = await client.post(f"/api/v1/users/{seller.id}/follow", headers=fan.auth)
    assert followed.status in (200, 204)
    public = (await shop.stream(seller, title="Open show"))["id"]
    private = (await shop.stream(seller, title="Fans only", audience="followers"))["id"]
    publishers = [await publishing(client, seller, sid) for sid in (public, private)]
    try:
        for sid, token, name in ((public, None, "public"), (private, fan.token, "followers")):

            async def decoding(page: Page) -> bool:
                return int(await page.evaluate(FRAMES)) > 30

            page = await eventually(
                lambda s=sid, t=token: _playing(browser, page_url, f"{base}/whep/{s}", t),
                30,
                f"the {name} show never played on the other site",
            )
            await eventually(lambda p=page: decoding(p), 20, f"the {name} show decoded no video")
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / f"cross-origin-whep-{name}.png"))
            await page.close()
        refused = await open_player(browser, page_url, f"{base}/whep/{private}", None)
        assert await refused.evaluate("() => window.whepStatus") == 401
        await refused.close()
    finally:
        for publisher in publishers:
            await publisher.close()


async def _playing(browser: Browser, page_url: str, whep: str, token: str | None) -> Page | None:
    """A player page whose WHEP request was answered 201 (a 409 while the show warms up: None)."""
    page = await open_player(browser, page_url, whep, token)
    if await page.evaluate("() => window.whepStatus") == 201:
        return page
    await page.close()
    return None
