"""Discovery in real Chromium: the home page's three sections (a live show with its poster and
viewers, an upcoming one with its date, a replay), search over shows and products, and a
seller's page with follow, on a phone (390x844, touch) and at 1440x900.
Screenshots: build/screenshots/discovery-*.png.
"""

from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

from playwright.async_api import Browser, Page

from server.settings import Settings
from tests.browser.conftest import serve
from tests.browser.layout import targets_are_thumb_sized
from tests.browser.test_rewind import DESKTOP, PHONE, publish
from tests.browser.test_story import SHOTS, audit, register
from tests.conftest import Shop, eventually


async def shoot(page: Page, name: str) -> None:
    await audit(page, name)
    await page.screenshot(path=str(SHOTS / f"discovery-{name}.png"), full_page=True)


async def test_home_sections_search_and_the_seller_page(
    browser: Browser, settings: Settings, aiohttp_client: Any, database_url: str
) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    client = await serve(settings, aiohttp_client)
    base = settings.resolved_public_url
    shop = Shop(client, database_url)
    async with AsyncExitStack() as stack:
        maya = await shop.account("seller", display_name="Maya's Vintage")
        await shop.product(maya, title="Silk scarf", price_cents=800)
        live, _ = await publish(shop, stack, maya, title="Autumn silk", estimated_duration=45)
        tomorrow = datetime.now(UTC) + timedelta(days=1)
        planned = await shop.stream(maya, title="Winter coats", scheduled_at=tomorrow.isoformat())
        replay = await shop.stream(maya, title="Summer hats")
        await shop.execute(
            "UPDATE streams SET status = 'ended', ended_at = :at, vod_url = :url WHERE id = :id",
            at=datetime.now(UTC) - timedelta(days=2),
            url=f"{base}/media/vod/{replay['id']}/master.m3u8",
            id=replay["id"],
        )

        phone = await browser.new_context(viewport=PHONE, has_touch=True, is_mobile=True)  # type: ignore[arg-type]
        stack.push_async_callback(phone.close)
        home = await phone.new_page()
        await home.goto(f"{base}/")
        await home.wait_for_selector(f"#live a[href='/watch/{live}']:has-text('Autumn silk')")
        await home.wait_for_selector("#live .badge.live:text-matches('LIVE · \\\\d+ watching')")
        await home.wait_for_selector("#live .by:has-text('about 45 min')")
        upcoming = home.locator(f"#upcoming a[href='/watch/{planned['id']}']")
        assert "Winter coats" in await upcoming.inner_text()
        assert await home.locator("#upcoming .badge").inner_text() != "Replay"  # its date
        await home.wait_for_selector(f"#replays a[href='/watch/{replay['id']}']")

        async def poster_shown() -> bool:
            # The live recording's poster, once its first keyframe is recorded.
            return bool(await home.evaluate(POSTER_LOADED, f"#live a[href='/watch/{live}']"))

        await home.reload()
        await eventually(poster_shown, 20, "the live show's poster never loaded")
        await targets_are_thumb_sized(home, "the home page")
        await shoot(home, "home-phone")

        await home.fill("#words", "silk")
        await home.press("#words", "Enter")
        await home.wait_for_selector(f"#found-shows a[href='/watch/{live}']")
        await home.wait_for_selector("#found-products li:has-text('Silk scarf')")
        assert await home.is_hidden("#sections")
        await shoot(home, "search-phone")

        # The seller's name on a card leads to the seller's page; a signed-in viewer follows.
        await home.fill("#words", "")
        await home.press("#words", "Enter")
        await home.tap('#live .by a:has-text("Maya\'s Vintage")')
        await home.wait_for_url(f"{base}/s/maya-s-vintage")
        await home.wait_for_selector('#name:text-is("Maya\'s Vintage")')
        await home.wait_for_selector("#followers:text-is('0 followers')")
        await home.wait_for_selector(f"#live a[href='/watch/{live}']")
        await home.wait_for_selector(f"#upcoming a[href='/watch/{planned['id']}']")
        await home.wait_for_selector(f"#replays a[href='/watch/{replay['id']}']")
        await targets_are_thumb_sized(home, "the seller page")
        await shoot(home, "seller-phone")
        await home.tap("#follow")
        await home.wait_for_selector("#status:has-text('Sign in')")
        watch = await phone.new_page()
        await watch.goto(f"{base}/watch/{live}")
        await watch.click("#account-button")
        await register(watch, "Ann")
        await watch.wait_for_selector("#account-button:has-text('Ann')")
        await home.reload()
        await home.tap("#follow")
        await home.wait_for_selector("#follow[aria-pressed=true]:text-is('Following')")
        await home.wait_for_selector("#followers:text-is('1 follower')")
        await shoot(home, "seller-following-phone")

        desk = await browser.new_context(viewport=DESKTOP)  # type: ignore[arg-type]
        stack.push_async_callback(desk.close)
        wide = await desk.new_page()
        await wide.goto(f"{base}/")
        await wide.wait_for_selector(f"#replays a[href='/watch/{replay['id']}']")
        await shoot(wide, "home-desktop")
        await wide.goto(f"{base}/s/maya-s-vintage")
        await wide.wait_for_selector("#followers:text-is('1 follower')")
        await shoot(wide, "seller-desktop")
        await wide.goto(f"{base}/s/nobody-here")
        await wide.wait_for_selector("#status:text-is('No seller has this address.')")


POSTER_LOADED = """(selector) => {
  const image = document.querySelector(`${selector} .poster img`);
  return image && image.complete && image.naturalWidth > 0;
}"""
