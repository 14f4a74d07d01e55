"""Real Chromium (Debian's, driven by Playwright) with a fake camera.

These tests run inside a network namespace that has only a loopback interface (``make
test-browser`` creates it), so neither Chromium nor the SFU can reach any other address.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, async_playwright

from server.app import build_app
from server.settings import Settings
from tests.nodes import free_port

CHROMIUM = os.environ.get("SHOPCAST_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
FLAGS = [
    "--no-sandbox",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-gpu",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture
def engine_name() -> str:
    # The namespace has no route to the machine's PostgreSQL; pages need no second engine.
    return "sqlite"


async def serve(settings: Settings, aiohttp_client: Any) -> Any:
    """The app on a known loopback port, so the URLs it hands out are the ones pages load."""
    port = free_port()
    settings.public_url = f"http://127.0.0.1:{port}"
    return await aiohttp_client(build_app(settings), server_kwargs={"port": port})


@pytest.fixture
async def browser(aiohttp_client: Any) -> AsyncIterator[Browser]:
    # Depends on aiohttp_client so that it closes first: open pages hold Socket.IO connections,
    # which the server's shutdown would otherwise wait for.
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=FLAGS, headless=True
        )
        yield chromium
        await chromium.close()
