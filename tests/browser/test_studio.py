"""The studio on its own: steps back and forth, a followers-only show, ending it from the studio,
and the catalogue: a product with a photo uploaded through the presigned form, edited, deleted."""

import struct
import zlib
from pathlib import Path
from typing import Any

from playwright.async_api import Browser

from server.settings import Settings
from tests.browser.conftest import serve
from tests.browser.test_story import DESKTOP, PHONE, SHOTS, WAIT, audit, context, register
from tests.conftest import Shop


def png(width: int, height: int) -> bytes:
    """A real (decodable) PNG of one colour."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\xc0\x30\x60" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


async def test_catalogue_photo_upload_edit_and_delete(
    browser: Browser, settings: Settings, aiohttp_client: Any, database_url: str, tmp_path: Path
) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    settings.media_worker = False
    client = await serve(settings, aiohttp_client)
    base = settings.resolved_public_url
    studio = await (await context(browser, PHONE)).new_page()
    await studio.goto(f"{base}/studio")
    await register(studio, "Maya")
    await studio.fill("#details [name=title]", "Catalogue day")
    await studio.click("#details button[type=submit]")
    await studio.wait_for_selector("#catalogue li:has-text('No products yet')")

    # Zero products is a choice the seller confirms.
    await studio.click("#to-settings")
    await studio.click("dialog.confirm button:text-is('Cancel')")
    assert await studio.locator("#step-2").is_visible()

    photo = tmp_path / "mug.png"
    photo.write_bytes(png(64, 64))
    await studio.click("#new-product summary")
    await studio.fill("#product-form [name=title]", "Stoneware mug")
    await studio.fill("#product-form [name=price]", "12.50")
    await studio.fill("#product-form [name=stock]", "4")
    await studio.set_input_files("#product-form [name=photo]", str(photo))
    await studio.click("#product-form button[type=submit]")
    item = "#catalogue li:has-text('Stoneware mug')"
    await studio.wait_for_selector(f"{item} input:checked", timeout=WAIT)
    thumb = studio.locator(f"{item} img.thumb")
    await thumb.wait_for(timeout=WAIT)
    assert await thumb.evaluate("(img) => img.decode().then(() => img.naturalWidth)") == 64
    pid = str(await studio.get_attribute(item, "data-product-id"))
    product = await (await client.get(f"/api/v1/products/{pid}")).json()
    assert [m["kind"] for m in product["media"]] == ["image"]
    await audit(studio, "studio-catalogue")
    await studio.screenshot(path=str(SHOTS / "studio-catalogue-phone.png"), full_page=True)

    # Edit: the form comes back filled; saving patches the product.
    await studio.click(f"{item} button:text-is('Edit')")
    assert await studio.input_value("#product-form [name=price]") == "12.50"
    await studio.fill("#product-form [name=price]", "14.00")
    await studio.click("#product-form button:text-is('Save changes')")
    await studio.wait_for_selector(f"{item}:has-text('$14.00')", timeout=WAIT)
    product = await (await client.get(f"/api/v1/products/{pid}")).json()
    assert product["price_cents"] == 1400

    # Delete asks first: Cancel keeps it, Delete removes it.
    await studio.click(f"{item} button:text-is('Delete')")
    await studio.click("dialog.confirm button:text-is('Cancel')")
    assert (await client.get(f"/api/v1/products/{pid}")).status == 200
    await studio.click(f"{item} button:text-is('Delete')")
    await studio.click("dialog.confirm button:text-is('Delete')")
    await studio.wait_for_selector(item, state="detached", timeout=WAIT)
    assert (await client.get(f"/api/v1/products/{pid}")).status == 404


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
    await studio.click("dialog.confirm button:text-is('Go on without products')")
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
