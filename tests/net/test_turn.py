"""A viewer whose network drops all UDP plays over WebRTC through coturn, over TCP and TLS.

The small internet: a server host (Shopcast and coturn) and a viewer host joined by a veth
pair; the viewer's nftables drop every UDP packet, so no host candidate can connect. The watch
page asks for the show's ICE servers, gathers a TURN relay candidate over TCP (or TLS on
5349) and plays. Chromium runs inside the viewer's namespace.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import async_playwright

from peers.webrtc import PublisherPeer
from server.tls import ensure_certificate
from tests.browser.conftest import ARTIFACTS, CHROMIUM, FLAGS
from tests.conftest import eventually
from tests.faults.netns import LoopThread
from tests.net.internet import Internet, unavailable
from tests.nodes import ROOT

pytestmark = pytest.mark.browser

SERVER, VIEWER = "10.79.1.1", "10.79.1.2"
PORT = 8080
BASE = f"http://{SERVER}:{PORT}"
TURN_SECRET = "coturn test secret"
NO_UDP = """
table inet no_udp {
  chain in { type filter hook input priority 0; policy accept; meta l4proto udp drop; }
  chain out { type filter hook output priority 0; policy accept; meta l4proto udp drop; }
}
"""
# The selected candidate pair of the viewer's peer connection: how its media travels.
ROUTE = """async () => {
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
      if (local) route = { type: local.candidateType, relayProtocol: local.relayProtocol };
    }
  }
  return { frames, route };
}"""


def why_not() -> str | None:
    missing = [tool for tool in ("turnserver",) if shutil.which(tool) is None]
    if missing:
        return "missing coturn (Debian package coturn)"
    return unavailable()


@pytest.fixture
def internet() -> Iterator[Internet]:
    reason = why_not()
    if reason:
        pytest.skip(reason)
    with Internet() as net:
        yield net


def start_coturn(net: Internet, host: str, workdir: Path) -> None:
    certificate, key = ensure_certificate(workdir, SERVER)
    config = workdir / "turnserver.conf"
    config.write_text(
        "\n".join(
            [
                f"listening-ip={SERVER}",
                f"relay-ip={SERVER}",
                "listening-port=3478",
                "tls-listening-port=5349",
                "use-auth-secret",
                f"static-auth-secret={TURN_SECRET}",
                "realm=shopcast.test",
                f"cert={certificate}",
                f"pkey={key}",
                f"allowed-peer-ip={SERVER}",
                "no-cli",
                "no-multicast-peers",
                "fingerprint",
                "simple-log",
                "log-file=stdout",
                "",
            ]
        )
    )
    net.spawn(host, ["turnserver", "-c", str(config)], log=workdir / "coturn.log")


def start_shopcast(net: Internet, host: str, workdir: Path, ice_server: str) -> None:
    env = {
        "SHOPCAST_DATA_DIR": str(workdir / "data"),
        "SHOPCAST_HOST": SERVER,
        "SHOPCAST_PORT": str(PORT),
        "SHOPCAST_PUBLIC_URL": BASE,
        "SHOPCAST_ICE_HOST_ADDRESSES": SERVER,
        "SHOPCAST_ICE_SERVERS": ice_server,
        "SHOPCAST_TURN_SECRET": TURN_SECRET,
        "SHOPCAST_LOG_LEVEL": "WARNING",
    }
    net.exec(
        host,
        "env",
        *(f"{k}={v}" for k, v in env.items()),
        sys.executable,
        "-m",
        "server",
        "migrate",
    )
    net.spawn(
        host,
        [sys.executable, "-m", "server", "serve"],
        log=workdir / "shopcast.log",
        env=env,
        cwd=ROOT,
    )


async def go_live(http: aiohttp.ClientSession) -> tuple[str, PublisherPeer]:
    """On the server host: a seller's show, live from an aiortc publisher."""

    async def healthy() -> bool:
        try:
            async with http.get(f"{BASE}/healthz") as response:
                return response.status == 200
        except aiohttp.ClientError:
            return False

    await eventually(healthy, 30, "Shopcast did not start in its namespace")
    account = {"email": "seller@example.com", "password": "correct horse", "display_name": "Seller"}
    async with http.post(f"{BASE}/api/v1/auth/register", json={**account, "role": "seller"}) as r:
        auth = {"Authorization": f"Bearer {(await r.json())['access_token']}"}
    async with http.post(
        f"{BASE}/api/v1/streams", json={"title": "Through TURN"}, headers=auth
    ) as r:
        sid = (await r.json())["id"]
    async with http.post(f"{BASE}/api/v1/streams/{sid}/go-live", headers=auth) as r:
        token = (await r.json())["publish_token"]
    publisher = PublisherPeer(size=(640, 360))
    async with http.post(
        f"{BASE}/whip/{sid}",
        data=await publisher.offer(),
        headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"},
    ) as r:
        assert r.status == 201, await r.text()
        await publisher.accept(await r.text())
    return sid, publisher


@pytest.mark.parametrize(
    ("ice_server", "relay_protocol"),
    [
        (f"turn:{SERVER}:3478?transport=tcp", "tcp"),
        (f"turns:{SERVER}:5349?transport=tcp", "tls"),
    ],
)
async def test_a_viewer_without_udp_plays_through_turn(
    internet: Internet, tmp_path: Path, ice_server: str, relay_protocol: str
) -> None:
    server = internet.host("server")
    viewer = internet.host("viewer")
    internet.link(server, f"{SERVER}/24", viewer, f"{VIEWER}/24")
    internet.nft(viewer, NO_UDP)
    start_coturn(internet, server, tmp_path)
    start_shopcast(internet, server, tmp_path, ice_server)
    wrapper = tmp_path / "chromium-in-viewer"
    wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {viewer} {CHROMIUM} "$@"\n')
    wrapper.chmod(0o755)

    on_server = LoopThread(server)

    async def session() -> aiohttp.ClientSession:
        return aiohttp.ClientSession()

    http = await on_server.run(session())
    publisher: PublisherPeer | None = None
    try:
        sid, publisher = await on_server.run(go_live(http))
        async with async_playwright() as playwright:
            # The TURN server's certificate is the test's own, self-signed: trust it.
            chromium = await playwright.chromium.launch(
                executable_path=str(wrapper),
                args=[*FLAGS, "--ignore-certificate-errors"],
                headless=True,
            )
            try:
                page = await chromium.new_page(
                    viewport={"width": 390, "height": 844}, has_touch=True
                )
                await page.goto(f"{BASE}/watch/{sid}")

                async def playing() -> Any:
                    state = await page.evaluate(ROUTE)
                    return state if state and state["frames"] > 30 and state["route"] else None

                state = await eventually(playing, 40, "the viewer never played through TURN")
                assert state["route"] == {"type": "relay", "relayProtocol": relay_protocol}
                assert await page.evaluate("() => document.body.dataset.mode") == "webrtc"
                ARTIFACTS.mkdir(exist_ok=True)
                await page.screenshot(path=str(ARTIFACTS / f"watch-turn-{relay_protocol}.png"))
            finally:
                await chromium.close()
    finally:
        if publisher is not None:
            await on_server.run(publisher.close())
        await on_server.run(http.close())
        on_server.close()
