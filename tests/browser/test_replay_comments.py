"""Replay comments in real Chromium on a phone (390x844, touch) and at 1440x900: a show's
replay lists what viewers said at each moment, marks each on a strip of its timeline, plays
from a comment's moment when it is tapped, and takes a new one at the moment on screen.
Screenshots: build/screenshots/replay-comments-*.png.
"""

from contextlib import AsyncExitStack
from typing import Any

from playwright.async_api import Browser

from server.settings import Settings
from tests.browser.conftest import serve
from tests.browser.layout import targets_are_thumb_sized
from tests.browser.test_rewind import DESKTOP, PHONE, publish
from tests.browser.test_story import SHOTS, audit, register
from tests.conftest import Shop, eventually

CURRENT = "() => document.getElementById('player').currentTime"


async def test_comments_sit_at_their_moment_of_the_replay(
    browser: Browser, settings: Settings, aiohttp_client: Any, database_url: str
) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    client = await serve(settings, aiohttp_client)
    base = settings.resolved_public_url
    shop = Shop(client, database_url)
    async with AsyncExitStack() as stack:
        seller = await shop.account("seller", display_name="Maya")
        sid, publisher = await publish(shop, stack, seller, title="Blue dresses")

        async def segments() -> bool:
            text = await (await client.get(f"/hls/{sid}/index.m3u8")).text()
            return text.count("#EXTINF") >= 4

        await eventually(segments, 30, "no live segments")
        assert (await client.post(f"/api/v1/streams/{sid}/end", headers=seller.auth)).status == 200
        await publisher.close()

        async def published() -> bool:
            return bool((await (await client.get(f"/api/v1/streams/{sid}")).json())["vod_url"])

        await eventually(published, 30, "the replay was never published")
        fan = await shop.account(display_name="Jo")
        said = await client.post(
            f"/api/v1/streams/{sid}/comments",
            json={"at_seconds": 1.5, "text": "That blue one!"},
            headers=fan.auth,
        )
        assert said.status == 201

        phone = await browser.new_context(viewport=PHONE, has_touch=True, is_mobile=True)  # type: ignore[arg-type]
        stack.push_async_callback(phone.close)
        page = await phone.new_page()
        await page.goto(f"{base}/watch/{sid}")
        await page.wait_for_selector("body[data-mode=replay]")
        await page.wait_for_selector("#comment-list li:has-text('That blue one!')")
        await page.wait_for_selector("#comment-track .mark")  # once the replay's length is known
        # Tapping the comment's time plays from its moment.
        await page.evaluate("() => { document.getElementById('player').currentTime = 3.5; }")
        await page.tap("#comment-list .at")
        await eventually(
            lambda: _near(page, 1.5), 10, "tapping a comment did not seek to its moment"
        )
        # A signed-out viewer is asked to sign in, then comments at the moment on screen.
        await page.tap("#comment-form button[type=submit]")
        await page.wait_for_selector("#account[open]")
        await register(page, "Ann")
        await page.wait_for_selector("#account-button:has-text('Ann')")
        await page.evaluate(
            "() => { const v = document.getElementById('player'); v.pause(); v.currentTime = 2.5; }"
        )
        await eventually(lambda: _near(page, 2.5), 10, "the replay did not move to 2.5 s")
        await page.fill("#comment-form [name=text]", "Is it lined?")
        await page.tap("#comment-form button[type=submit]")
        await page.wait_for_selector("#comment-status:has-text('Posted at 0:02')")
        texts = await page.locator("#comment-list li .text").all_inner_texts()
        assert texts == ["That blue one!", "Is it lined?"], texts
        assert await page.locator("#comment-track .mark").count() == 2
        stored = await (await client.get(f"/api/v1/streams/{sid}/comments")).json()
        assert abs(stored[1]["at_seconds"] - 2.5) < 0.1, stored
        await audit(page, "replay-comments-phone")
        await targets_are_thumb_sized(page, "the replay's comments")
        await page.screenshot(path=str(SHOTS / "replay-comments-phone.png"))

        desk = await browser.new_context(viewport=DESKTOP)  # type: ignore[arg-type]
        stack.push_async_callback(desk.close)
        wide = await desk.new_page()
        await wide.goto(f"{base}/watch/{sid}")
        await wide.wait_for_selector("#comment-track .mark >> nth=1")
        await audit(wide, "replay-comments-desktop")
        await wide.screenshot(path=str(SHOTS / "replay-comments-desktop.png"))


async def _near(page: Any, at: float) -> bool:
    return abs(float(await page.evaluate(CURRENT)) - at) < 0.6
