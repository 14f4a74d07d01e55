"""A viewer whose network drops all UDP plays over WebRTC through coturn, over TCP and TLS.

The small internet: a server host (Shopcast and coturn) and a viewer host joined by a veth
pair; the viewer's nftables drop every UDP packet, so no host candidate can connect. The watch
page asks for the show's ICE servers, gathers a TURN relay candidate over TCP (or TLS on
5349) and plays. Chromium runs inside the viewer's namespace.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from playwright.async_api import async_playwright

from server.tls import ensure_certificate
from tests.browser.conftest import ARTIFACTS
from tests.net.hosts import chromium_on, live_show, serve_shopcast, watch_on_phone
from tests.net.internet import Internet

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
    if shutil.which("turnserver") is None:
        pytest.skip("missing coturn (Debian package coturn)")
    server = internet.host("server")
    viewer = internet.host("viewer")
    internet.link(server, f"{SERVER}/24", viewer, f"{VIEWER}/24")
    internet.nft(viewer, NO_UDP)
    start_coturn(internet, server, tmp_path)
    serve_shopcast(
        internet,
        server,
        tmp_path,
        BASE,
        host=SERVER,
        port=str(PORT),
        ice_host_addresses=SERVER,
        ice_servers=ice_server,
        turn_secret=TURN_SECRET,
    )

    async with live_show(server, BASE, "Through TURN") as sid, async_playwright() as playwright:
        # The TURN server's certificate is the test's own, self-signed: trust it.
        chromium = await chromium_on(playwright, viewer, tmp_path, "--ignore-certificate-errors")
        try:
            page, state = await watch_on_phone(
                chromium, f"{BASE}/watch/{sid}", "the viewer never played through TURN"
            )
            route = state["route"]
            assert (route["type"], route["relayProtocol"]) == ("relay", relay_protocol)
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / f"watch-turn-{relay_protocol}.png"))
        finally:
            await chromium.close()
