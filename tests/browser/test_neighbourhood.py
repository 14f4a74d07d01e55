"""A neighbourhood show in real Chromium on a phone: a signed-in viewer who has not said where
they are is asked to share an approximate location (the browser's geolocation, granted here at
2.5 km from the seller), and then watches. Screenshots: build/screenshots/neighbourhood-*.png.
"""

from typing import Any

from playwright.async_api import Browser

from server.settings import Settings
from tests.api.test_streams import KREUZBERG, NEUKOLLN, locate
from tests.browser.conftest import serve
from tests.browser.layout import targets_are_thumb_sized
from tests.browser.test_rewind import DESKTOP, PHONE
from tests.browser.test_story import SHOTS, audit, register
from tests.conftest import Shop


async def test_a_viewer_shares_an_approximate_location_to_watch_a_neighbourhood_show(
    browser: Browser, settings: Settings, aiohttp_client: Any, database_url: str
) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    client = await serve(settings, aiohttp_client)
    base = settings.resolved_public_url
    shop = Shop(client, database_url)
    seller = await shop.account("seller", display_name="Corner shop")
    await locate(shop, seller, KREUZBERG)
    show = await shop.stream(seller, title="Street sale", audience="neighborhood")
    near = {"latitude": NEUKOLLN[0], "longitude": NEUKOLLN[1]}
    for viewport, name in ((PHONE, "phone"), (DESKTOP, "desktop")):
        context = await browser.new_context(
            viewport=viewport,  # type: ignore[arg-type]
            has_touch=viewport is PHONE,
            geolocation=near,
            permissions=["geolocation"],
        )
        try:
            page = await context.new_page()
            await page.goto(f"{base}/watch/{show['id']}")
            await page.wait_for_selector("#account[open]")  # signed out: sign in first
            await register(page, f"Nia{name}")
            await page.wait_for_selector("#account-button:has-text('Nia')")
            await page.reload()
            await page.wait_for_selector("#share-location")
            assert "approximate location" in await page.inner_text("#status")
            await audit(page, f"neighbourhood-ask-{name}")
            if viewport is PHONE:
                await targets_are_thumb_sized(page, "the location prompt")
            await page.screenshot(path=str(SHOTS / f"neighbourhood-ask-{name}.png"))
            if viewport is PHONE:
                await page.tap("#share-location")
            else:
                await page.click("#share-location")
            await page.wait_for_selector("#title:text-is('Street sale')")
            await page.screenshot(path=str(SHOTS / f"neighbourhood-admitted-{name}.png"))
        finally:
            await context.close()
