"""What runs on the hosts of a test's small internet: Shopcast, a live show, Chromium."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from playwright.async_api import Browser, Page, Playwright

from peers.webrtc import PublisherPeer
from tests.browser.conftest import CHROMIUM, FLAGS
from tests.conftest import eventually
from tests.faults.netns import LoopThread
from tests.net.internet import Internet
from tests.nodes import ROOT


def serve_shopcast(net: Internet, on: str, workdir: Path, public_url: str, **settings: str) -> None:
    """Migrate and start ``shopcast serve`` on host ``on``; ``settings`` are SHOPCAST_* values."""
    env = {
        "SHOPCAST_DATA_DIR": str(workdir / "data"),
        "SHOPCAST_PUBLIC_URL": public_url,
        "SHOPCAST_LOG_LEVEL": "WARNING",
        **{f"SHOPCAST_{name.upper()}": value for name, value in settings.items()},
    }
    assignments = [f"{name}={value}" for name, value in env.items()]
    net.exec(on, "env", *assignments, sys.executable, "-m", "server", "migrate")
    command = [sys.executable, "-m", "server", "serve"]
    net.spawn(on, command, log=workdir / "shopcast.log", env=env, cwd=ROOT)


async def open_show(
    http: aiohttp.ClientSession, base: str, title: str
) -> tuple[str, Any, dict[str, str]]:
    """A seller's new show, its go-live body (``whip_url``, ``publish_token``,
    ``ice_servers``) and the seller's authorization header, once Shopcast at ``base``
    answers."""

    async def healthy() -> bool:
        try:
            async with http.get(f"{base}/healthz") as response:
                return response.status == 200
        except aiohttp.ClientError:
            return False

    await eventually(healthy, 30, f"Shopcast at {base} did not start")
    account = {"email": "seller@example.com", "password": "correct horse", "display_name": "Sam"}
    async with http.post(f"{base}/api/v1/auth/register", json={**account, "role": "seller"}) as r:
        auth = {"Authorization": f"Bearer {(await r.json())['access_token']}"}
    async with http.post(f"{base}/api/v1/streams", json={"title": title}, headers=auth) as r:
        sid = str((await r.json())["id"])
    async with http.post(f"{base}/api/v1/streams/{sid}/go-live", headers=auth) as r:
        return sid, await r.json(), auth


async def go_live(http: aiohttp.ClientSession, base: str, title: str) -> tuple[str, PublisherPeer]:
    """A seller's show, live from an aiortc publisher on the calling host, once Shopcast at
    ``base`` answers."""
    sid, credentials, _ = await open_show(http, base, title)
    token = credentials["publish_token"]
    publisher = PublisherPeer(size=(640, 360))
    async with http.post(
        f"{base}/whip/{sid}",
        data=await publisher.offer(),
        headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"},
    ) as r:
        assert r.status == 201, await r.text()
        await publisher.accept(await r.text())
    return sid, publisher


@asynccontextmanager
async def live_show(host: str, base: str, title: str) -> AsyncIterator[str]:
    """A show live from an aiortc publisher on ``host`` (its id); publisher, HTTP client and
    the host's event loop are closed after the block."""
    on_host = LoopThread(host)

    async def session() -> aiohttp.ClientSession:
        return aiohttp.ClientSession()

    http = await on_host.run(session())
    publisher: PublisherPeer | None = None
    try:
        sid, publisher = await on_host.run(go_live(http, base, title))
        yield sid
    finally:
        if publisher is not None:
            await on_host.run(publisher.close())
        await on_host.run(http.close())
        on_host.close()


async def chromium_on(
    playwright: Playwright, host: str, workdir: Path, *extra_flags: str
) -> Browser:
    """Chromium running inside ``host``'s namespace (Playwright drives it over a pipe)."""
    wrapper = workdir / f"chromium-on-{host}"
    wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {host} {CHROMIUM} "$@"\n')
    wrapper.chmod(0o755)
    return await playwright.chromium.launch(
        executable_path=str(wrapper), args=[*FLAGS, *extra_flags], headless=True
    )


# The viewer's peer connection on the watch page: frames decoded, and how its media travels
# (the local candidate of the selected pair, and the remote one's address and port).
WATCH_STATE = """async () => {
  const pc = window.shopcastPlayer?.pc;
  if (!pc) return null;
  const stats = new Map();
  (await pc.getStats()).forEach((report) => stats.set(report.id, report));
  let frames = 0, route = null;
  for (const report of stats.values()) {
    if (report.type === "inbound-rtp" && report.kind === "video") frames = report.framesDecoded;
    if (report.type === "transport" && report.selectedCandidatePairId) {
      const pair = stats.get(report.selectedCandidatePairId);
      const local = pair && stats.get(pair.localCandidateId);
      const remote = pair && stats.get(pair.remoteCandidateId);
      if (local && remote) {
        route = {
          type: local.candidateType,
          relayProtocol: local.relayProtocol,
          remote: remote.address,
          port: remote.port,
        };
      }
    }
  }
  return { frames, route };
}"""


async def watch_on_phone(
    browser: Browser, url: str, what: str, within: float = 40
) -> tuple[Page, dict[str, Any]]:
    """Open the watch page at ``url`` as a phone does and wait until it plays over WebRTC
    (30 frames decoded); the page and its ``WATCH_STATE`` then."""
    page = await browser.new_page(viewport={"width": 390, "height": 844}, has_touch=True)
    await page.goto(url)

    async def playing() -> dict[str, Any] | None:
        state = await page.evaluate(WATCH_STATE)
        return state if state and state["frames"] > 30 and state["route"] else None

    state = await eventually(playing, within, what)
    assert await page.evaluate("() => document.body.dataset.mode") == "webrtc"
    return page, state
