"""Chromium plays an uploaded product video's DASH manifest with dash.js, from the local store."""

from __future__ import annotations

import io
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from playwright.async_api import Browser, Page

from peers.video import write_test_video
from server.settings import Settings
from tests.browser.conftest import serve
from tests.conftest import Account, Shop, eventually

# dash.js as the wheel ships it (pyproject.toml's artifacts), on a <video> of Shopcast's own page,
# under its Content Security Policy.
PLAY = """async (mpd) => {
  const { MediaPlayer } = await import(
    '/static/node_modules/dashjs/dist/modern/esm/dash.mediaplayer.min.js');
  const video = document.createElement('video');
  video.id = 'dash'; video.muted = true; video.playsInline = true; video.width = 320;
  document.body.prepend(video);
  window.dashErrors = [];
  const player = MediaPlayer().create();
  player.on('error', (event) => window.dashErrors.push(JSON.stringify(event.error ?? event)));
  player.initialize(video, mpd, true);
  window.dashPlayer = player;
}"""
STATE = """() => {
  const video = document.getElementById('dash');
  const tracks = window.dashPlayer.getTracksFor('audio').length;
  return {time: video.currentTime, width: video.videoWidth, height: video.videoHeight,
          audio: tracks, errors: window.dashErrors};
}"""


async def processed_video(client: Any, seller: Account, product_id: str, data: bytes) -> Any:
    """Upload a video through the local store's form and wait for its job to finish."""
    grant = await client.post(
        "/api/v1/media/upload-url",
        json={"product_id": product_id, "kind": "video", "content_type": "video/mp4"}
        | {"size": len(data)},
        headers=seller.auth,
    )
    grant = await grant.json()
    form = aiohttp.FormData()
    for name, value in grant["fields"].items():
        form.add_field(name, value)
    form.add_field("file", io.BytesIO(data), content_type="video/mp4", filename="video.mp4")
    posted = await client.post(urlsplit(grant["url"]).path, data=form)
    assert posted.status == 204, await posted.text()
    started = await client.post(
        "/api/v1/media/video/process", json={"upload_key": grant["upload_key"]}, headers=seller.auth
    )
    assert started.status == 202, await started.text()
    job_id = (await started.json())["id"]

    async def done() -> Any:
        job = await (await client.get(f"/api/v1/media/status/{job_id}", headers=seller.auth)).json()
        assert job["state"] != "failed", job["error"]
        return job if job["state"] == "done" else None

    return await eventually(done, 90, "the video was never processed")


async def playing(page: Page, after: float) -> dict[str, Any] | None:
    state: dict[str, Any] = await page.evaluate(STATE)
    assert not state["errors"], state["errors"]
    return state if state["time"] > after and state["width"] > 0 else None


@pytest.mark.timeout(180)
async def test_dash_js_plays_an_uploaded_video(
    browser: Browser,
    settings: Settings,
    aiohttp_client: Any,
    database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    settings.media_poll_seconds = 0.1
    client = await serve(settings, aiohttp_client)
    shop = Shop(client, database_url)
    seller = await shop.account("seller")
    product = await shop.product(seller)
    clip = tmp_path_factory.mktemp("clip") / "clip.mp4"
    data = write_test_video(clip, width=1280, height=720, seconds=10.0).read_bytes()
    job = await processed_video(client, seller, product["id"], data)
    mpd = job["outputs"]["dash_url"]
    assert mpd.endswith("/manifest.mpd")

    page = await browser.new_page()
    await page.goto(f"{settings.resolved_public_url}/")
    await page.evaluate(PLAY, mpd)
    first = await eventually(lambda: playing(page, 0.5), 60, "dash.js never played")
    later = await eventually(lambda: playing(page, first["time"] + 1.0), 30, "playback stalled")
    assert (later["width"], later["height"]) in {(1280, 720), (852, 480)}
    assert later["audio"] == 1, "the audio adaptation set was not offered"
    print(f"dash.js: {later['width']}x{later['height']} at {later['time']:.2f} s")
