"""Simulcast in the field: a Chromium publisher sends three layers, and each Chromium viewer
gets the layer its own link carries, shaped with ``tc`` on the SFU's side of its veth: over
WebRTC the SFU picks it, over HLS hls.js picks the rendition of the ladder.

    publisher 10.81.1.2 ---- 10.81.1.1 ┐
    slow viewer 10.81.2.2 -- 10.81.2.1 ├ sfu: Shopcast, ICE on 10.81.{1,2,3,4}.1
    fast viewer 10.81.3.2 -- 10.81.3.1 │   (egress towards each viewer shaped by tbf)
    cut viewer 10.81.4.2 --- 10.81.4.1 ┘
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, Page, async_playwright

from tests.browser.conftest import ARTIFACTS
from tests.conftest import eventually
from tests.faults.netns import LoopThread
from tests.net.hosts import chromium_on, open_show, serve_shopcast
from tests.net.internet import Internet

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

BASE = "http://10.81.1.1:8080"
# Chromium's fake camera at 30 frames a second makes light layers: about 170, 420 and 880
# kbit/s at 320x180, 640x360 and 1280x720 (a real camera's are nearer the studio's caps of 200,
# 700 and 2000 kbit/s). With the audio and the headers on the wire the lowest is ~230 kbit/s and
# the middle ~500, so "slow" sits between them. The HLS ladder's renditions peak at about 230,
# 460 and 780 kbit/s (BANDWIDTH in the master playlist: video, AAC and the fMP4 boxes), so the
# same link carries the lowest over TCP.
SLOW, FAST = "400kbit", "5mbit"
SLOW_BPS = 400_000
# Chromium's fake camera runs at 20 frames a second unless told otherwise.
CAMERA_30_FPS = "--use-fake-device-for-media-stream=fps=30"

PUBLISH = """async ({ whipUrl, token }) => {
  const { publish } = await import("/static/js/webrtc.js");
  const stream = await navigator.mediaDevices.getUserMedia({
    video: { width: 1280, height: 720, frameRate: 30 }, audio: true,
  });
  window.live = await publish(whipUrl, token, stream, []);
  return window.live.session;
}"""

# What the viewer decodes: picture size, frame rate and freezes (Chromium's own counters).
RECEIVED = """async () => {
  const pc = window.shopcastPlayer?.pc;
  if (!pc) return null;
  let video = null, audio = 0;
  (await pc.getStats()).forEach((r) => {
    if (r.type !== "inbound-rtp") return;
    if (r.kind === "video") video = r;
    if (r.kind === "audio") audio = r.packetsReceived;
  });
  if (!video) return null;
  return {
    width: video.frameWidth || 0, height: video.frameHeight || 0,
    frames: video.framesDecoded || 0, fps: video.framesPerSecond || 0,
    freezes: video.freezeCount || 0, frozen: video.totalFreezesDuration || 0, audio,
  };
}"""


def shape(net: Internet, host: str, device: str, rate: str) -> None:
    """Limit what the SFU sends on ``device`` to ``rate``: a token bucket with 300 ms of
    queue, a cellular link's buffer (a keyframe of the lowest layer fits in it)."""
    net.exec(
        host,
        "tc",
        "qdisc",
        "replace",
        "dev",
        device,
        "root",
        "tbf",
        "rate",
        rate,
        "burst",
        "20kb",
        "latency",
        "300ms",
    )


async def media_of(http: aiohttp.ClientSession, sid: str, auth: dict[str, str]) -> dict[str, Any]:
    """The show's media health: the publisher's tracks and every viewer's."""
    async with http.get(f"{BASE}/api/v1/streams/{sid}/health", headers=auth) as response:
        body = await response.json()
    return body["media"] or {}


async def layer_of(http: aiohttp.ClientSession, sid: str, auth: dict[str, str]) -> dict[str, str]:
    """Each viewer session's forwarded video layer (its RID), from the show's health."""
    media = await media_of(http, sid, auth)
    return {
        viewer["session_id"]: track["rid"]
        for viewer in media.get("subscribers", [])
        for track in viewer["tracks"]
        if track["kind"] == "video"
    }


async def rates_of(http: aiohttp.ClientSession, sid: str, auth: dict[str, str]) -> dict[str, float]:
    """What the publisher sends now, bit/s: each video layer by its RID, and "audio"."""
    media = await media_of(http, sid, auth)
    return {
        track["rid"] or track["kind"]: track["bitrate_bps"]
        for track in (media.get("publisher") or {}).get("tracks", [])
    }


async def watch(browser: Browser, sid: str) -> Page:
    page = await browser.new_page(viewport={"width": 390, "height": 844}, has_touch=True)
    await page.goto(f"{BASE}/watch/{sid}")

    async def playing() -> bool:
        state = await page.evaluate(RECEIVED)
        return bool(state and state["frames"] > 30)

    await eventually(playing, 40, "the viewer never played over WebRTC")
    return page


@dataclass
class Show:
    """A live show with a three-layer Chromium publisher, and each viewer host's browser."""

    net: Internet
    sfu: str
    devices: dict[str, str]  # viewer host -> the SFU's side of its link
    browsers: dict[str, Browser]
    http: aiohttp.ClientSession
    on_pub: LoopThread
    sid: str
    auth: dict[str, str]

    async def layers_of(self, sessions: dict[str, str]) -> dict[str, str | None]:
        """Each named viewer session's forwarded video layer."""
        by_session = await self.on_pub.run(layer_of(self.http, self.sid, self.auth))
        return {name: by_session.get(session) for name, session in sessions.items()}

    async def rates(self) -> dict[str, float]:
        return await self.on_pub.run(rates_of(self.http, self.sid, self.auth))


@asynccontextmanager
async def layered_show(
    internet: Internet, tmp_path: Path, viewers: dict[str, str], **settings: str
) -> AsyncIterator[Show]:
    """Shopcast on host ``sfu``, a publisher host and one host per viewer (name -> the rate
    the SFU may send it), each on its own link; the publisher sends three layers, live."""
    sfu = internet.host("sfu")
    names = ["pub", *viewers]
    addresses = [f"10.81.{number}.1" for number in range(1, len(names) + 1)]
    hosts, devices = {}, {}
    for number, name in enumerate(names, start=1):
        hosts[name] = internet.host(name)
        devices[name], _ = internet.link(
            sfu, f"10.81.{number}.1/24", hosts[name], f"10.81.{number}.2/24"
        )
        internet.route(hosts[name], f"10.81.{number}.1")
    serve_shopcast(
        internet,
        sfu,
        tmp_path,
        BASE,
        host="10.81.1.1",
        port="8080",
        ice_host_addresses=",".join(addresses),
        **settings,
    )
    for name, rate in viewers.items():
        shape(internet, sfu, devices[name], rate)
    on_pub = LoopThread(hosts["pub"])
    http = await on_pub.run(_session())
    try:
        sid, credentials, auth = await on_pub.run(open_show(http, BASE, "Three layers"))
        async with async_playwright() as playwright:
            secure = f"--unsafely-treat-insecure-origin-as-secure={BASE}"
            browsers = {}
            for name in names:
                flags = [secure, CAMERA_30_FPS] if name == "pub" else [secure]
                browsers[name] = await chromium_on(playwright, hosts[name], tmp_path, *flags)
            publisher_page = await browsers["pub"].new_page()
            await publisher_page.goto(f"{BASE}/")
            await publisher_page.evaluate(
                PUBLISH, {"whipUrl": credentials["whip_url"], "token": credentials["publish_token"]}
            )
            try:
                yield Show(internet, sfu, devices, browsers, http, on_pub, sid, auth)
            finally:
                for browser in browsers.values():
                    await browser.close()
    finally:
        await on_pub.run(http.close())
        on_pub.close()


async def test_each_viewer_gets_the_layer_its_link_carries(
    internet: Internet, tmp_path: Path
) -> None:
    viewers = {"slow": SLOW, "fast": FAST, "cut": FAST}
    async with layered_show(internet, tmp_path, viewers) as show:
        slow, fast, cut = [await watch(show.browsers[name], show.sid) for name in viewers]
        sessions = {
            name: await page.evaluate(SESSION)
            for name, page in zip(viewers, (slow, fast, cut), strict=True)
        }

        async def layers() -> dict[str, str | None]:
            return await show.layers_of(sessions)

        # The publisher's own bandwidth estimate sometimes pauses its top layer for a
        # moment; the fast viewers then get the middle one until it comes back.
        seen: list[dict[str, str | None]] = []

        async def settled() -> bool:
            seen.append(await layers())
            return seen[-1] == {"slow": "q", "fast": "f", "cut": "f"}

        await eventually(
            settled, 60, lambda: f"the viewers did not settle on q, f and f: {seen[-5:]}"
        )
        gap, fps = await playback(slow, seconds=10)

        async def lowest_decoded() -> dict[str, Any] | None:
            state = await slow.evaluate(RECEIVED)
            return state if (state["width"], state["height"]) == (320, 180) else None

        # The decoder shows the new size once a keyframe of the layer got through the
        # slow link; on a loaded machine that took longer than the 10 s above.
        state = await eventually(lowest_decoded, 30, "the slow viewer never decoded 320x180")
        print(f"slow viewer: {state}, {fps:.1f} fps, longest gap between frames {gap:.2f} s")
        for name, page in zip(viewers, (slow, fast, cut), strict=True):
            await page.screenshot(path=str(ARTIFACTS / f"simulcast-{name}.png"))
        assert gap <= 1.0, f"the slow viewer froze for {gap:.2f} s"
        assert fps >= 24, f"the slow viewer decoded {fps:.1f} frames a second"

        shape(internet, show.sfu, show.devices["cut"], SLOW)
        cut_at = time.monotonic()
        # 1.2-1.6 s measured with the machine's load at 4-6 (two cores).
        await eventually(_is(layers, "cut", "q"), 3, "the cut viewer did not switch down")
        down = time.monotonic() - cut_at
        shape(internet, show.sfu, show.devices["cut"], FAST)
        restored_at = time.monotonic()
        await eventually(_above(layers, "cut"), 15, "the cut viewer did not switch up")
        up = time.monotonic() - restored_at
        print(f"cut viewer: down in {down:.1f} s, back up in {up:.1f} s")
        others = await layers()
        rates = await show.rates()
        # The slow viewer never gets a layer its link cannot carry (it may be paused to
        # audio only). Chromium short of CPU shrinks its layers, so the middle one can come
        # to fit 300 kbit/s: judged on the rates sent now, not on the layer's name.
        slow_rate = rates.get(others["slow"] or "", 0.0) + rates.get("audio", 0.0)
        assert others["slow"] in ("q", None) or slow_rate <= SLOW_BPS, (others, rates)
        assert others["fast"] != "q", others


# hls.js on the watch page (?hls): the level it plays, and how far the video has played.
HLS_LEVEL = """() => {
  const hls = window.shopcastPlayer?.hls;
  const video = document.querySelector("video");
  if (!hls || hls.currentLevel < 0 || !hls.levels.length) return null;
  return {
    height: hls.levels[hls.currentLevel].height,
    heights: hls.levels.map((level) => level.height),
    played: video.currentTime, bandwidth: Math.round(hls.bandwidthEstimate),
  };
}"""


async def test_a_slow_hls_viewer_plays_a_lighter_rendition(
    internet: Internet, tmp_path: Path
) -> None:
    """Each layer is an LL-HLS rendition (the ladder, on by default): hls.js behind the slow link
    plays the lightest, the one behind the fast link a heavier one, and both keep playing."""
    viewers = {"slow": SLOW, "fast": FAST}
    async with layered_show(internet, tmp_path, viewers) as show:

        async def ladder_listed() -> str | None:
            async with show.http.get(f"{BASE}/hls/{show.sid}/master.m3u8") as response:
                text = await response.text()
                return text if text.count("#EXT-X-STREAM-INF") == 3 else None

        master = await eventually(
            lambda: show.on_pub.run(ladder_listed()),
            60,
            "the master playlist never listed 3 renditions",
        )
        pages = {}
        for name in viewers:
            pages[name] = await show.browsers[name].new_page(
                viewport={"width": 390, "height": 844}, has_touch=True
            )
            await pages[name].goto(f"{BASE}/watch/{show.sid}?hls")
        seen: dict[str, Any] = {}

        async def chosen() -> bool:
            for name, page in pages.items():
                seen[name] = await page.evaluate(HLS_LEVEL)
            slow, fast = seen["slow"], seen["fast"]
            return bool(slow and fast and slow["height"] == min(slow["heights"]) < fast["height"])

        await eventually(chosen, 60, lambda: f"hls.js did not pick by link: {seen}")
        played = {name: state["played"] for name, state in seen.items()}
        # Over 15 s, not 5: the lightest rendition peaks near the slow link's rate (361 of 400
        # kbit/s in one run), so a short stall now and then is the link's; at least half of
        # real time is playing.
        await asyncio.sleep(15)
        for name, page in pages.items():
            state = await page.evaluate(HLS_LEVEL)
            assert state["played"] > played[name] + 7.5, (name, played[name], state, master)
            await page.screenshot(path=str(ARTIFACTS / f"simulcast-hls-{name}.png"))
        # The publisher keeps all three layers up: the ladder's work on the SFU's loop no
        # longer reads as congestion on the publisher's link (kernel arrival times).
        rates = await show.rates()
        print(f"{master}hls viewers: {seen}, publisher sends {rates}")
        assert rates.get("f", 0.0) > 0, rates


SESSION = """() => window.shopcastPlayer.session.split("/").pop()"""


async def playback(page: Page, seconds: float) -> tuple[float, float]:
    """Over ``seconds``: the longest time in which the page decoded no new video frame, and
    the frames it decoded per second."""
    first = last_frames = (await page.evaluate(RECEIVED))["frames"]
    longest, start = 0.0, time.monotonic()
    last_change, deadline = start, start + seconds
    while time.monotonic() < deadline:
        frames = (await page.evaluate(RECEIVED))["frames"]
        now = time.monotonic()
        if frames != last_frames:
            last_frames, last_change = frames, now
        longest = max(longest, now - last_change)
        await asyncio.sleep(0.1)
    return longest, (last_frames - first) / (time.monotonic() - start)


def _is(layers: Any, name: str, rid: str) -> Any:
    async def check() -> bool:
        return (await layers())[name] == rid

    return check


def _above(layers: Any, name: str) -> Any:
    async def check() -> bool:
        return (await layers())[name] in ("h", "f")

    return check


async def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession()
