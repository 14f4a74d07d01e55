"""A planned show's page before it starts, on a phone (390x844, touch) in real Chromium: the
countdown, when and how long, the products to come, and "Remind me" by email (a visitor signs in
on the way; the server then holds the reminder), the calendar file, and the page of the same
show once the seller cancels it. Headless Chromium has no push service, so the push option is
tested against a local one in tests/notifications. Screenshots at phone size and 1440x900 go to
test-artifacts/preshow-*.png.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from icalendar import Calendar
from playwright.async_api import Browser, Page

from api.db import utcnow
from server.settings import Settings
from tests.browser.conftest import ARTIFACTS, serve
from tests.browser.test_story import DESKTOP, PHONE, register
from tests.conftest import Shop
from tests.notifications.test_go_live import rows


async def shoot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"preshow-{name}.png"))


@pytest.mark.timeout(180)
async def test_remind_me_before_the_show_on_a_phone(
    browser: Browser, settings: Settings, aiohttp_client: Any, database_url: str
) -> None:
    client = await serve(settings, aiohttp_client)
    base = settings.resolved_public_url
    shop = Shop(client, database_url)
    seller = await shop.account("seller", display_name="Ana's Pottery")
    mug = await shop.product(seller, title="Speckled mug", price_cents=2400)
    bowl = await shop.product(seller, title="Ramen bowl", price_cents=3800)
    start = (utcnow() + timedelta(hours=3, minutes=10)).replace(microsecond=0)
    stream = await shop.stream(
        seller,
        title="Glaze night",
        scheduled_at=start.isoformat(),
        estimated_duration=45,
        product_ids=[mug["id"], bowl["id"]],
    )

    phone = await browser.new_context(viewport=PHONE, has_touch=True, is_mobile=True)  # type: ignore[arg-type]
    page = await phone.new_page()
    await page.goto(f"{base}/watch/{stream['id']}")
    await page.wait_for_selector("#preshow:not([hidden])")
    clock = await page.inner_text("#preshow-clock")
    assert re.fullmatch(r"3 h (9|10) min", clock), clock
    assert (await page.inner_text("#preshow-when")).endswith("about 45 min")
    await page.wait_for_selector("#coming:not([hidden]) .coming-card >> nth=1")
    names = await page.locator(".coming-name").all_inner_texts()
    assert names == ["Speckled mug", "Ramen bowl"]
    assert await page.locator("#reactions").is_hidden(), "nothing to react to yet"
    await shoot(page, "phone-visitor")

    await page.tap("#remind")
    await page.wait_for_selector("#remind-sheet[open]")
    calendar = await page.get_attribute("#remind-calendar", "href")
    assert calendar == f"/api/v1/streams/{stream['id']}/calendar.ics"
    ics = await page.request.get(f"{base}{calendar}")
    event = Calendar.from_ical(await ics.body()).walk("VEVENT")[0]
    assert event.decoded("dtstart") == start
    await shoot(page, "phone-sheet")
    await page.tap("#remind-email")
    await page.wait_for_selector("#account[open] #auth-form")
    await register(page, "Ben")
    await page.wait_for_selector("#remind[aria-pressed=true]:text-is('✓ Reminder set')")
    assert await page.inner_text("#remind-status") == "You'll get an email 15 minutes before."
    held = await rows(database_url, "SELECT push, email FROM show_reminders")
    assert [(bool(push), bool(email)) for push, email in held] == [(False, True)]
    await shoot(page, "phone-reminded")

    # A reload remembers it; No reminder forgets it.
    await page.reload()
    await page.wait_for_selector("#remind[aria-pressed=true]")
    await page.tap("#remind")
    await page.tap("#remind-off")
    await page.wait_for_selector("#remind[aria-pressed=false]:text-is('🔔 Remind me')")
    assert await rows(database_url, "SELECT count(*) FROM show_reminders") == [(0,)]

    desktop = await browser.new_context(viewport=DESKTOP)  # type: ignore[arg-type]
    wide = await desktop.new_page()
    await wide.goto(f"{base}/watch/{stream['id']}")
    await wide.wait_for_selector("#coming:not([hidden]) .coming-card")
    await shoot(wide, "desktop")

    # The seller calls it off: the open page says so.
    cancelled = await client.post(f"/api/v1/streams/{stream['id']}/cancel", headers=seller.auth)
    assert cancelled.status == 200, await cancelled.text()
    await page.wait_for_selector("#preshow-kicker:text-is('Cancelled')")
    assert await page.inner_text("#state") == "Cancelled"
    link = page.locator("#preshow-when a")
    assert await link.get_attribute("href") == f"/s/{stream['owner']['handle']}"
    assert await page.locator("#remind").is_hidden()
    await shoot(page, "phone-cancelled")
    await desktop.close()
    await phone.close()


@pytest.mark.timeout(180)
async def test_a_seller_plans_moves_and_cancels_a_show_from_the_studio(
    browser: Browser, settings: Settings, aiohttp_client: Any, database_url: str
) -> None:
    client = await serve(settings, aiohttp_client)
    base = settings.resolved_public_url
    shop = Shop(client, database_url)
    seller = await shop.account("seller")
    phone = await browser.new_context(viewport=PHONE, has_touch=True, is_mobile=True)  # type: ignore[arg-type]
    studio = await phone.new_page()
    await studio.goto(f"{base}/studio")
    await studio.fill("#auth-form [name=email]", seller.email)
    await studio.fill("#auth-form [name=password]", seller.password)
    await studio.click("#auth-form button[value=login]")
    await studio.fill("#details [name=title]", "Sunday kiln opening")
    await studio.fill("#details [name=scheduled_at]", "2031-05-04T18:30")
    await studio.click("#details button[type=submit]")
    await studio.click("#to-settings")
    await studio.click("dialog.confirm button.danger")
    await studio.tap("#save-later")
    await studio.wait_for_selector("#planned:not([hidden]) .planned-show")
    assert "is planned" in await studio.inner_text("#planned-status")
    (planned,) = await (
        await client.get("/api/v1/streams?mine=true&section=upcoming", headers=seller.auth)
    ).json()
    assert planned["title"] == "Sunday kiln opening" and planned["status"] == "created"
    assert await studio.locator("#step-4").is_hidden(), "saved without the camera"
    await shoot(studio, "studio-planned")

    await studio.tap(".planned-show button:text-is('Move')")
    await studio.fill(".planned-show [name=scheduled_at]", "2031-05-05T19:00")
    await studio.tap(".planned-show button:text-is('Save the new time')")
    await studio.wait_for_selector("#planned-status:has-text('moved')")
    moved = await (await client.get(f"/api/v1/streams/{planned['id']}")).json()
    assert moved["scheduled_at"] != planned["scheduled_at"]
    await shoot(studio, "studio-moved")

    await studio.tap(".planned-show button:text-is('Cancel show')")
    await studio.tap("dialog.confirm button.danger")
    await studio.wait_for_selector("#planned[hidden]", state="attached")
    gone = await (await client.get(f"/api/v1/streams/{planned['id']}")).json()
    assert gone["status"] == "cancelled"
    await phone.close()
