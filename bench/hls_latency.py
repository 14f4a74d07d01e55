"""LL-HLS latency behind live: hls.js in headless Chromium against a real Shopcast node.

    python -m bench.hls_latency --seconds 30 --gop 1.0

Processes, all on 127.0.0.1: a Shopcast node (one per setting: the recorder's part target is
read when a recording starts), a WHIP publisher replaying a pre-encoded 720p30 H.264 clip with a
fixed keyframe interval (``--gop`` seconds; it ignores keyframe requests, as an encoder with a
fixed GOP does) and an Opus tone, and Chromium playing the live playlist with the watch page's
hls.js settings (``static/js/hlsplayer.js``), changed only by what a setting names. From
playback start, every 0.5 s, each player's ``hls.latency`` (seconds behind the live edge hls.js
estimates), ``hls.targetLatency`` and ``hls.drift`` are sampled, and so is how old the frame on
screen is by the wall clock (``Date.now() - hls.playingDate``: the playlists' program date time
is when the server received the media). Printed per setting, never asserted: median and p90 of
each, the median latency over the first 3 s of playback, and the time from navigation to the
first frame. Before that, the live playlist at the DVR cap: its size, and the time to render it
whole and as a delta update.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import aiohttp
from aiohttp import web
from aiortc import RTCSessionDescription
from playwright.async_api import Browser, Page, async_playwright

from api.streaming.hls import RECORDINGS
from bench import emit, spawn
from bench.chat import free_port, register
from bench.sfu import percentile, read_json, stop_all
from peers.clip import ClipTrack, ToneTrack, encode_clip
from peers.webrtc import LOOPBACK, new_pc
from recorder.config import DVR_CAP_SECONDS, RecorderConfig
from recorder.playlist import Playlist, Skip
from recorder.segmenter import PartRecord, SegmentRecord, part_name, segment_name
from server import migrate
from server.app import build_app
from server.settings import Settings
from sfu.candidates import gathering_on

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--autoplay-policy=no-user-gesture-required",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-gpu",
]
FPS = 30
SAMPLE_EVERY = 0.5
JOIN_SECONDS = 3.0  # "join": the latency over the first seconds of playback


@dataclass(frozen=True)
class Setting:
    """What one run changes: the recorder's part target (PART-HOLD-BACK is 3x it) and hls.js."""

    name: str
    part_target: float
    hls: dict[str, Any] = field(default_factory=dict)  # over the watch page's LIVE settings


WATCH = Setting("watch", RecorderConfig().part_target)  # what the server and watch page do
COMPARED = (
    Setting("before", 0.5, {"maxLiveSyncPlaybackRate": 1}),  # until issue 16
    Setting("part-0.5", 0.5),
    Setting("part-0.4", 0.4),
    Setting("part-0.33", 1 / 3),
    Setting("part-0.25", 0.25),
)
SETTINGS = {setting.name: setting for setting in (WATCH, *COMPARED)}
GOPS = (0.5, 1.0, 2.0, 2.5, 5.0)  # keyframe intervals that divide the publisher's 10 s clip


PAGE = """<!doctype html>
<meta charset="utf-8"><title>hls latency</title>
<video id="player" muted autoplay playsinline style="width:640px"></video>
<script type="module">
import { loadHls, LIVE } from "/static/js/hlsplayer.js";
const Hls = await loadHls();
const video = document.getElementById("player");
const hls = new Hls({ ...LIVE, ...%(overrides)s });
video.requestVideoFrameCallback((now) => { window.firstFrame = now / 1000; });  // from navigation
window.stalls = 0;  // the picture waited for data after it first played
video.addEventListener("waiting", () => { if (video.currentTime > 0) window.stalls += 1; });
hls.loadSource(%(url)s);
hls.attachMedia(video);
video.play().catch(() => {});
window.hls = hls;
</script>
"""

SAMPLE = """() => {
  const hls = window.hls, video = document.getElementById("player");
  if (!hls || !video || video.currentTime <= 0) return null;
  return {
    latency: hls.latency, target: hls.targetLatency, drift: hls.drift,
    wall: hls.playingDate ? (Date.now() - hls.playingDate.getTime()) / 1000 : null,
    rate: video.playbackRate, stalls: window.stalls, first: window.firstFrame ?? null,
  };
}"""


# --- server -------------------------------------------------------------------------------


async def run_server(part_target: float) -> None:
    """A node on loopback whose recordings use ``part_target``; stops on a line on stdin."""
    with tempfile.TemporaryDirectory() as data:
        port = free_port()
        settings = Settings(
            _env_file=None,
            data_dir=Path(data),
            port=port,
            public_url=f"http://127.0.0.1:{port}",
            ice_host_addresses=["127.0.0.1"],
            sfu_workers=1,
            auth_burst=100,
            log_level="WARNING",
        )
        await asyncio.to_thread(migrate.upgrade, settings.resolved_database_url)
        app = build_app(settings)
        recordings = app[RECORDINGS]
        recordings.config = replace(recordings.config, part_target=part_target)
        runner = web.AppRunner(app)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", port).start()
            print(json.dumps({"url": settings.resolved_public_url}), flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        finally:
            await runner.cleanup()


async def go_live(url: str) -> dict[str, str]:
    """A new seller's new show, ready for WHIP: its WHIP URL, publish token and HLS URL."""
    async with aiohttp.ClientSession() as http:
        auth = {"Authorization": f"Bearer {await register(http, url, 'seller')}"}
        async with http.post(
            f"{url}/api/v1/streams", json={"title": "latency"}, headers=auth
        ) as response:
            stream = await response.json()
        async with http.post(
            f"{url}/api/v1/streams/{stream['id']}/go-live", headers=auth
        ) as response:
            live = await response.json()
    return {
        "whip": live["whip_url"],
        "token": live["publish_token"],
        "hls": stream["hls_url"],
    }


async def wait_for_segments(hls_url: str, count: int = 2, within: float = 60) -> None:
    media = hls_url.rsplit("/", 1)[0] + "/index.m3u8"  # the main rendition, beside the master
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            async with http.get(media) as response:
                if response.status == 200 and (await response.text()).count("#EXTINF") >= count:
                    return
            await asyncio.sleep(0.2)
    raise RuntimeError("the live playlist never got its first segments")


# --- publisher ----------------------------------------------------------------------------


async def run_publisher(whip: str, token: str, gop: float) -> None:
    """Publish the clip over WHIP until a line arrives on stdin, then end the session."""
    clip = encode_clip(seconds=10, gop=round(gop * FPS))
    pc = new_pc()
    pc.addTrack(ClipTrack(clip, FPS))
    pc.addTrack(ToneTrack())
    for transceiver in pc.getTransceivers():
        transceiver.direction = "sendonly"
    with gathering_on(LOOPBACK):
        await pc.setLocalDescription(await pc.createOffer())
    headers = {"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as http:
        async with http.post(whip, data=pc.localDescription.sdp, headers=headers) as response:
            answer, session = await response.text(), response.headers["Location"]
        await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        print(json.dumps({"publishing": True}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        async with http.delete(urljoin(whip, session), headers=headers):
            pass
    await pc.close()


# --- players ------------------------------------------------------------------------------


async def open_player(browser: Browser, base: str, hls_url: str, setting: Setting) -> Page:
    """A page of the node's origin (so it loads /static/ and /hls/ as the watch page does)."""
    page = await browser.new_page()
    html = PAGE % {"overrides": json.dumps(setting.hls), "url": json.dumps(hls_url)}
    await page.route(f"{base}/bench/hls-latency", lambda route: route.fulfill(body=html))
    await page.goto(f"{base}/bench/hls-latency")
    return page


async def sample(pages: list[Page], seconds: float) -> list[dict[str, float]]:
    """Every 0.5 s for ``seconds`` once each page plays (up to 30 s to start)."""
    deadline = time.monotonic() + 30
    while not all([await page.evaluate(SAMPLE) for page in pages]):
        if time.monotonic() > deadline:
            raise RuntimeError("hls.js never started playing")
        await asyncio.sleep(0.1)
    samples: list[dict[str, float]] = []
    start = time.monotonic()
    while time.monotonic() < start + seconds:
        played = time.monotonic() - start
        for page in pages:
            taken = await page.evaluate(SAMPLE)
            if taken:
                samples.append({**taken, "played": played})
        await asyncio.sleep(SAMPLE_EVERY)
    return samples


async def one_run(
    browser: Browser, setting: Setting, gop: float, viewers: int, seconds: float
) -> dict[str, Any]:
    server = await spawn(
        "bench.hls_latency", "--role", "server", "--part-target", str(setting.part_target)
    )
    processes = [server]
    try:
        base = (await read_json(server, 60))["url"]
        show = await go_live(base)
        # --token=: a token may start with "-", which argparse would take for an option.
        publisher = await spawn(
            "bench.hls_latency",
            "--role=publisher",
            f"--whip={show['whip']}",
            f"--token={show['token']}",
            f"--gop={gop}",
        )
        processes.append(publisher)
        await read_json(publisher, 180)
        await wait_for_segments(show["hls"])
        pages = [await open_player(browser, base, show["hls"], setting) for _ in range(viewers)]
        try:
            samples = await sample(pages, seconds)
        finally:
            for page in pages:
                await page.close()
    finally:
        await stop_all(processes[::-1])  # the publisher ends its session while the node runs
    return summary(setting, samples)


def summary(setting: Setting, samples: list[dict[str, float]]) -> dict[str, Any]:
    def figure(key: str, fraction: float) -> float | None:
        values = [s[key] for s in samples if s.get(key) is not None]
        return round(percentile(values, fraction), 2) if values else None

    latency = [s["latency"] for s in samples]
    joined = [s["latency"] for s in samples if s["played"] <= JOIN_SECONDS]
    return {
        "setting": setting.name,
        "part_target": round(setting.part_target, 3),
        "part_hold_back": RecorderConfig(part_target=setting.part_target).part_hold_back,
        "hls": setting.hls,
        "samples": len(samples),
        "p50_s": round(statistics.median(latency), 2),
        "p90_s": figure("latency", 0.9),
        "join_s": round(statistics.median(joined), 2) if joined else None,
        "first_frame_s": figure("first", 0.5),
        "target_p50_s": figure("target", 0.5),
        "drift_p50": figure("drift", 0.5),
        "wall_p50_s": figure("wall", 0.5),
        "wall_p90_s": figure("wall", 0.9),
        "stalls": max(int(s["stalls"]) for s in samples),
        "rate_max": max(s["rate"] for s in samples),
    }


def report(result: dict[str, Any]) -> None:
    print(
        f"  {result['setting']:10} part {result['part_target']:.3f} s, "
        f"PART-HOLD-BACK {result['part_hold_back']:.3f} s, hls.js {json.dumps(result['hls'])}\n"
        f"             latency median {result['p50_s']:.2f} s, p90 {result['p90_s']:.2f} s, "
        f"first {JOIN_SECONDS:.0f} s of playback {result['join_s']} s "
        f"(target {result['target_p50_s']} s, drift {result['drift_p50']}); "
        f"frame age by the wall clock median {result['wall_p50_s']} s, "
        f"p90 {result['wall_p90_s']} s; first frame {result['first_frame_s']} s after navigation; "
        f"stalls {result['stalls']}, "
        f"playback rate up to {result['rate_max']}; {result['samples']} samples",
        flush=True,
    )


# --- the playlist at the DVR cap ----------------------------------------------------------


def playlist_at_cap(segment_seconds: float) -> None:
    """A live playlist holding DVR_CAP_SECONDS of ``segment_seconds`` segments."""
    playlist = Playlist(RecorderConfig())
    playlist.start = datetime.now(UTC)
    parts = 3
    for msn in range(int(DVR_CAP_SECONDS / segment_seconds)):
        begin, part = msn * segment_seconds, segment_seconds / parts
        segment = SegmentRecord(msn, segment_name(msn), begin, True)
        for index in range(parts):
            number = msn * parts + index
            segment.parts.append(
                PartRecord(msn, index, number, part_name(number), begin + index * part, part, True)
            )
        playlist.add_segment(segment)
    timings = []
    for skip in (Skip.NO, Skip.NO, Skip.V2):
        started = time.perf_counter()
        text = playlist.render(skip)
        timings.append((len(text), (time.perf_counter() - started) * 1000))
    (size, first), (_, again), (delta, delta_ms) = timings
    print(
        f"live playlist at the DVR cap ({DVR_CAP_SECONDS / 3600:.0f} h of {segment_seconds} s "
        f"segments, {len(playlist.segments)}): {size / 1e6:.2f} MB, rendered in {first:.0f} ms "
        f"(then {again:.1f} ms); a delta update (_HLS_skip=v2) {delta / 1e3:.1f} kB "
        f"in {delta_ms:.2f} ms",
        flush=True,
    )


# --- orchestration ------------------------------------------------------------------------


async def orchestrate(names: list[str], gop: float, viewers: int, seconds: float) -> None:
    for segment_seconds in (1.3, 2.0):
        playlist_at_cap(segment_seconds)
    print(
        f"publisher: 1280x720 {FPS} fps H.264, a keyframe every {gop} s; {viewers} player(s); "
        f"{seconds:.0f} s sampled every {SAMPLE_EVERY} s from playback start",
        flush=True,
    )
    results = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=FLAGS, headless=True
        )
        try:
            for name in names:
                result = await one_run(browser, SETTINGS[name], gop, viewers, seconds)
                report(result)
                results.append(result)
        finally:
            await browser.close()
    # `python -m bench` tabulates the run of the defaults (the first run if there is none).
    watch = (WATCH.part_target, WATCH.hls)
    shown = next(
        (r for r in results if (SETTINGS[r["setting"]].part_target, r["hls"]) == watch),
        results[0],
    )
    emit(
        setting=shown["setting"],
        gop=gop,
        viewers=viewers,
        p50_s=shown["p50_s"],
        p90_s=shown["p90_s"],
        wall_p50_s=shown["wall_p50_s"],
        stalls=shown["stalls"],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="sampling window per run")
    parser.add_argument(
        "--gop", type=float, default=1.0, choices=GOPS, help="publisher keyframe interval, s"
    )
    parser.add_argument("--viewers", type=int, default=1, help="Chromium players per run")
    parser.add_argument(
        "--settings",
        default=",".join(setting.name for setting in COMPARED),
        help=f"comma-separated, from: {', '.join(SETTINGS)} (watch: the defaults)",
    )
    roles = ["orchestrator", "server", "publisher"]
    parser.add_argument("--role", choices=roles, default="orchestrator", help=argparse.SUPPRESS)
    parser.add_argument("--part-target", type=float, default=0.5, help=argparse.SUPPRESS)
    parser.add_argument("--whip", default="", help=argparse.SUPPRESS)
    parser.add_argument("--token", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "server":
        asyncio.run(run_server(args.part_target))
    elif args.role == "publisher":
        asyncio.run(run_publisher(args.whip, args.token, args.gop))
    else:
        names = [name.strip() for name in args.settings.split(",") if name.strip()]
        unknown = [name for name in names if name not in SETTINGS]
        if unknown:
            parser.error(f"unknown settings: {', '.join(unknown)}")
        asyncio.run(orchestrate(names, args.gop, args.viewers, args.seconds))


if __name__ == "__main__":
    main()
