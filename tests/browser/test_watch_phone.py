"""The watch page on a phone (390x844, touch) and a desktop (1440x900) in real Chromium: the
video fills the screen, the pinned card, Buy and the chat box stay in view with the keyboard
open, sound is one tap away, tags sit on the picture, cards keep what happened to them, and the
viewer can sign out; a banned viewer loses Buy and chat; an unknown show has a way home; a show
from a camera held upright (a second Chromium whose fake camera plays a portrait file) fills a
portrait phone.
Screenshots go to build/screenshots/watch-*.png.
"""

import secrets
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page

from server.settings import Settings
from tests.browser.conftest import serve
from tests.browser.fake_camera import launch_with_camera, publish_camera, write_y4m
from tests.browser.layout import PICTURE_SHARE, tag_sits_at, targets_are_thumb_sized
from tests.browser.test_rewind import DESKTOP, PHONE, publish, watch
from tests.browser.test_story import SHOTS, audit, register
from tests.conftest import Account, Shop, eventually
from tests.socket_client import Viewer

KEYBOARD = {"width": 390, "height": 520}  # a phone with its on-screen keyboard open


async def in_view(page: Page, selector: str) -> None:
    """``selector`` is visible and wholly inside the viewport (nothing to scroll to)."""
    box = await page.locator(selector).bounding_box()
    size = page.viewport_size
    assert box is not None and size is not None, selector
    assert box["y"] >= 0 and box["y"] + box["height"] <= size["height"], (selector, box, size)
    assert box["x"] >= 0 and box["x"] + box["width"] <= size["width"], (selector, box, size)


async def shoot(page: Page, name: str) -> None:
    await audit(page, name)
    await page.screenshot(path=str(SHOTS / f"{name}.png"))


async def sign_in_on_sheet(page: Page, name: str) -> None:
    await page.tap("#account-button")
    await page.wait_for_selector("#account[open] #auth-form")
    await register(page, name)
    await page.wait_for_selector(f"#account-button:text-is('{name}')")
    await page.wait_for_selector("#chat-form:not([hidden])")


@pytest.mark.timeout(240)
async def test_watch_page_on_a_phone_and_a_desktop(
    browser: Browser, settings: Settings, aiohttp_client: Any, database_url: str
) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    client = await serve(settings, aiohttp_client)
    base = settings.resolved_public_url
    shop = Shop(client, database_url)
    async with AsyncExitStack() as stack:
        seller = await shop.account("seller")
        scarf = await shop.product(seller, title="Silk scarf", price_cents=2500, stock=5)
        mug = await shop.product(seller, title="Stoneware mug", price_cents=1250, stock=1)
        sid, _ = await publish(
            shop, stack, seller, title="Autumn scarves", product_ids=[scarf["id"], mug["id"]]
        )
        await _pin(client, seller, sid, scarf["id"])
        tagged = await client.post(
            f"/api/v1/streams/{sid}/products/{scarf['id']}/tag",
            json={"x": 0.25, "y": 0.7, "timestamp": 1},
            headers=seller.auth,
        )
        assert tagged.status == 200, await tagged.text()

        phone = await browser.new_context(viewport=PHONE, has_touch=True, is_mobile=True)  # type: ignore[arg-type]
        page = await watch(phone, f"{base}/watch/{sid}")
        card = f"#pinned .card[data-product-id='{scarf['id']}']"
        await page.wait_for_selector(f"{card} .buy:text-is('Buy now')")
        await page.wait_for_selector(f"#tags .tag[data-product-id='{scarf['id']}']")

        # Muted autoplay says so; one tap gives sound.
        assert await page.evaluate("() => document.getElementById('player').muted")
        await page.wait_for_selector("#unmute:text-is('Tap for sound')")
        await shoot(page, "watch-phone-muted")
        await page.tap("#unmute")
        assert not await page.evaluate("() => document.getElementById('player').muted")
        assert await page.locator("#unmute").is_hidden()
        assert await page.get_attribute("#sound", "aria-pressed") == "true"

        # The landscape picture fills the width; the tag sits where the seller put it.
        player = await page.locator("#player").bounding_box()
        assert player is not None and player["width"] == PHONE["width"]
        await tag_sits_at(page, scarf["id"], (0.25, 0.7))
        await targets_are_thumb_sized(page, "watch phone, signed out")

        # Signing in from Buy buys once signed in; the card keeps "Reserved" when another
        # product is pinned, and the sold-out mug keeps "Sold out".
        await page.tap(f"{card} .buy")
        await page.wait_for_selector("#account[open]")
        await register(page, "Ben")
        await page.wait_for_selector(f"{card}[data-order=reserved] .buy:text-is('Reserved')")
        other = await Viewer().connect(base)
        stack.push_async_callback(other.close)
        await other.call("stream:join", {"stream_id": sid})
        ann = await shop.account(display_name="Ann")
        await _buy(client, ann, sid, mug["id"])
        await _pin(client, seller, sid, mug["id"])
        mug_card = f"#pinned .card[data-product-id='{mug['id']}']"
        await page.wait_for_selector(f"{mug_card} .buy:disabled:text-is('Sold out')")
        assert await page.locator(f"{card} .buy").inner_text() == "Reserved"
        # The seller marks it paid: the buyer's card says so at once.
        orders = await (
            await client.get(f"/api/v1/streams/{sid}/orders", headers=seller.auth)
        ).json()
        ben = next(o for o in orders if o["product_id"] == scarf["id"])
        paid = await client.post(f"/api/v1/orders/{ben['id']}/pay", headers=seller.auth)
        assert paid.status == 200, await paid.text()
        await page.wait_for_selector(f"{card}[data-order=paid] .buy:disabled:text-is('Paid ✓')")
        assert await page.locator("text=Sold out").count() == 1, "sold out said once"

        # Someone buying shows as a moment over the video.
        await _buy(client, ann, sid, scarf["id"])
        await page.wait_for_selector("#moment:text-is('Ann bought Silk scarf')")

        # The host's chat lines carry a badge.
        host = await Viewer().connect(base, token=seller.token)
        stack.push_async_callback(host.close)
        await host.call("stream:join", {"stream_id": sid})
        await host.call("stream:chat", {"stream_id": sid, "text": "Welcome, everyone!"})
        host_line = "#chat li.host:has-text('Welcome') .host-badge:text-is('Host')"
        await page.wait_for_selector(host_line)
        await shoot(page, "watch-phone-live")
        await targets_are_thumb_sized(page, "watch phone, signed in")

        # With the keyboard open, the card, Buy and the chat box are all on screen.
        await page.tap("#chat-form [name=text]")
        await page.set_viewport_size(KEYBOARD)  # type: ignore[arg-type]
        await page.wait_for_timeout(200)
        front = "#pinned .card >> nth=0"  # the newest pin, the mug
        for selector in (front, f"{front} >> .buy", "#chat-form [name=text]", "#chat-form button"):
            await in_view(page, selector)
        await page.screenshot(path=str(SHOTS / "watch-phone-keyboard.png"))
        await page.set_viewport_size(PHONE)  # type: ignore[arg-type]

        # The account sheet shows who is signed in and signs out.
        await page.tap("#account-button")
        await page.wait_for_selector("#account[open] #signed-in:not([hidden]):has-text('Ben')")
        assert await page.locator("#auth-form").is_hidden()
        await shoot(page, "watch-phone-account")
        await page.tap("#sign-out")
        await page.wait_for_selector("#account-button:text-is('Sign in')")
        await page.wait_for_selector("#chat-sign-in:not([hidden])")
        assert await page.locator("#chat-form").is_hidden()

        # A banned viewer keeps nothing to buy or say.
        await sign_in_on_sheet(page, "Cleo")
        cleo = await page.evaluate("() => JSON.parse(localStorage.getItem('shopcast.user')).id")
        ban = await client.put(f"/api/v1/streams/{sid}/sanctions/{cleo}/ban", headers=seller.auth)
        assert ban.status in (200, 204), await ban.text()
        await page.wait_for_selector("body[data-mode=banned]")
        for selector in ("#chat-form", "#pinned", ".composer"):
            assert await page.locator(selector).is_hidden(), selector
        await shoot(page, "watch-phone-banned")

        # Desktop: the video beside the products and chat.
        desktop = await browser.new_context(viewport=DESKTOP)  # type: ignore[arg-type]
        wide = await watch(desktop, f"{base}/watch/{sid}")
        await wide.wait_for_selector(card)
        video_box = await wide.locator("#player").bounding_box()
        panel_box = await wide.locator(".panel").bounding_box()
        assert video_box is not None and panel_box is not None
        assert panel_box["x"] >= video_box["x"] + video_box["width"] - 1, "chat beside the video"
        await tag_sits_at(wide, scarf["id"], (0.25, 0.7))
        await shoot(wide, "watch-desktop-live")

        # An unknown show: a page that says so, with a way home.
        await wide.goto(f"{base}/watch/no-such-show")
        await wide.wait_for_selector("#missing:not([hidden]) a[href='/']")
        await shoot(wide, "watch-desktop-missing")
        lost = await phone.new_page()
        await lost.goto(f"{base}/watch/no-such-show")
        await lost.wait_for_selector("#missing:not([hidden])")
        await shoot(lost, "watch-phone-missing")


@pytest.mark.timeout(180)
async def test_a_portrait_show_fills_a_portrait_phone(
    browser: Browser, settings: Settings, aiohttp_client: Any, database_url: str, tmp_path: Path
) -> None:
    """A seller's phone held upright: a second Chromium whose camera plays a 360x640 file
    publishes over WHIP with the studio's constraints."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    client = await serve(settings, aiohttp_client)
    base = settings.resolved_public_url
    shop = Shop(client, database_url)
    seller = await shop.account("seller")
    sid = (await shop.stream(seller, title="Held upright"))["id"]
    live = await (await client.post(f"/api/v1/streams/{sid}/go-live", headers=seller.auth)).json()
    camera = write_y4m(tmp_path / "portrait.y4m", (360, 640))
    held = await launch_with_camera(browser.browser_type, camera)
    try:
        size = await publish_camera(held, base, live["whip_url"], live["publish_token"])
        assert size == (360, 640), f"the camera is {size}, not the file's 360x640"
        await eventually(lambda: _is_live(client, sid), 20, "the show never turned live")
        phone = await browser.new_context(viewport=PHONE, has_touch=True, is_mobile=True)  # type: ignore[arg-type]
        page = await watch(phone, f"{base}/watch/{sid}")
        await page.wait_for_selector("body[data-shape=portrait]")
        share = await page.evaluate(PICTURE_SHARE, "#player")
        assert share >= 0.9, share
        await shoot(page, "watch-phone-portrait")
        desktop = await browser.new_context(viewport=DESKTOP)  # type: ignore[arg-type]
        wide = await watch(desktop, f"{base}/watch/{sid}")
        assert (
            await wide.evaluate(
                "() => getComputedStyle(document.getElementById('player')).objectFit"
            )
            == "contain"
        ), "nothing cropped on a wide screen"
        player = await wide.locator("#player").bounding_box()
        assert player is not None and player["y"] + player["height"] <= DESKTOP["height"], player
        await shoot(wide, "watch-desktop-portrait")
    finally:
        await held.close()


async def _is_live(client: Any, stream_id: str) -> bool:
    response = await client.get(f"/api/v1/streams/{stream_id}")
    return bool((await response.json())["status"] == "live")


async def _pin(client: Any, seller: Account, stream_id: str, product_id: str) -> None:
    pinned = await client.post(
        f"/api/v1/streams/{stream_id}/pins", json={"product_id": product_id}, headers=seller.auth
    )
    assert pinned.status in (200, 201), await pinned.text()


async def _buy(client: Any, buyer: Account, stream_id: str, product_id: str) -> None:
    bought = await client.post(
        f"/api/v1/streams/{stream_id}/orders",
        json={"product_id": product_id, "quantity": 1},
        headers={**buyer.auth, "Idempotency-Key": secrets.token_hex(8)},
    )
    assert bought.status == 201, await bought.text()
