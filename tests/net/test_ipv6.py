"""A phone on an IPv6-only network plays a dual-stack server directly, over IPv6 host
candidates: the server host has an IPv4 and an IPv6 address, the viewer host IPv6 only."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import async_playwright

from tests.browser.conftest import ARTIFACTS
from tests.net.hosts import chromium_on, live_show, serve_shopcast, watch_on_phone
from tests.net.internet import Internet

pytestmark = pytest.mark.browser

SERVER_V4, SERVER_V6, VIEWER_V6 = "10.79.2.1", "fd00:79:2::1", "fd00:79:2::2"
BASE = f"http://[{SERVER_V6}]:8080"


async def test_an_ipv6_only_viewer_plays_over_ipv6(internet: Internet, tmp_path: Path) -> None:
    server = internet.host("server")
    viewer = internet.host("viewer")
    server_link, _ = internet.link(server, f"{SERVER_V6}/64", viewer, f"{VIEWER_V6}/64")
    internet.address(server, server_link, f"{SERVER_V4}/24")
    internet.route(viewer, SERVER_V6)  # a phone's network has a way out
    serve_shopcast(
        internet,
        server,
        tmp_path,
        BASE,
        host="::",
        port="8080",
        ice_host_addresses=f"{SERVER_V4},{SERVER_V6}",
    )
    async with live_show(server, BASE, "IPv6 show") as sid, async_playwright() as playwright:
        chromium = await chromium_on(playwright, viewer, tmp_path)
        try:
            page, state = await watch_on_phone(
                chromium, f"{BASE}/watch/{sid}", "the IPv6 viewer never played"
            )
            assert state["route"]["type"] == "host"
            assert state["route"]["remote"] == SERVER_V6
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "watch-ipv6.png"))
        finally:
            await chromium.close()
