"""The buyer's side of checkout in real Chromium: on a phone (390x844, touch) a buyer of a
pay-later seller's show taps Buy, the card counts the hold down and asks for the delivery
details once, on a bottom sheet that says what is wrong inline; My orders lists the order with
its address and turns it Paid live when the seller marks it paid, and says a Stripe payment is
being confirmed until it is; at 1440x900 a signed-out visitor is asked to sign in first. A
Stripe seller's card asks for the address before Pay and opens the payment page in a new tab
while the show plays on; a shop seller's card links to the product on the shop with the order.
Screenshots: build/screenshots/orders-*.png.
"""

import re
from contextlib import AsyncExitStack
from typing import Any

import pytest
from playwright.async_api import Browser, Page
from pydantic import SecretStr

from server.settings import Settings
from tests.browser.conftest import serve
from tests.browser.layout import targets_are_thumb_sized
from tests.browser.test_rewind import DESKTOP, FRAMES, PHONE, publish, video_plays, watch
from tests.browser.test_story import PASSWORD, SHOTS, audit, register
from tests.browser.test_watch_phone import _pin
from tests.conftest import Account, Shop, eventually
from tests.stripe_api import StripeStandIn

ADDRESS = {
    "name": "Ann Lee",
    "phone": "+49 30 1234567",
    "line1": "Oranienstr. 25",
    "postal_code": "10999",
    "city": "Berlin",
}
AUTOCOMPLETE = {
    "name": "name",
    "phone": "tel",
    "line1": "address-line1",
    "line2": "address-line2",
    "postal_code": "postal-code",
    "city": "address-level2",
    "region": "address-level1",
    "country": "country",
}
HOLD = re.compile(r"Held for (10:00|9:[0-5]\d)")


async def shoot(page: Page, name: str) -> None:
    await audit(page, name)
    await page.screenshot(path=str(SHOTS / f"{name}.png"))


async def token_of(page: Page) -> dict[str, str]:
    token = await page.evaluate("() => localStorage.getItem('shopcast.token')")
    return {"Authorization": f"Bearer {token}"}


async def the_sheet_asks_well(page: Page) -> None:
    """A bottom sheet with labelled fields that browsers can fill, thumb-sized, errors inline."""
    sheet = await page.locator("#delivery").bounding_box()
    size = page.viewport_size
    assert sheet is not None and size is not None
    assert abs(sheet["y"] + sheet["height"] - size["height"]) <= 1, "at the bottom of the screen"
    for name, token in AUTOCOMPLETE.items():
        field = page.locator(f"#delivery [name={name}]")
        assert await field.get_attribute("autocomplete") == token, name
        label = await page.locator(f"#delivery label[for=delivery-{name}]").inner_text()
        assert label, name
    assert await page.get_attribute("#delivery [name=phone]", "type") == "tel"
    await targets_are_thumb_sized(page, "the delivery sheet")
    # Nothing filled: each required field says so under itself, and nothing is saved.
    await page.tap("#delivery button[type=submit]")
    await page.wait_for_selector("#delivery-name-error:text-is('Enter the name to deliver to')")
    await page.wait_for_selector("#delivery-line1-error:text-is('Enter the street and number')")
    assert await page.get_attribute("#delivery [name=name]", "aria-invalid") is not None
    assert await page.evaluate("() => document.activeElement.name") == "name"
    await page.fill("#delivery [name=phone]", "call me")
    await page.tap("#delivery button[type=submit]")
    await page.wait_for_selector("#delivery-phone-error:has-text('Enter a phone number')")
    await shoot(page, "orders-delivery-errors-phone")


async def fill_the_sheet(page: Page, country: str = "DE") -> None:
    for name, value in ADDRESS.items():
        await page.fill(f"#delivery [name={name}]", value)
    await page.select_option("#delivery [name=country]", country)
    await page.tap("#delivery button[type=submit]")
    await page.wait_for_selector("#delivery", state="hidden")


async def pay(client: Any, seller: Account, order_id: str) -> None:
    paid = await client.post(f"/api/v1/orders/{order_id}/pay", headers=seller.auth)
    assert paid.status == 200, await paid.text()


@pytest.mark.timeout(240)
async def test_a_phone_buyer_reserves_gives_the_address_once_and_follows_the_order(
    browser: Browser, settings: Settings, aiohttp_client: Any, database_url: str
) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    client = await serve(settings, aiohttp_client)
    base = settings.resolved_public_url
    shop = Shop(client, database_url)
    async with AsyncExitStack() as stack:
        seller = await shop.account("seller", display_name="Maya")  # pay later: the default
        photo = [f"{base}/static/icon.svg"]
        scarf = await shop.product(
            seller, title="Silk scarf", price_cents=800, stock=5, image_urls=photo
        )
        sid, _ = await publish(
            shop, stack, seller, title="Autumn scarves", product_ids=[scarf["id"]]
        )
        await _pin(client, seller, sid, scarf["id"])
        phone = await browser.new_context(viewport=PHONE, has_touch=True, is_mobile=True)  # type: ignore[arg-type]
        stack.push_async_callback(phone.close)
        page = await watch(phone, f"{base}/watch/{sid}")
        card = f"#pinned .card[data-product-id='{scarf['id']}']"

        # Buy, signing in on the way: the card holds it, counts down and asks where it goes.
        await page.tap(f"{card} .buy")
        await page.wait_for_selector("#account[open]")
        await register(page, "Ann")
        await page.wait_for_selector(f"{card}[data-order=reserved] .buy:text-is('Reserved')")
        assert HOLD.fullmatch(await page.inner_text(f"{card} .hold-line"))
        result = await page.inner_text(f"{card} .result")
        assert result == "Reserved: $8.00. The seller will send you an invoice.", result
        await page.wait_for_selector(f"{card} .address:text-is('Add delivery details')")
        await shoot(page, "orders-watch-reserved-phone")
        await targets_are_thumb_sized(page, "the watch page with a reserved order")

        await page.tap(f"{card} .address")
        await page.wait_for_selector("#delivery[open]")
        await the_sheet_asks_well(page)
        await fill_the_sheet(page)
        await page.wait_for_selector(f"{card} .address", state="detached")
        await page.wait_for_selector(f"{card} .hold-line")  # still counting
        await eventually(lambda: video_plays(page, FRAMES), 10, "the show stopped")
        auth = await token_of(page)
        mine = await (await client.get("/api/v1/me/orders", headers=auth)).json()
        assert [o["delivery"]["line1"] for o in mine] == ["Oranienstr. 25"]
        # Asked once: the account keeps it, and the account sheet shows it with My orders.
        await page.tap("#account-button")
        await page.wait_for_selector("#account[open] #delivery-summary:has-text('Oranienstr. 25')")
        assert await page.get_attribute("#my-orders", "href") == "/orders"
        await shoot(page, "orders-watch-account-phone")
        await page.tap("#account-close")

        # My orders: the order with its photo, show, price, status, hold and address.
        orders = await phone.new_page()
        await orders.goto(f"{base}/orders")
        row = f"#order-{mine[0]['id']}"
        await orders.wait_for_selector(f"{row}[data-status=reserved] .pill:text-is('Reserved')")
        text = await orders.inner_text(row)
        for part in ("Silk scarf", "Autumn scarves", "by Maya", "$8.00", "Ships to Ann Lee"):
            assert part in text, (part, text)
        assert await orders.get_attribute(f"{row} img.thumb", "src") == photo[0]
        assert await orders.inner_text(f"{row} .result") == "The seller will send you an invoice."
        assert HOLD.fullmatch(await orders.inner_text(f"{row} .hold-line"))
        await shoot(orders, "orders-phone-reserved")
        await targets_are_thumb_sized(orders, "my orders, phone")

        # The seller marks it paid: both pages say so at once.
        await pay(client, seller, mine[0]["id"])
        await orders.wait_for_selector(f"{row}[data-status=paid] .pill:text-is('Paid ✓')")
        assert await orders.locator(f"{row} .hold-line").count() == 0
        await page.wait_for_selector(f"{card}[data-order=paid] .buy:disabled:text-is('Paid ✓')")
        await shoot(orders, "orders-phone-paid")

        # A second order, as Stripe Checkout would be paying for it: copied the address.
        second = await client.post(
            f"/api/v1/streams/{sid}/orders",
            json={"product_id": scarf["id"]},
            headers={**auth, "Idempotency-Key": "second-scarf-0001"},
        )
        assert second.status == 201, await second.text()
        order = await second.json()
        assert order["delivery"]["city"] == "Berlin", "copied at purchase"
        await shop.execute(
            "UPDATE orders SET checkout_session_id = 'cs_test_1' WHERE id = :id", id=order["id"]
        )

        # A wide screen, signed out: asked to sign in, then the same orders; its watch page
        # finds the reserved one on the card again.
        desktop = await browser.new_context(viewport=DESKTOP)  # type: ignore[arg-type]
        stack.push_async_callback(desktop.close)
        wide = await desktop.new_page()
        await wide.goto(f"{base}/orders")
        await wide.wait_for_selector(
            "#sign-in:not([hidden]) h2:text-is('Sign in to see your orders')"
        )
        assert await wide.locator("#mine").is_hidden()
        await shoot(wide, "orders-desktop-signed-out")
        await wide.fill("#auth-form [name=email]", "ann@example.com")
        await wide.fill("#auth-form [name=password]", PASSWORD)
        await wide.click("#auth-form button[value=login]")
        await wide.wait_for_selector(f"#order-{order['id']}[data-status=reserved]")
        assert await wide.locator("#orders > li").count() == 2
        show = await watch(desktop, f"{base}/watch/{sid}")
        await show.wait_for_selector(f"{card}[data-order=reserved] .hold-line")
        assert await show.locator(f"{card} .address").count() == 0, "it has the address"
        await shoot(show, "orders-watch-desktop")

        # Back from Stripe Checkout: "confirming" until its order is paid, on every page.
        await orders.goto(f"{base}/orders?checkout=cs_test_1")
        await orders.wait_for_selector("#checkout-banner:text-is('Payment received — confirming…')")
        await shoot(orders, "orders-phone-confirming")
        await pay(client, seller, order["id"])
        await orders.wait_for_selector(
            "#checkout-banner[data-kind=ok]:text-is('Payment confirmed: your order is paid ✓')"
        )
        assert await orders.evaluate("() => location.search") == ""
        await wide.wait_for_selector(f"#order-{order['id']}[data-status=paid]")
        await show.wait_for_selector(f"{card}[data-order=paid] .buy:text-is('Paid ✓')")
        await shoot(wide, "orders-desktop")


@pytest.mark.timeout(240)
async def test_stripe_asks_for_the_address_first_and_pays_in_a_new_tab(
    browser: Browser, settings: Settings, aiohttp_client: Any, database_url: str
) -> None:
    """Stripe is the local stand-in (tests/stripe_api.py): its hosted page's Pay completes the
    session, sends the signed event to our webhook and returns to the success URL."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    async with StripeStandIn() as stripe_api, AsyncExitStack() as stack:
        settings = settings.model_copy(
            update={
                "stripe_api_base": stripe_api.url,
                "stripe_secret_key": SecretStr(stripe_api.api_key),
                "stripe_webhook_secret": SecretStr(stripe_api.webhook_secret),
            }
        )
        client = await serve(settings, aiohttp_client)
        base = settings.resolved_public_url
        stripe_api.webhook_url = f"{base}/api/v1/stripe/webhook"
        shop = Shop(client, database_url)
        seller = await shop.account("seller", display_name="Maya")
        await choose(client, seller, "stripe")
        scarf = await shop.product(seller, title="Silk scarf", price_cents=800, stock=5)
        sid, _ = await publish(
            shop, stack, seller, title="Autumn scarves", product_ids=[scarf["id"]]
        )
        await _pin(client, seller, sid, scarf["id"])
        phone = await browser.new_context(viewport=PHONE, has_touch=True, is_mobile=True)  # type: ignore[arg-type]
        stack.push_async_callback(phone.close)
        page = await watch(phone, f"{base}/watch/{sid}")
        card = f"#pinned .card[data-product-id='{scarf['id']}']"
        await page.tap(f"{card} .buy")
        await page.wait_for_selector("#account[open]")
        await register(page, "Ben")
        await page.wait_for_selector(f"{card}[data-order=reserved] .pay:text-is('Pay $8.00')")
        assert await page.locator(f"{card} .buy").is_hidden(), "Pay takes Buy's place"
        assert await page.locator(f"{card} .address").count() == 0, "Pay asks, not the card"
        await shoot(page, "orders-watch-stripe-phone")
        await page.tap(f"{card} .pay")
        await page.wait_for_selector("#delivery[open]")
        assert not stripe_api.calls("POST", "/v1/checkout/sessions"), (
            "no session before the address"
        )
        async with phone.expect_page() as opened:
            await fill_the_sheet(page)
        checkout = await opened.value
        await checkout.wait_for_url(f"{stripe_api.url}/c/pay/**")
        assert await checkout.evaluate("() => window.opener") is None
        await checkout.wait_for_selector("text=Pay 8.00 USD")
        # The hold stays the show's 10 minutes, though Stripe's session lasts 31.
        await page.wait_for_selector(
            f"{card} .result:has-text('Pay in the new tab: this page says Paid once it is.')"
        )
        line = await page.inner_text(f"{card} .hold-line")
        assert HOLD.fullmatch(line), line
        await eventually(lambda: video_plays(page, FRAMES), 10, "the show stopped")

        # Paying on Stripe's page returns to My orders, which confirms; the card says Paid.
        await checkout.click("button:text-is('Pay')")
        await checkout.wait_for_url(f"{base}/orders?checkout=cs_*")
        await checkout.wait_for_selector(
            "#checkout-banner[data-kind=ok]:text-is('Payment confirmed: your order is paid ✓')"
        )
        await page.wait_for_selector(f"{card}[data-order=paid] .buy:text-is('Paid ✓')")
        await shoot(checkout, "orders-phone-stripe-paid")
        paid = (await (await client.get("/api/v1/me/orders", headers=await token_of(page))).json())[
            0
        ]
        assert (paid["status"], paid["payment_method"]) == ("paid", "stripe")

        # A seller who sells through their own shop: Pay on the shop, naming the order.
        await choose(client, seller, "shop")
        await shop.execute(
            "UPDATE products SET checkout_url = 'https://shop.example/scarf?size=m' WHERE id = :id",
            id=scarf["id"],
        )
        await page.close()
        mine = checkout
        auth = await token_of(mine)
        again = await client.post(
            f"/api/v1/streams/{sid}/orders",
            json={"product_id": scarf["id"]},
            headers={**auth, "Idempotency-Key": "second-scarf-0002"},
        )
        assert again.status == 201, await again.text()
        second = (await again.json())["id"]
        row = f"#order-{second}"
        link = await mine.wait_for_selector(f"{row} a.pay:text-is('Pay on the shop')")  # live
        assert link is not None
        href = await link.get_attribute("href")
        assert href == f"https://shop.example/scarf?size=m&shopcast_order={second}", href
        assert await link.get_attribute("target") == "_blank"
        await shoot(mine, "orders-phone-shop")

        # The first shipped with a tracking link; the second paid, then cancelled: refunded.
        await pay(client, seller, second)
        cancel = await client.post(f"/api/v1/orders/{second}/cancel", headers=seller.auth)
        assert cancel.status == 200, await cancel.text()
        await mine.wait_for_selector(
            f"{row}[data-status=cancelled] .pill:text-is('Cancelled · refunded')"
        )
        # The seller sees who paid and where it goes (the studio's sheet is the fulfilment
        # test's), and ships it: the buyer's page turns Shipped as it happens.
        listed = await client.get(f"/api/v1/streams/{sid}/orders", headers=seller.auth)
        row_of_paid = next(o for o in await listed.json() if o["id"] == paid["id"])
        assert row_of_paid["buyer"]["display_name"] == "Ben"
        assert row_of_paid["delivery"]["city"] == paid["delivery"]["city"]
        sent = await client.post(
            f"/api/v1/orders/{paid['id']}/ship",
            json={"tracking_url": "https://track.example/parcel/1"},
            headers=seller.auth,
        )
        assert sent.status == 200, await sent.text()
        shipped = f"#order-{paid['id']}[data-status=shipped]"
        track = await mine.wait_for_selector(f"{shipped} a.track:text-is('Track')")
        assert track is not None
        assert await track.get_attribute("href") == "https://track.example/parcel/1"
        await targets_are_thumb_sized(mine, "my orders, shipped and refunded")
        await shoot(mine, "orders-phone-shipped")


async def choose(client: Any, seller: Account, checkout: str) -> None:
    chosen = await client.put(
        "/api/v1/me/checkout", json={"checkout": checkout}, headers=seller.auth
    )
    assert chosen.status == 200, await chosen.text()
