"""Follow from the watch page on a phone (390x844, touch) in real Chromium, and "Notify me".

A visitor taps Follow, signs in on the sheet and is then following (the count says so); the bell
registers static/sw.js and asks for a push subscription. Headless Chromium has no push service
to subscribe with (``pushManager.subscribe`` rejects: no GCM/FCM here), so the test checks the
button's flow up to there: the permission, the service worker registered and active at
/static/sw.js, and the page saying why it could not subscribe; if a Chromium ever does
subscribe, the server must then hold the device. The delivery of a push itself is tested
against a local push service in tests/notifications. A followers-only show refused to a
signed-in stranger offers Follow, and following opens the show. Screenshots at phone size and
1440x900 go to test-artifacts/follow-*.png.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Browser, Page

from server.settings import Settings
from tests.browser.conftest import ARTIFACTS, serve
from tests.browser.test_story import DESKTOP, PHONE, register
from tests.conftest import Shop, eventually

WORKER = """async () => {
  const registration = await navigator.serviceWorker.getRegistration("/static/sw.js");
  return registration?.active?.scriptURL ?? null;
}"""


async def shoot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"follow-{name}.png"))


@pytest.mark.timeout(180)
async def test_follow_and_notify_me_from_the_watch_page_on_a_phone(
    browser: Browser, settings: Settings, aiohttp_client: Any, database_url: str
) -> None:
    client = await serve(settings, aiohttp_client)
    base = settings.resolved_public_url
    shop = Shop(client, database_url)
    seller = await shop.account("seller", display_name="Ana's Pottery")
    stream = await shop.stream(seller, title="Glazes, live")
    members = await shop.account("seller", display_name="Members Club")
    private = await shop.stream(members, title="Members only", audience="followers")

    phone = await browser.new_context(viewport=PHONE, has_touch=True, is_mobile=True)  # type: ignore[arg-type]
    await phone.grant_permissions(["notifications"], origin=base)
    page = await phone.new_page()
    await page.goto(f"{base}/watch/{stream['id']}")
    await page.wait_for_selector('#seller:not([hidden]) #seller-name:text-is("Ana\'s Pottery")')
    await page.wait_for_selector("#followers:text-is('0 followers')")
    assert await page.locator("#notify").is_hidden(), "the bell comes with following"
    await shoot(page, "phone-visitor")

    # Follow asks a visitor to sign in, then follows.
    await page.tap("#follow")
    await page.wait_for_selector("#account[open] #auth-form")
    await register(page, "Ben")
    await page.wait_for_selector("#follow[aria-pressed=true]:text-is('Following')")
    await page.wait_for_selector("#followers:text-is('1 follower')")
    profile = await (await client.get(f"/api/v1/users/{seller.id}")).json()
    assert profile["followers"] == 1

    # Notify me: the service worker is registered and the subscription asked for.
    await page.wait_for_selector("#notify:not([hidden])")
    assert await page.get_attribute("#notify", "aria-label") == (
        "Notify me when Ana's Pottery goes live"
    )
    await page.tap("#notify")
    await page.wait_for_selector("#follow-status:not(:empty)")
    said = await page.inner_text("#follow-status")
    scope = await eventually(lambda: page.evaluate(WORKER), 10, "static/sw.js is not active")
    assert scope == f"{base}/static/sw.js"
    ben = await (await client.get("/api/v1/me", headers=await _token(page))).json()
    devices = await (
        await client.get("/api/v1/me/notifications", headers=await _token(page))
    ).json()
    if said.startswith("You'll get a notification"):
        assert devices["devices"] == 1, f"{ben['id']} subscribed but the server has no device"
    else:
        assert said.startswith("This browser could not subscribe"), said
        assert devices["devices"] == 0
    await shoot(page, "phone-following")

    # A followers-only show: a signed-in stranger is offered Follow; following opens it.
    await page.goto(f"{base}/watch/{private['id']}")
    await page.wait_for_selector("#status:has-text('follow them to watch')")
    await page.wait_for_selector("#seller-name:text-is('Members Club')")
    await shoot(page, "phone-followers-only")
    await page.tap("#follow")
    await page.wait_for_selector("#title:text-is('Members only')")
    await page.wait_for_selector("#follow[aria-pressed=true]")
    await shoot(page, "phone-followers-only-followed")

    desktop = await browser.new_context(viewport=DESKTOP)  # type: ignore[arg-type]
    wide = await desktop.new_page()
    await wide.goto(f"{base}/watch/{stream['id']}")
    await wide.wait_for_selector("#followers:text-is('1 follower')")
    await shoot(wide, "desktop")
    await desktop.close()
    await phone.close()


async def _token(page: Page) -> dict[str, str]:
    token = await page.evaluate("() => localStorage.getItem('shopcast.token')")
    return {"Authorization": f"Bearer {token}"}
