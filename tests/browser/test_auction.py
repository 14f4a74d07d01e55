"""An auction in real Chromium: the seller goes live from the studio and auctions a pinned
product; two phone viewers (390x844, touch), one on WebRTC and one on HLS, bid; a bid in the
soft close moves the end; the winner sees their order.

Screenshots of the studio and both viewers, at phone size and 1440x900, go to test-artifacts/.
"""

from typing import Any

import pytest
from playwright.async_api import Browser, Page

from api.commerce.models import Bid
from server.settings import Settings
from tests.browser.conftest import ARTIFACTS, serve
from tests.browser.test_story import DESKTOP, PHONE, WAIT, register
from tests.conftest import Shop, eventually

SECONDS_LEFT = """() => {
  const text = document.querySelector('#auction .auction-clock')?.textContent ?? '';
  const match = text.match(/^(\\d+):(\\d\\d)/);
  return match ? Number(match[1]) * 60 + Number(match[2]) : null;
}"""


async def shoot(page: Page, name: str) -> None:
    """The page at phone size and at 1440x900, then back to phone size."""
    ARTIFACTS.mkdir(exist_ok=True)
    for label, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
        await page.set_viewport_size(viewport)  # type: ignore[arg-type]
        await page.wait_for_timeout(150)
        await page.screenshot(path=str(ARTIFACTS / f"auction-{name}-{label}.png"))
    await page.set_viewport_size(PHONE)  # type: ignore[arg-type]


async def go_live(studio: Page, base: str) -> str:
    """The seller registers in the studio, makes a product, goes live: the stream id."""
    await studio.goto(f"{base}/studio")
    await register(studio, "Maya")
    await studio.wait_for_selector("#step-1:not([hidden])")
    await studio.fill("#details [name=title]", "Vintage cards")
    await studio.click("#details button[type=submit]")
    await studio.wait_for_selector("#step-2:not([hidden])")
    await studio.click("#new-product summary")
    await studio.fill("#product-form [name=title]", "1998 holo card")
    await studio.fill("#product-form [name=price]", "40")
    await studio.fill("#product-form [name=stock]", "1")
    await studio.click("#product-form button[type=submit]")
    await studio.wait_for_selector("#catalogue li:has-text('1998 holo card') input:checked")
    await studio.click("#to-settings")
    await studio.wait_for_selector("#step-3:not([hidden])")
    await studio.click("#settings button[type=submit]")
    await studio.wait_for_selector("#step-4:not([hidden])")
    await studio.wait_for_function("() => document.getElementById('preview').readyState >= 2")
    await studio.click("#go-live")
    await studio.wait_for_selector("#step-5:not([hidden])", timeout=WAIT)
    await studio.wait_for_selector("body[data-connection=connected]", timeout=WAIT)
    return str(await studio.get_attribute("body", "data-stream-id"))


async def viewer(browser: Browser, url: str, name: str, mode: str) -> Page:
    phone = await browser.new_context(viewport=PHONE, has_touch=True, is_mobile=True)  # type: ignore[arg-type]
    page = await phone.new_page()
    await page.goto(url)
    await page.wait_for_selector(f"body[data-mode={mode}]", timeout=WAIT)
    await page.tap("#account-button")
    await register(page, name)
    await page.wait_for_selector("#chat-form:not([hidden])", timeout=WAIT)
    return page


@pytest.mark.timeout(240)
async def test_an_auction_from_the_studio_to_the_winners_order(
    browser: Browser, settings: Settings, aiohttp_client: Any, database_url: str
) -> None:
    client = await serve(settings, aiohttp_client)
    base = settings.resolved_public_url
    studio = await (await browser.new_context(viewport=PHONE)).new_page()  # type: ignore[arg-type]
    sid = await go_live(studio, base)

    async def hls_ready() -> bool:
        response = await client.get(f"/hls/{sid}/index.m3u8")
        return response.status == 200 and (await response.text()).count("#EXTINF") >= 2

    await eventually(hls_ready, 30, "no live HLS segments")
    ann = await viewer(browser, f"{base}/watch/{sid}", "Ann", "webrtc")
    ben = await viewer(browser, f"{base}/watch/{sid}?hls", "Ben", "hls")

    card = "#live-products .card:has-text('1998 holo card')"
    await studio.click(f"{card} button:text-is('Pin')")
    await studio.click(f"{card} button:text-is('Auction')", timeout=WAIT)
    await studio.fill("#auction-form [name=start]", "10.00")
    await studio.fill("#auction-form [name=increment]", "1.00")
    await studio.fill("#auction-form [name=duration]", "20")
    await studio.fill("#auction-form [name=soft]", "10")
    await studio.click("#auction-form button[type=submit]")
    await studio.wait_for_selector(f"{card} .auction-line:has-text('Auction')", timeout=WAIT)

    for page in (ann, ben):
        await page.wait_for_selector(
            "#auction:not([hidden]) .bid:has-text('Bid $10.00')", timeout=WAIT
        )
    await ann.tap("#auction .bid")
    await ann.wait_for_selector("#auction .result:has-text('high bidder')", timeout=WAIT)
    await ben.wait_for_selector("#auction .auction-high:has-text('$10.00 · Ann')", timeout=WAIT)
    await shoot(ann, "webrtc-high-bidder")
    await shoot(studio, "studio")

    # In the last seconds Ben, on HLS, bids as "a bidder": the end moves for everyone.
    await ben.wait_for_function(f"() => ({SECONDS_LEFT})() !== null && ({SECONDS_LEFT})() <= 5")
    await ben.check("#auction [name=anonymous]")
    await ben.tap("#auction .bid")
    await ben.wait_for_selector("#auction .result:has-text('high bidder')", timeout=WAIT)
    for page in (ann, ben):
        await page.wait_for_selector("#auction[data-extended=yes]", timeout=WAIT)
        await page.wait_for_selector("#auction .auction-high:has-text('$11.00 · a bidder')")
    assert (await ann.evaluate(SECONDS_LEFT) or 0) > 5, "the countdown did not move"
    await shoot(ben, "hls-extended")
    auctions = await (await client.get(f"/api/v1/streams/{sid}/auctions")).json()
    assert auctions[0]["extensions"] >= 1 and auctions[0]["high_cents"] == 1100
    # Ben's bid counted at his moment: the HLS parts the node served him put him behind live.
    bids = sorted((await Shop(client, database_url).snapshot())["bids"], key=lambda row: row[0])
    delay_ms = Bid.__table__.columns.keys().index("delay_ms")
    assert bids[-1][delay_ms] > 0, bids

    # The hammer: Ben won; his card says his order is reserved, Ann's says it was sold.
    await ben.wait_for_selector("#auction .result:has-text('You won at $11.00')", timeout=40_000)
    await ben.wait_for_selector("#pinned .card .buy:has-text('Reserved')", timeout=WAIT)
    await ann.wait_for_selector("#auction .auction-clock:has-text('Sold')", timeout=WAIT)
    await shoot(ben, "hls-won")
    await studio.wait_for_selector(f"{card} .auction-line:has-text('sold')", timeout=WAIT)
    closed = (await (await client.get(f"/api/v1/streams/{sid}/auctions")).json())[0]
    assert closed["state"] == "sold" and closed["order_id"]
