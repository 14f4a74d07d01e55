"""A Chromium whose fake camera plays a file: ``--use-file-for-fake-video-capture`` loops a y4m
file as the only camera, so a test chooses the camera's shape (a phone held upright), and a page
of the node's origin publishes it over WHIP with the pages' own client, as the studio does."""

from __future__ import annotations

from pathlib import Path

import av
from playwright.async_api import Browser, BrowserType

from peers.video import moving_pattern
from tests.browser.conftest import CHROMIUM, FLAGS

# A blank page of the node's origin (served by a Playwright route), so that it imports
# static/js/webrtc.js as the studio does; the camera is asked for as the studio asks it.
PUBLISHER = """<!doctype html><meta charset="utf-8"><title>publisher</title>
<script type="module">
import { publish } from "/static/js/webrtc.js";
window.publishCamera = async (whip, token) => {
  const camera = await navigator.mediaDevices.getUserMedia({
    video: { facingMode: { ideal: "user" }, width: { ideal: 1280 }, height: { ideal: 720 },
      frameRate: { ideal: 30 } },
    audio: true,
  });
  const session = await publish(whip, token, camera, []);
  window.publisher = session;
  const { width, height } = camera.getVideoTracks()[0].getSettings();
  return [width, height];
};
</script>"""


def write_y4m(path: Path, size: tuple[int, int], seconds: float = 2.0, fps: int = 30) -> Path:
    """``seconds`` of FFmpeg's moving test pattern at ``size`` (width, height), raw 4:2:0 in a
    y4m file (what Chromium's file camera reads); about 0.35 MB a frame at 360x640."""
    width, height = size
    with av.open(str(path), "w", format="yuv4mpegpipe") as container:
        video = container.add_stream("rawvideo", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        for frame in moving_pattern(width, height, seconds, fps):
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
    return path


async def launch_with_camera(browser_type: BrowserType, camera: Path) -> Browser:
    """A second headless Chromium, with the tests' flags, whose camera plays ``camera``."""
    return await browser_type.launch(
        executable_path=CHROMIUM,
        args=[*FLAGS, f"--use-file-for-fake-video-capture={camera}"],
        headless=True,
    )


async def publish_camera(browser: Browser, base: str, whip: str, token: str) -> tuple[int, int]:
    """Publish ``browser``'s camera to ``whip`` from a page of ``base``, once the WHIP answer is
    in: the camera's size (width, height). The page keeps the session; closing it ends it."""
    page = await browser.new_page()
    url = f"{base}/test/publisher"
    await page.route(url, lambda route: route.fulfill(body=PUBLISHER, content_type="text/html"))
    await page.goto(url)
    await page.wait_for_function("() => window.publishCamera")
    width, height = await page.evaluate(
        "([whip, token]) => publishCamera(whip, token)", [whip, token]
    )
    return int(width), int(height)
