"""The embeddable player in real Chromium, on a shop's page of another site (127.0.0.2, while
Shopcast is on 127.0.0.1): it plays, the page hears ready, live, add-to-cart and ended, and its
openProduct and signIn commands work; messages from a third origin are ignored both ways; a shop
whose origin the operator did not allow gets no player. Screenshots: build/screenshots/embed-*.png.
"""

import asyncio
import json
from contextlib import AsyncExitStack
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from aiohttp import web
from playwright.async_api import Browser, Frame, Page

from server.settings import Settings
from tests.browser.conftest import serve
from tests.browser.test_rewind import DESKTOP, FRAMES, PHONE, publish
from tests.browser.test_story import AUDIT, AXE, SHOTS
from tests.browser.test_watch_phone import _pin
from tests.conftest import Account, Shop, eventually

SCARF_PAGE = "https://shop.example/scarves/silk"  # the product on the shop: its checkout_url
# A shop's product page: the loader, a cart of its own, and buttons that open products live.
SHOP_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Acme Scarves · Live</title>
<style>
  body { margin: 0; font-family: system-ui, sans-serif; color: #1f2937; background: #faf7f2; }
  header { display: flex; justify-content: space-between; align-items: center;
    padding: 0.75rem 1rem; background: #7c2d12; color: #fff; }
  main { max-width: 75rem; margin: 0 auto; padding: 0 1rem 2rem; }
  h1 { font-size: 1.3rem; margin: 1rem 0 0.5rem; }
  #live { border-radius: 0.75rem; overflow: hidden; }
  ul { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: 0.5rem; }
  button { min-height: 2.75rem; padding: 0 1rem; font: inherit; font-weight: 600; border: 0;
    border-radius: 0.5rem; background: #7c2d12; color: #fff; }
</style>
</head>
<body>
<header><strong>Acme Scarves</strong><span id="cart" role="status">Cart: empty</span></header>
<main>
  <h1>Live now: our autumn scarves</h1>
  <div id="live"></div>
  <ul id="products"></ul>
</main>
<script src="__SHOPCAST__/static/embed.js"></script>
<script>
  const query = new URLSearchParams(location.search);
  const player = Shopcast.embed(document.getElementById("live"), {
    show: query.get("show"), cart: "host", height: query.get("height") || undefined,
  });
  window.player = player;
  window.received = [];
  for (const name of ["ready", "product:click", "add-to-cart", "live", "ended", "error"]) {
    player.on(name, (data) => window.received.push({ event: name, data, at: performance.now() }));
  }
  const cart = [];
  player.on("add-to-cart", ({ product, quantity }) => {
    cart.push(`${quantity} × ${product.title}`);
    document.getElementById("cart").textContent = `Cart: ${cart.join(", ")}`;
  });
  for (const [id, title] of JSON.parse(query.get("products") || "[]")) {
    const button = document.createElement("button");
    button.textContent = `See the ${title} live`;
    button.addEventListener("click", () => player.openProduct(id));
    const item = document.createElement("li");
    item.append(button);
    document.getElementById("products").append(item);
  }
</script>
</body>
</html>
"""
# The one-tag form: the player in the script's place, its events as DOM events.
ONE_TAG = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Acme Scarves · Live</title>
<style>body { margin: 0 auto; max-width: 75rem; padding: 1rem; font-family: system-ui; }</style>
</head>
<body>
<h1>Live now</h1>
<script>
  window.received = [];
  for (const name of ["ready", "live", "ended", "error"]) {
    document.addEventListener(`shopcast:${name}`, (event) => {
      window.received.push({ event: name, data: event.detail, at: performance.now() });
    });
  }
</script>
<script src="__SHOPCAST__/static/embed.js" data-show="__SHOW__" data-cart="host"></script>
<p>Free returns within 30 days.</p>
</body>
</html>
"""
# A frame of a third origin in the shop's page: it tries to command the player and to pass
# itself off as the player to the page.
INTRUDER = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ad</title></head>
<body>
<script>
  const product = new URLSearchParams(location.search).get("product");
  parent.frames[0].postMessage(
    { shopcast: 1, command: "openProduct", id: 1, args: { product_id: product } }, "*");
  parent.postMessage({ shopcast: 1, event: "add-to-cart",
    data: { product: { id: product, title: "forged" }, quantity: 9 } }, "*");
  parent.postMessage({ shopcast: 1, event: "ready", data: {} }, "*");
  document.title = "sent";
</script>
</body></html>
"""
EVENT = """(name) => window.received.find((e) => e.event === name) ?? null"""
# The first frame's time in the shop page's clock (from the shop page's navigation).
FIRST_FRAME = "() => performance.timeOrigin + (window.shopcastFirstFrame ?? NaN)"


async def shop_site(aiohttp_client: Any, host: str) -> str:
    """A shop's site on ``host`` (another loopback address: another site): its origin."""

    def page(template: str) -> Any:
        async def serve_page(request: web.Request) -> web.Response:
            query = request.query
            text = template.replace("__SHOPCAST__", query.get("shopcast", ""))
            text = text.replace("__SHOW__", query.get("show", ""))
            return web.Response(text=text, content_type="text/html")

        return serve_page

    app = web.Application()
    app.router.add_get("/shop.html", page(SHOP_PAGE))
    app.router.add_get("/one-tag.html", page(ONE_TAG))
    app.router.add_get("/intruder.html", page(INTRUDER))
    site = await aiohttp_client(app, server_kwargs={"host": host})
    url = urlsplit(str(site.make_url("/")))
    return f"{url.scheme}://{url.netloc}"


async def heard(page: Page, event: str, within: float = 30) -> dict[str, Any]:
    """The first ``event`` the shop's page received from the player."""
    found = await eventually(
        lambda: page.evaluate(EVENT, event), within, f"the shop's page never heard {event}"
    )
    return dict(found)


async def player_frame(page: Page, base: str) -> Frame:
    def frame() -> Frame | None:
        return next((f for f in page.frames if f.url.startswith(f"{base}/embed/")), None)

    found: Frame = await eventually(frame, 20, "no player frame")
    return found


async def frame_plays(frame: Frame) -> bool:
    """WebRTC frames are decoded in the player, more of them a second later."""
    before = await frame.evaluate(FRAMES)
    await asyncio.sleep(1)
    after = await frame.evaluate(FRAMES)
    return before is not None and after is not None and after > before


async def audit_frame(frame: Frame, name: str) -> None:
    """axe-core inside the player: no serious or critical problem."""
    await frame.evaluate(AXE)
    await frame.evaluate(
        "() => Promise.all(document.getAnimations().map((a) => a.finished.catch(() => null)))"
    )
    problems = await frame.evaluate(AUDIT)
    assert not problems, f"{name}: {problems}"


async def timing(page: Page, frame: Frame, name: str) -> None:
    """Prints when the shop's page heard ready and when the player showed its first frame."""
    ready = (await heard(page, "ready"))["at"]
    first = await eventually(lambda: frame.evaluate(FIRST_FRAME), 20, "no first frame")
    origin = await page.evaluate("() => performance.timeOrigin")
    print(f"\n{name}: ready {ready:.0f} ms, first frame {first - origin:.0f} ms after navigation")


@pytest.mark.timeout(240)
async def test_the_player_embedded_in_a_shop_page_of_another_site(
    browser: Browser, settings: Settings, aiohttp_client: Any, database_url: str
) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    shop_origin = await shop_site(aiohttp_client, "127.0.0.2")
    stranger = await shop_site(aiohttp_client, "127.0.0.3")
    settings.cors_origins = [shop_origin]
    client = await serve(settings, aiohttp_client)
    base = settings.resolved_public_url
    shop = Shop(client, database_url)
    async with AsyncExitStack() as stack:
        seller = await shop.account("seller")
        scarf = await shop.product(
            seller, title="Silk scarf", price_cents=2500, stock=5, checkout_url=SCARF_PAGE
        )
        mug = await shop.product(seller, title="Stoneware mug", price_cents=1250, stock=3)
        sid, _ = await publish(
            shop, stack, seller, title="Autumn scarves", product_ids=[scarf["id"], mug["id"]]
        )
        await _pin(client, seller, sid, scarf["id"])

        phone = await browser.new_context(viewport=PHONE, has_touch=True, is_mobile=True)  # type: ignore[arg-type]
        stack.push_async_callback(phone.close)
        page = await phone.new_page()
        products = json.dumps([[scarf["id"], "scarf"], [mug["id"], "mug"]])
        query = urlencode({"shopcast": base, "show": sid, "products": products})
        await page.goto(f"{shop_origin}/shop.html?{query}")
        ready = await heard(page, "ready")
        assert ready["data"]["show"] == {"id": sid, "title": "Autumn scarves", "status": "live"}
        assert (await heard(page, "live"))["data"] == {"status": "live"}
        frame = await player_frame(page, base)
        await eventually(lambda: frame_plays(frame), 20, "the embedded player plays no video")
        await timing(page, frame, "embedded, phone")
        assert await frame.locator(".top > a.round").is_hidden(), "no way out of the shop's page"

        await the_shops_cart_takes_buy(page, frame, scarf["id"])
        orders = await client.get(f"/api/v1/streams/{sid}/orders", headers=seller.auth)
        assert await orders.json() == [], "the shop's cart took the order: no Shopcast order"
        await a_third_origin_is_heard_by_neither_side(page, frame, stranger, mug["id"])
        await the_shop_opens_products(page, frame, mug["id"], scarf["id"])
        await the_shop_signs_its_visitor_in(page, frame, await shop.account(display_name="Dana"))
        await audit_frame(frame, "embed phone")
        await page.screenshot(path=str(SHOTS / "embed-phone.png"), full_page=True)

        # The wide shop page, with the one-tag form: ready and live arrive as DOM events.
        desktop = await browser.new_context(viewport=DESKTOP)  # type: ignore[arg-type]
        stack.push_async_callback(desktop.close)
        wide = await desktop.new_page()
        await wide.goto(f"{shop_origin}/one-tag.html?{urlencode({'shopcast': base, 'show': sid})}")
        assert (await heard(wide, "ready"))["data"]["show"]["id"] == sid
        await heard(wide, "live")
        wide_frame = await player_frame(wide, base)
        await eventually(lambda: frame_plays(wide_frame), 20, "the wide player plays no video")
        await timing(wide, wide_frame, "embedded, desktop")
        await wide_frame.wait_for_selector(f"{card_of(scarf['id'])} .buy:text-is('Add to cart')")
        await audit_frame(wide_frame, "embed desktop")
        await wide.screenshot(path=str(SHOTS / "embed-desktop.png"), full_page=True)

        # The show ends: both pages are told.
        ended = await client.post(f"/api/v1/streams/{sid}/end", headers=seller.auth)
        assert ended.status == 200, await ended.text()
        assert (await heard(page, "ended"))["data"] == {"status": "ended"}
        await heard(wide, "ended")

        await a_shop_not_allowed_gets_no_player(await desktop.new_page(), stranger, base, sid)


def card_of(product_id: str) -> str:
    return f"#pinned .card[data-product-id='{product_id}']"


async def the_shops_cart_takes_buy(page: Page, frame: Frame, product_id: str) -> None:
    """Add to cart gives the shop's page the product and the quantity; a tap on the card,
    product:click."""
    card = card_of(product_id)
    await frame.wait_for_selector(f"{card} .buy:text-is('Add to cart')")
    await frame.tap(f"{card} .buy")
    added = (await heard(page, "add-to-cart"))["data"]
    assert added["quantity"] == 1
    assert added["product"]["id"] == product_id and added["product"]["title"] == "Silk scarf"
    assert added["product"]["price_cents"] == 2500 and added["product"]["currency"] == "USD"
    assert added["product"]["checkout_url"] == SCARF_PAGE, "the shop's own checkout takes it"
    await page.wait_for_selector("#cart:text-is('Cart: 1 × Silk scarf')")
    await frame.wait_for_selector(f"{card} .result:text-is('Added to your cart.')")
    await frame.tap(card, position={"x": 4, "y": 4})  # the card itself, not its buttons
    clicked = (await heard(page, "product:click"))["data"]["product"]
    assert clicked["id"] == product_id and clicked["sale_price_cents"] is None


async def a_third_origin_is_heard_by_neither_side(
    page: Page, frame: Frame, stranger: str, product_id: str
) -> None:
    """A frame of another origin in the shop's page commands the player and poses as it."""
    await page.evaluate(
        "(url) => { const f = document.createElement('iframe'); f.src = url; f.title = 'ad';"
        " f.style.cssText = 'width: 1px; height: 1px; border: 0'; document.body.append(f); }",
        f"{stranger}/intruder.html?product={product_id}",
    )
    intruder: Frame = await eventually(
        lambda: next((f for f in page.frames if f.url.startswith(stranger)), None),
        10,
        "no intruder frame",
    )
    await intruder.wait_for_function("() => document.title === 'sent'")
    await page.wait_for_timeout(1000)
    assert await frame.locator(card_of(product_id)).count() == 0, "the player obeyed it"
    events = await page.evaluate("() => window.received")
    assert [e["event"] for e in events].count("ready") == 1, events
    assert [e["data"]["quantity"] for e in events if e["event"] == "add-to-cart"] == [1]


async def the_shop_opens_products(page: Page, frame: Frame, unpinned: str, pinned: str) -> None:
    """openProduct: the product's card first and highlighted, pinned or not; an unknown one
    is refused."""
    await page.tap("#products button:text-is('See the mug live')")
    await frame.wait_for_selector(
        f"#pinned > .card.opened:first-child[data-product-id='{unpinned}']"
    )
    opened = "(id) => player.openProduct(id).then((result) => result === null)"
    assert await page.evaluate(opened, pinned)
    await frame.wait_for_selector(f"#pinned > .card.opened:first-child[data-product-id='{pinned}']")
    assert await frame.locator("#pinned .card.opened").count() == 1
    refused = "(id) => player.openProduct(id).then(() => 'opened', (e) => e.code)"
    assert await page.evaluate(refused, "no-such-product") == "unknown_product"


async def the_shop_signs_its_visitor_in(page: Page, frame: Frame, visitor: Account) -> None:
    """signIn with a Shopcast token the shop holds: the chat box appears and chat works; the
    token is not stored."""
    assert await frame.locator("#chat-form").is_hidden()
    bad = "() => player.signIn('not-a-token').then(() => 'in', (e) => e.code)"
    assert await page.evaluate(bad) == "invalid_token"
    signed = await page.evaluate("(token) => player.signIn(token)", visitor.token)
    assert signed == {"user": {"id": visitor.id, "display_name": "Dana"}}
    await frame.wait_for_selector("#chat-form:not([hidden])")
    await frame.wait_for_selector("#account-button:text-is('Dana')")
    await frame.fill("#chat-form [name=text]", "Is the scarf silk?")
    await frame.press("#chat-form [name=text]", "Enter")
    await frame.wait_for_selector("#chat li:has-text('Is the scarf silk?') strong:text-is('Dana')")
    assert await frame.evaluate("() => localStorage.getItem('shopcast.token')") is None


async def a_shop_not_allowed_gets_no_player(page: Page, stranger: str, base: str, sid: str) -> None:
    """The player's CSP frame-ancestors names the allowed shop only: Chromium refuses the frame."""
    messages: list[str] = []
    page.on("console", lambda message: messages.append(message.text))
    await page.goto(f"{stranger}/one-tag.html?{urlencode({'shopcast': base, 'show': sid})}")
    await eventually(
        lambda: any("frame-ancestors" in m for m in messages), 10, f"not refused: {messages}"
    )
    await page.wait_for_timeout(2000)
    assert await page.evaluate("() => window.received") == []
    assert not any(f.url.startswith(f"{base}/embed/") for f in page.frames)
    await page.screenshot(path=str(SHOTS / "embed-refused.png"))
