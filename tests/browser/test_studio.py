"""The studio on its own: steps back and forth, a followers-only show, ending it from the studio."""

from typing import Any

from playwright.async_api import Browser

from server.settings import Settings
from tests.browser.conftest import serve
from tests.browser.test_story import DESKTOP, PHONE, WAIT, context, register
from tests.conftest import Shop


async def test_seller_ends_a_followers_only_show_from_the_studio(
    browser: Browser, settings: Settings, aiohttp_client: Any, database_url: str
) -> None:
    client = await serve(settings, aiohttp_client)
    base = settings.resolved_public_url
    seller = await Shop(client, database_url).account("seller")
    studio = await (await context(browser, PHONE)).new_page()
    await studio.goto(f"{base}/studio")
    await studio.fill("#auth-form [name=email]", seller.email)
    await studio.fill("#auth-form [name=password]", seller.password)
    await studio.click("#auth-form button[value=login]")
    await studio.fill("#details [name=title]", "For my followers")
    await studio.select_option("#details [name=audience]", "followers")
    await studio.click("#details button[type=submit]")
    await studio.wait_for_selector("#catalogue li:has-text('No products yet')")
    await studio.click("#step-2 [data-back='1']")
    assert await studio.input_value("#details [name=title]") == "For my followers"
    await studio.click("#details button[type=submit]")
    await studio.click("#to-settings")
    await studio.uncheck("#settings [name=record_stream]")
    await studio.click("#settings button[type=submit]")
    await studio.wait_for_selector("#step-4:not([hidden])")
    sid = str(await studio.get_attribute("body", "data-stream-id"))
    stream = await (await client.get(f"/api/v1/streams/{sid}", headers=seller.auth)).json()
    assert stream["audience"] == "followers" and stream["record_stream"] is False

    # An anonymous visitor is told to sign in; a viewer who does not follow is told why.
    visitor = await (await context(browser, DESKTOP)).new_page()
    await visitor.goto(f"{base}/watch/{sid}")
    await visitor.wait_for_selector("#status:has-text('followers')")
    assert await visitor.get_attribute("#account", "open") is not None
    await register(visitor, "Stranger")
    await visitor.wait_for_selector("#account-button:text-is('Stranger')")
    await visitor.reload()
    await visitor.wait_for_selector("#status:has-text('followers')")

    await studio.wait_for_function("() => document.getElementById('preview').readyState >= 2")
    await studio.click("#go-live")
    await studio.wait_for_selector("#step-5:not([hidden])", timeout=WAIT)
    await studio.wait_for_selector("body[data-connection=connected]", timeout=WAIT)
    # End show asks first: Cancel keeps the show on, End show ends it.
    await studio.click("#end")
    await studio.click("dialog.confirm button:text-is('Cancel')")
    await studio.wait_for_selector("dialog.confirm", state="detached")
    live = await (await client.get(f"/api/v1/streams/{sid}", headers=seller.auth)).json()
    assert live["status"] == "live"
    await studio.click("#end")
    await studio.click("dialog.confirm button:text-is('End show')")
    await studio.wait_for_selector("#summary:not([hidden])", timeout=WAIT)
    assert "Duration" in await studio.inner_text("#summary-figures")
    stream = await (await client.get(f"/api/v1/streams/{sid}", headers=seller.auth)).json()
    assert stream["status"] == "ended"
