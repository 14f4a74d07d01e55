"""Glass to glass over the SFU, and the watch page's time to first frame, in headless Chromium.

    ip netns exec shopcast-bench .venv/bin/python -m bench.glass --runs 5 --seconds 12

Run inside a network namespace that has only ``lo`` (``ip netns add shopcast-bench; ip netns
exec shopcast-bench ip link set lo up``), so that no packet leaves loopback. One Chromium and a
Shopcast node (its own process, a new SQLite database) on 127.0.0.1:

- **Time to first frame**: a page publishes Chromium's fake camera (1280x720, as the studio asks
  it) over WHIP with simulcast; the watch page ``/watch/{id}`` is opened in a new browser context
  (empty cache) and then reloaded, ``--runs`` times at phone size (390x844, 3x, touch) and at
  desktop size (1440x900). The figure is the page's own ``window.shopcastFirstFrame``: from
  navigation to the first frame ``requestVideoFrameCallback`` presents.
- **Warm-up**: a viewer (phone size) opens the watch page of a show that has not started and
  waits; the seller's Socket.IO client sends ``stream:prepare`` (a 3 s countdown), and the
  publisher page goes live and publishes its camera at once, as the studio's Go live does (with
  warm-up), or only once the countdown is over, as it did before (without). The figure is the
  viewer's ``shopcastFirstFrame - shopcastCountdownEnd``, both on its own clock: negative when
  the first frame was decoded behind the countdown, so that it shows at zero. A new show per
  run (an ended show cannot go live again); the two kinds of run alternate.
- **Glass to glass**: a page paints the wall clock (``performance.timeOrigin + now()``, in ms,
  as 32 black and white blocks and their complement) into a 1280x720 canvas on every animation
  frame, ``captureStream(30)``, H.264. A viewer in another browser context plays it over WHEP
  and on each ``requestVideoFrameCallback`` reads the blocks back and takes the painted time
  from its own clock (the two pages' clocks are compared, and the difference taken off). Over
  the SFU with one layer and with the studio's three simulcast layers; beside them the same
  canvas through two ``RTCPeerConnection``s in one page, no SFU: what the SFU adds. The age at
  the callback moves in steps of the compositor's 60 Hz frames (16.7 ms); the age when the
  frame's last packet arrived (``receiveTime``) does not, and shows the SFU's share more finely.

Printed, never asserted: median and p90 of the first frame per size and visit and against the
countdown's zero with and without the warm-up; median, p90 and p99 of glass to glass over
``--seconds`` of frames, against the goal.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import socketio
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from bench import emit, spawn
from bench.chat import register
from bench.hls_latency import CHROMIUM, FLAGS, run_server
from bench.sfu import percentile, read_json, stop_all
from recorder.config import RecorderConfig

BROWSER_FLAGS = [
    *FLAGS,
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection",  # the namespace has no other address
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]
GOAL_MS = 200
SETTLE_SECONDS = 2.0  # after the first frame, before glass to glass is counted
WAIT_MS = 30_000
FIRST_FRAME = "() => window.shopcastFirstFrame ?? null"
STOP_PLAYER = "() => window.shopcastPlayer?.stop?.()"
CLOCK = "() => performance.timeOrigin + performance.now()"
COUNTDOWN = 3  # seconds, as the studio's Go live counts (static/js/studio.js)
# The viewer's first frame and its countdown's zero, once it has both (either may come first).
AGAINST_ZERO = (
    "() => window.shopcastFirstFrame !== undefined && window.shopcastCountdownEnd !== undefined"
    " && [window.shopcastFirstFrame, window.shopcastCountdownEnd]"
)
# Waiting for the show, and in its Socket.IO room (the composer is drawn once the page joined),
# so that stream:prepare reaches it.
WAITING = "body[data-mode=waiting] #chat-sign-in:not([hidden])"


@dataclass(frozen=True)
class Device:
    name: str
    context: dict[str, Any]


PHONE = Device(
    "phone 390x844",
    {
        "viewport": {"width": 390, "height": 844},
        "is_mobile": True,
        "has_touch": True,
        "device_scale_factor": 3,
    },
)
DESKTOP = Device("desktop 1440x900", {"viewport": {"width": 1440, "height": 900}})

# A blank page of the node's origin (served by a Playwright route), so it imports the pages'
# WHIP/WHEP client as they do. Its `glass` paints and reads back the clock.
PAGE = (Path(__file__).parent / "glass.html").read_text()


# --- the node -----------------------------------------------------------------------------


async def create_show(http: aiohttp.ClientSession, base: str, token: str, title: str) -> str:
    """A show with one product, not started: its id."""
    auth = {"Authorization": f"Bearer {token}"}
    product = {"title": "Silk scarf", "price_cents": 2500, "stock": 10}
    async with http.post(f"{base}/api/v1/products", json=product, headers=auth) as response:
        product_id = (await response.json())["id"]
    body = {"title": title, "product_ids": [product_id]}
    async with http.post(f"{base}/api/v1/streams", json=body, headers=auth) as response:
        return str((await response.json())["id"])


async def go_live(
    http: aiohttp.ClientSession, base: str, token: str, stream_id: str
) -> dict[str, str]:
    """Go-live for the show: its id, WHIP URL and publish token."""
    auth = {"Authorization": f"Bearer {token}"}
    async with http.post(f"{base}/api/v1/streams/{stream_id}/go-live", headers=auth) as response:
        live = await response.json()
    return {"id": stream_id, "whip": live["whip_url"], "token": live["publish_token"]}


async def new_show(
    http: aiohttp.ClientSession, base: str, token: str, title: str
) -> dict[str, str]:
    """A show with one product, and a publish token for it."""
    return await go_live(http, base, token, await create_show(http, base, token, title))


async def end_show(http: aiohttp.ClientSession, base: str, token: str, stream_id: str) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    async with http.post(f"{base}/api/v1/streams/{stream_id}/end", headers=auth) as response:
        await response.read()


async def wait_live(http: aiohttp.ClientSession, base: str, stream_id: str) -> None:
    """Until the node has the publisher's media (the show turns live), at most 30 s."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        async with http.get(f"{base}/api/v1/streams/{stream_id}") as response:
            if (await response.json()).get("status") == "live":
                return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"show {stream_id} never went live")


# --- pages --------------------------------------------------------------------------------


async def glass_page(context: BrowserContext, base: str) -> Page:
    page = await context.new_page()
    await page.route(
        f"{base}/bench/glass", lambda route: route.fulfill(body=PAGE, content_type="text/html")
    )
    await page.goto(f"{base}/bench/glass")
    await page.wait_for_function("() => window.glass", timeout=WAIT_MS)
    return page


async def clock_offset(page: Page) -> tuple[float, float]:
    """The page's clock minus this process's wall clock, ms, and the uncertainty (half the
    round trip) of the best of ten readings."""
    readings = []
    for _ in range(10):
        before = time.time() * 1000
        theirs = float(await page.evaluate(CLOCK))
        after = time.time() * 1000
        readings.append(((after - before) / 2, theirs - (before + after) / 2))
    uncertainty, offset = min(readings)
    return offset, uncertainty


async def first_frame(page: Page) -> float:
    handle = await page.wait_for_function(FIRST_FRAME, timeout=WAIT_MS)
    return float(await handle.json_value())


async def time_to_first_frame(
    browser: Browser, base: str, stream_id: str, device: Device, runs: int
) -> dict[str, list[float]]:
    """First visit (a new context: empty cache) and reload of the watch page, ``runs`` times."""
    figures: dict[str, list[float]] = {"first": [], "reload": []}
    for _ in range(runs):
        context = await browser.new_context(**device.context)
        try:
            page = await context.new_page()
            await page.goto(f"{base}/watch/{stream_id}")
            figures["first"].append(await first_frame(page))
            # The WHEP session ends before the next load, so sessions do not pile up on the node.
            await page.evaluate(STOP_PLAYER)
            await page.reload()
            figures["reload"].append(await first_frame(page))
            await page.evaluate(STOP_PLAYER)
        finally:
            await context.close()
    return figures


async def sample_frames(viewer: Page, seconds: float) -> dict[str, Any]:
    """The ages of ``seconds`` of frames, from ``SETTLE_SECONDS`` after the first one."""
    await viewer.wait_for_function(
        "() => glass.samples.length + glass.rejected > 0", timeout=WAIT_MS
    )
    await asyncio.sleep(SETTLE_SECONDS)
    await viewer.evaluate("() => { glass.samples = []; glass.rejected = 0; }")
    await asyncio.sleep(seconds)
    taken: dict[str, Any] = await viewer.evaluate(
        "() => ({ samples: glass.samples, rejected: glass.rejected })"
    )
    return taken


async def glass_direct(browser: Browser, base: str, seconds: float) -> dict[str, Any]:
    context = await browser.new_context()
    try:
        page = await glass_page(context, base)
        await page.evaluate("() => glass.direct(30)")
        taken = await sample_frames(page, seconds)
        taken["sent"] = await page.evaluate("() => glass.encoder()")
        await page.evaluate("() => glass.stop()")
    finally:
        await context.close()
    return {**taken, "skew": 0.0, "uncertainty": 0.0}


async def glass_sfu(
    browser: Browser, base: str, show: dict[str, str], seconds: float, simulcast: bool
) -> dict[str, Any]:
    contexts = [await browser.new_context(), await browser.new_context()]
    try:
        publisher, viewer = [await glass_page(context, base) for context in contexts]
        await publisher.evaluate(
            "([whip, token, simulcast]) => glass.publishCanvas(whip, token, 30, simulcast)",
            [show["whip"], show["token"], simulcast],
        )
        async with aiohttp.ClientSession() as http:
            await wait_live(http, base, show["id"])
        await viewer.evaluate("(whep) => glass.view(whep)", f"{base}/whep/{show['id']}")
        taken = await sample_frames(viewer, seconds)
        taken["sent"] = await publisher.evaluate("() => glass.encoder()")
        (painter, painter_error), (reader, reader_error) = [
            await clock_offset(page) for page in (publisher, viewer)
        ]
        for page in (viewer, publisher):
            await page.evaluate("() => glass.stop()")
    finally:
        for context in contexts:
            await context.close()
    # The viewer's clock runs `skew` ms ahead of the painter's: every age is that much too old.
    skew = reader - painter
    for sample in taken["samples"]:
        for index in range(2):
            if sample[index] is not None:
                sample[index] -= skew
    return {**taken, "skew": skew, "uncertainty": painter_error + reader_error}


# --- the warm-up --------------------------------------------------------------------------


async def seller_socket(base: str, token: str) -> socketio.AsyncClient:
    """The seller's Socket.IO connection, signed in, as the studio's."""
    sio = socketio.AsyncClient(reconnection=False)
    await sio.connect(base, auth={"token": token}, transports=["websocket"], wait_timeout=10)
    return sio


async def countdown_run(
    browser: Browser,
    http: aiohttp.ClientSession,
    sio: socketio.AsyncClient,
    publisher: Page,
    base: str,
    seller: str,
    warm: bool,
) -> float:
    """A new show's Go live seen by a viewer already waiting: its first frame minus its
    countdown's zero, ms."""
    stream_id = await create_show(http, base, seller, "warm-up" if warm else "no warm-up")

    async def publish() -> None:
        live = await go_live(http, base, seller, stream_id)
        await publisher.evaluate(
            "([whip, token]) => glass.publishCamera(whip, token)", [live["whip"], live["token"]]
        )

    context = await browser.new_context(**PHONE.context)
    try:
        viewer = await context.new_page()
        await viewer.goto(f"{base}/watch/{stream_id}")
        await viewer.wait_for_selector(WAITING, timeout=WAIT_MS)
        prepare = {"stream_id": stream_id, "countdown": COUNTDOWN}
        reply = await sio.call("stream:prepare", prepare, timeout=10)
        if not isinstance(reply, dict) or not reply.get("ok"):
            raise RuntimeError(f"stream:prepare refused: {reply}")
        if warm:  # the studio now: the WHIP session comes up while the countdown runs
            async with asyncio.TaskGroup() as group:
                group.create_task(publish())
                group.create_task(asyncio.sleep(COUNTDOWN))
        else:  # the studio before: WHIP once the countdown is over
            await asyncio.sleep(COUNTDOWN)
            await publish()
        handle = await viewer.wait_for_function(AGAINST_ZERO, timeout=WAIT_MS)
        frame, zero = await handle.json_value()
        await viewer.evaluate(STOP_PLAYER)
    finally:
        await context.close()
        await publisher.evaluate("() => glass.stop()")
        await end_show(http, base, seller, stream_id)
    return float(frame) - float(zero)


async def warm_up(browser: Browser, base: str, seller: str, runs: int) -> dict[str, float]:
    """``runs`` Go lives with the warm-up and ``runs`` without, alternating."""
    figures: dict[bool, list[float]] = {True: [], False: []}
    async with aiohttp.ClientSession() as http:
        sio = await seller_socket(base, seller)
        context = await browser.new_context()
        try:
            publisher = await glass_page(context, base)
            size = await publisher.evaluate("() => glass.openCamera()")
            print(
                f"the viewer's first frame against the countdown's zero: a {PHONE.name} viewer "
                f"waits on the watch page, stream:prepare counts down {COUNTDOWN} s, fake camera "
                f"{size} with simulcast (negative: decoded behind the countdown, shown at zero):",
                flush=True,
            )
            for _ in range(runs):
                for warm in (True, False):
                    after_zero = await countdown_run(
                        browser, http, sio, publisher, base, seller, warm
                    )
                    figures[warm].append(after_zero)
        finally:
            await context.close()
            await sio.disconnect()
    for warm, label in ((True, "with warm-up"), (False, "without (WHIP at zero)")):
        print(f"  {label:31} {spread(figures[warm])}", flush=True)
    return {
        "warmup_p50_ms": round(statistics.median(figures[True])),
        "no_warmup_p50_ms": round(statistics.median(figures[False])),
    }


# --- figures ------------------------------------------------------------------------------


def spread(values: list[float]) -> str:
    return (
        f"median {statistics.median(values):.0f} ms, p90 {percentile(values, 0.9):.0f} ms "
        f"({len(values)} runs)"
    )


def median_of(samples: list[list[float | None]], index: int) -> float | None:
    values = [value for sample in samples if (value := sample[index]) is not None]
    return statistics.median(values) if values else None


def ms(value: float | None) -> str:
    return "?" if value is None or math.isnan(value) else f"{value:.0f}"


def glass_line(name: str, taken: dict[str, Any], seconds: float) -> dict[str, float]:
    """Print one path's ages; its median, p90 and p99 from painted to the viewer's callback."""
    samples = taken["samples"]
    ages = [sample[0] for sample in samples]
    if not ages:
        print(f"  {name:32} no frame read back ({taken['rejected']} unreadable)", flush=True)
        return {}
    received = median_of(samples, 1)
    figures = {
        "p50": statistics.median(ages),
        "p90": percentile(ages, 0.9),
        "p99": percentile(ages, 0.99),
        "received_p50": math.nan if received is None else received,
    }
    clocks = f"; clocks {taken['skew']:+.1f} ms apart (±{taken['uncertainty']:.1f})"
    print(
        f"  {name:32} median {figures['p50']:.0f} ms, p90 {figures['p90']:.0f} ms, "
        f"p99 {figures['p99']:.0f} ms\n"
        f"  {'':32} painted to its last packet received median "
        f"{ms(figures['received_p50'])} ms; "
        f"{len(ages) / seconds:.1f} frames/s read, {taken['rejected']} unreadable, "
        f"{ms(median_of(samples, 2))} px wide\n"
        f"  {'':32} sender: {taken['sent']}{clocks if taken['skew'] else ''}",
        flush=True,
    )
    return figures


# --- orchestration ------------------------------------------------------------------------


async def first_frames(browser: Browser, base: str, seller: str, runs: int) -> dict[str, float]:
    async with aiohttp.ClientSession() as http:
        show = await new_show(http, base, seller, "first frame")
        context = await browser.new_context()
        try:
            publisher = await glass_page(context, base)
            size = await publisher.evaluate(
                "([whip, token]) => glass.publishCamera(whip, token)", [show["whip"], show["token"]]
            )
            await wait_live(http, base, show["id"])
            print(
                f"time to first frame over WHEP from navigation, watch page, fake camera {size} "
                "with simulcast:",
                flush=True,
            )
            medians: dict[str, float] = {}
            for device in (PHONE, DESKTOP):
                figures = await time_to_first_frame(browser, base, show["id"], device, runs)
                for visit, label in (("first", "first visit"), ("reload", "reload")):
                    print(f"  {device.name:18} {label:12} {spread(figures[visit])}", flush=True)
                    medians[f"ttff_{device.name.split()[0]}_{visit}_ms"] = round(
                        statistics.median(figures[visit])
                    )
            await publisher.evaluate("() => glass.stop()")
        finally:
            await context.close()
    return medians


async def glass_to_glass(
    browser: Browser, base: str, seller: str, seconds: float
) -> dict[str, float]:
    print(
        f"glass to glass, Chromium to Chromium: a 1280x720 canvas painting the wall clock, "
        f"captureStream(30), H.264, {seconds:.0f} s of frames (goal <= {GOAL_MS} ms):",
        flush=True,
    )
    reference = glass_line(
        "reference, no SFU (one page)", await glass_direct(browser, base, seconds), seconds
    )
    figures = {}
    async with aiohttp.ClientSession() as http:
        for simulcast, name in ((False, "SFU, one layer"), (True, "SFU, 3 layers (studio)")):
            show = await new_show(http, base, seller, name)
            taken = await glass_sfu(browser, base, show, seconds, simulcast)
            figures[name] = glass_line(f"over the {name}", taken, seconds)
    if reference:
        for name, measured in figures.items():
            if measured:
                arrival = measured["received_p50"] - reference["received_p50"]
                print(
                    f"  the {name} adds {ms(arrival)} ms to the last packet's arrival, "
                    f"{measured['p50'] - reference['p50']:.0f} ms at the viewer (medians; the "
                    "viewer's figure moves in steps of a 60 Hz frame, 16.7 ms)",
                    flush=True,
                )
    one, layered = figures["SFU, one layer"], figures["SFU, 3 layers (studio)"]
    return {
        "g2g_ref_p50_ms": round(reference.get("p50", 0)),
        "g2g_p50_ms": round(one.get("p50", 0)),
        "g2g_p99_ms": round(one.get("p99", 0)),
        "g2g_simulcast_p50_ms": round(layered.get("p50", 0)),
    }


async def orchestrate(runs: int, seconds: float) -> None:
    server = await spawn("bench.glass", "--role", "server")
    try:
        base = (await read_json(server, 60))["url"]
        async with aiohttp.ClientSession() as http:
            seller = await register(http, base, "seller")
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM, args=BROWSER_FLAGS, headless=True
            )
            try:
                interfaces = ", ".join(sorted(os.listdir("/sys/class/net")))
                print(
                    f"Chromium {browser.version}, headless; a Shopcast node on {base}; "
                    f"network interfaces: {interfaces}",
                    flush=True,
                )
                ttff = await first_frames(browser, base, seller, runs)
                ttff |= await warm_up(browser, base, seller, runs)
                g2g = await glass_to_glass(browser, base, seller, seconds)
            finally:
                await browser.close()
    finally:
        await stop_all([server])
    emit(runs=runs, **ttff, **g2g)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="first visits (and reloads) per size")
    parser.add_argument("--seconds", type=float, default=12.0, help="glass to glass window")
    parser.add_argument(
        "--role", choices=["orchestrator", "server"], default="orchestrator", help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if not 1 <= args.runs <= 50 or not 1 <= args.seconds <= 120:
        parser.error("--runs is 1 to 50, --seconds 1 to 120")
    if args.role == "server":
        asyncio.run(run_server(RecorderConfig().part_target))
    else:
        asyncio.run(orchestrate(args.runs, args.seconds))


if __name__ == "__main__":
    main()
