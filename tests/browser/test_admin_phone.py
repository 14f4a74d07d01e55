"""The admin dashboard on a phone (390x844, touch) and a desktop (1440x900) in real Chromium.

A show is live with a WebRTC viewer who has no socket and an HLS viewer who chats; the admin reads
the users page and the show's page: the Role column fits the phone's width, every control is a
44x44 px touch target, "Viewers this minute" counts the WebRTC session, and Ban and End show ask
first (Cancel changes nothing). Screenshots go to build/screenshots/.
"""

from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page

from peers.webrtc import PublisherPeer, ViewerPeer
from server.settings import Settings
from tests.browser.conftest import serve
from tests.conftest import Account, Shop, eventually
from tests.socket_client import Viewer

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "build" / "screenshots"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1440, "height": 900}
SDP = {"Content-Type": "application/sdp"}
WAIT = 20_000
TARGET_PX = 44

# Every visible control smaller than a 44x44 px target, named so a failure says which.
SMALL_TARGETS = """(min) => [...document.querySelectorAll(
    "a[href], button, input, select, textarea, summary, [role=button]")]
  .filter((e) => e.checkVisibility({ visibilityProperty: true, opacityProperty: true }))
  .map((e) => [e, e.getBoundingClientRect()])
  .filter(([, r]) => r.width < min - 0.01 || r.height < min - 0.01)
  .map(([e, r]) => `${e.tagName.toLowerCase()}${e.id ? "#" + e.id : ""} "${
    (e.getAttribute("aria-label") || e.textContent || e.name || "").trim().slice(0, 30)
  }" ${r.width.toFixed(1)}×${r.height.toFixed(1)}`)"""
OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
AXE = (ROOT / "static" / "node_modules" / "axe-core" / "axe.min.js").read_text()
SERIOUS = """async () => (await axe.run(document, { resultTypes: ["violations"] })).violations
  .filter((v) => ["serious", "critical"].includes(v.impact))
  .map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`)"""


async def phone_page(browser: Browser) -> Page:
    context = await browser.new_context(
        viewport=PHONE,  # type: ignore[arg-type]
        is_mobile=True,
        has_touch=True,
        device_scale_factor=2,
    )
    return await context.new_page()


async def sign_in(page: Page, base: str, admin: Account, path: str) -> None:
    await page.goto(f"{base}{path}")
    await page.wait_for_selector("#auth:not([hidden])")
    await page.fill("#auth-form [name=email]", admin.email)
    await page.fill("#auth-form [name=password]", admin.password)
    await page.click("#auth-form button")
    await page.wait_for_selector("#nav:not([hidden])", timeout=WAIT)


async def assert_touch_targets(page: Page, where: str) -> None:
    """Every control is a 44 px target, and axe-core finds nothing serious on the page."""
    small = await page.evaluate(SMALL_TARGETS, TARGET_PX)
    assert not small, f"{where}: controls under {TARGET_PX}×{TARGET_PX} px: {small}"
    if not await page.evaluate("() => typeof axe !== 'undefined'"):
        await page.evaluate(AXE)
    problems = await page.evaluate(SERIOUS)
    assert not problems, f"{where}: {problems}"


async def shoot(page: Page, name: str, *, full_page: bool = True) -> None:
    await page.wait_for_timeout(200)  # fonts and the charts' first draw
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full_page)


async def banned(client: Any, stream_id: str, seller: Account) -> list[str]:
    url = f"/api/v1/streams/{stream_id}/sanctions"
    sanctions = await (await client.get(url, headers=seller.auth)).json()
    return [s["user"]["display_name"] for s in sanctions if s["kind"] == "ban"]


@pytest.mark.timeout(240)
async def test_admin_pages_on_a_phone(
    browser: Browser, settings: Settings, aiohttp_client: Any, database_url: str
) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    client = await serve(settings, aiohttp_client)
    base = settings.resolved_public_url
    shop = Shop(client, database_url)
    admin, seller = await shop.account("admin"), await shop.account("seller", display_name="Maya")
    ann = await shop.account(display_name="Ann")
    for name in ("Ben Okafor", "Chloé Marchand-Lefèvre"):
        await shop.account(display_name=name)
    title = "Autumn scarves"
    scarf = await shop.product(seller, title="Grey cashmere scarf", price_cents=8900)
    sid = (await shop.stream(seller, title=title, product_ids=[scarf["id"]]))["id"]
    live = await client.post(f"/api/v1/streams/{sid}/go-live", headers=seller.auth)
    publisher = PublisherPeer(size=(640, 360))
    answer = await client.post(
        f"/whip/{sid}",
        data=await publisher.offer(),
        headers={**SDP, "Authorization": f"Bearer {(await live.json())['publish_token']}"},
    )
    await publisher.accept(await answer.text())
    webrtc = ViewerPeer(record=False)  # a WebRTC viewer whose page has no socket
    chatter = await Viewer().connect(str(client.make_url("/")), token=ann.token)
    try:
        await eventually(lambda: _is_live(client, sid), 15, "the show never went live")
        watched = await client.post(f"/whep/{sid}", data=await webrtc.offer(), headers=SDP)
        assert watched.status == 201, await watched.text()
        await webrtc.accept(await watched.text())
        joined = await chatter.call("stream:join", {"stream_id": sid, "playback": "hls"})
        assert joined["ok"], joined
        line = "Is the grey one wool or cashmere, and does it come in a longer cut?"
        assert (await chatter.call("stream:chat", {"stream_id": sid, "text": line}))["ok"]
        assert (await chatter.call("stream:chat", {"stream_id": sid, "text": "hello!!"}))["ok"]

        phone = await phone_page(browser)
        await phone.goto(f"{base}/admin")
        await phone.wait_for_selector("#auth:not([hidden])")
        await assert_touch_targets(phone, "sign-in")
        await sign_in(phone, base, admin, "/admin")
        await shows_page(phone, stream_id=sid)
        await phone.goto(f"{base}/admin?users")
        await users_page(phone)
        await show_page(phone, base, sid)
        await delete_asks_first(phone)
        await ban_asks_first(phone, client, sid, seller)
        await end_asks_first(phone, title)

        desk = await (await browser.new_context(viewport=DESKTOP)).new_page()  # type: ignore[arg-type]
        await sign_in(desk, base, admin, "/admin")
        await desk.wait_for_selector(f"#shows-table tr[data-stream-id='{sid}']", timeout=WAIT)
        await shoot(desk, "admin-shows-desktop")
        await desk.goto(f"{base}/admin?users")
        await desk.wait_for_selector("#users-body tr:has-text('Ann') select", timeout=WAIT)
        await shoot(desk, "admin-users-desktop")
        await desk.goto(f"{base}/admin/shows/{sid}")
        await desk.wait_for_selector("#sanctions li:has-text('Ann')", timeout=WAIT)
        await shoot(desk, "admin-show-desktop")
    finally:
        await chatter.close()
        await webrtc.close()
        await publisher.close()


async def shows_page(page: Page, stream_id: str) -> None:
    row = f"#shows-table tr[data-stream-id='{stream_id}'][data-status=live]"
    await page.wait_for_selector(f"{row} td.viewers:text-is('1')", timeout=WAIT)
    assert await page.evaluate(OVERFLOW) <= 0, "the shows page scrolls sideways"
    await assert_touch_targets(page, "shows")
    await shoot(page, "admin-shows-phone")


async def users_page(page: Page) -> None:
    await page.wait_for_selector("#users-body tr:has-text('Chloé') select", timeout=WAIT)
    assert await page.evaluate(OVERFLOW) <= 0, "the users page scrolls sideways"
    for row in await page.locator("#users-body tr").all():
        role = await row.locator("td.role select").bounding_box()
        assert role is not None and role["x"] >= 0, "the role is off screen"
        assert role["x"] + role["width"] <= PHONE["width"], f"the role is cut off: {role}"
    assert await page.locator("#users-body tr:has-text('Ann') td.role select").is_visible()
    await assert_touch_targets(page, "users")
    await shoot(page, "admin-users-phone")


async def show_page(page: Page, base: str, stream_id: str) -> None:
    await page.goto(f"{base}/admin/shows/{stream_id}")
    await page.wait_for_selector("#admin-chat li:has-text('cashmere')", timeout=WAIT)
    await page.wait_for_selector("#chart-viewers .uplot, #chart-viewers p", timeout=WAIT)
    # The WebRTC session and the HLS viewer: two viewers this minute.
    figure = "#show-figures [data-figure='Viewers this minute'] dd"
    await page.wait_for_selector(f"{figure}:text-is('2')", timeout=WAIT)
    assert await page.evaluate(OVERFLOW) <= 0, "the show page scrolls sideways"
    await assert_touch_targets(page, "show")
    await shoot(page, "admin-show-phone")


async def delete_asks_first(page: Page) -> None:
    delete = page.locator("#admin-chat li:has-text('hello!!') button:text-is('Delete')")
    dialog = page.locator("dialog.confirm")
    await delete.click()
    assert "Delete Ann's message “hello!!” for everyone?" in await dialog.inner_text()
    await dialog.locator("button:text-is('Delete')").click()
    await page.wait_for_selector("#admin-chat li:has-text('hello!!')", state="detached")


async def ban_asks_first(page: Page, client: Any, stream_id: str, seller: Account) -> None:
    ban = page.locator("#admin-chat li:has-text('cashmere') button:text-is('Ban')")
    dialog = page.locator("dialog.confirm")
    await ban.click()
    await dialog.wait_for()
    assert "Ban Ann from this show?" in await dialog.inner_text()
    assert await page.evaluate("() => document.activeElement.value") == "cancel"
    await assert_touch_targets(page, "ban dialog")
    await shoot(page, "admin-ban-confirm-phone", full_page=False)  # the dialog as it is seen
    await dialog.locator("button:text-is('Cancel')").click()
    await dialog.wait_for(state="detached")
    await page.wait_for_selector("#status:has-text('cancelled')")
    assert await banned(client, stream_id, seller) == [], "Cancel banned Ann"

    await ban.click()
    await dialog.locator("button:text-is('Ban')").click()
    await page.wait_for_selector("#sanctions li[data-kind=ban]:has-text('Ann')", timeout=WAIT)
    assert await banned(client, stream_id, seller) == ["Ann"]
    await page.wait_for_selector("#admin-chat li:has-text('cashmere')", state="detached")


async def end_asks_first(page: Page, title: str) -> None:
    dialog = page.locator("dialog.confirm")
    await page.click("#end-show")
    assert f"End “{title}” for all viewers?" in await dialog.inner_text()
    await dialog.locator("button:text-is('Cancel')").click()
    await page.wait_for_timeout(500)
    assert await page.get_attribute("body", "data-status") == "live"
    await page.click("#end-show")
    await dialog.locator("button:text-is('End show')").click()
    await page.wait_for_selector("body[data-status=ended]", timeout=WAIT)


async def _is_live(client: Any, stream_id: str) -> bool:
    stream = await (await client.get(f"/api/v1/streams/{stream_id}")).json()
    return bool(stream["status"] == "live")
