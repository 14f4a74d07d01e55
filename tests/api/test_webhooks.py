"""Signed webhooks to a real local receiver, retried until acknowledged, and signed settling."""

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from api.shows.lifecycle import StreamLifecycle
from api.web.context import SERVICES
from api.webhooks.models import WebhookDelivery
from api.webhooks.webhooks import sign, verify
from server.app import build_app
from server.settings import Settings
from tests.conftest import Shop, eventually, expect_error

Client = TestClient[Any, Any]


class Receiver:
    """A shop's webhook endpoint: records every request; the first attempt of each event
    fails with 500, so every event must be retried once."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self._seen: set[str] = set()

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.read()))
        event_id = request.headers["Shopcast-Event-Id"]
        if event_id not in self._seen:
            self._seen.add(event_id)
            return web.Response(status=500)
        return web.Response(status=204)

    def events(self, event: str) -> list[tuple[dict[str, str], bytes]]:
        return [(h, b) for h, b in self.requests if h.get("Shopcast-Event") == event]


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    shop = Receiver()
    app = web.Application()
    app.router.add_post("/hooks", shop.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield shop, str(server.make_url("/hooks"))
    await server.close()


@pytest.fixture
async def local_shop_client(
    settings: Settings, aiohttp_client: Callable[..., Awaitable[Client]]
) -> Client:
    """A node whose webhooks may reach a shop on this machine (the test's receiver)."""
    settings.webhook_private_networks = True
    return await aiohttp_client(build_app(settings))


async def test_events_are_signed_retried_and_never_duplicated(
    local_shop_client: Client, database_url: str, receiver: tuple[Receiver, str]
) -> None:
    client, shop = local_shop_client, Shop(local_shop_client, database_url)
    hooks, url = receiver
    seller, buyer = await shop.account("seller"), await shop.account()
    created = await client.post("/api/v1/webhooks", json={"url": url}, headers=seller.auth)
    assert created.status == 201
    endpoint = await created.json()
    secret = endpoint["secret"]
    assert len(secret) == 64
    listed = await (await client.get("/api/v1/webhooks", headers=seller.auth)).json()
    assert listed == [{"id": endpoint["id"], "url": url, "created_at": endpoint["created_at"]}]

    product = await shop.product(seller, stock=3)
    stream = await shop.stream(seller, product_ids=[product["id"]])
    services = client.app[SERVICES]
    await StreamLifecycle(services.sessions, services.rooms, services.bus).media_started(
        stream["id"]
    )
    order = await (
        await client.post(
            f"/api/v1/streams/{stream['id']}/orders",
            json={"product_id": product["id"]},
            headers={**buyer.auth, "Idempotency-Key": "webhook-order-1"},
        )
    ).json()

    await eventually(lambda: len(hooks.events("order.reserved")) == 2, 15, "no retry")
    (first, _), (second, body) = hooks.events("order.reserved")
    assert first["Shopcast-Event-Id"] == second["Shopcast-Event-Id"], "a retry is the same event"
    assert verify([secret], second["Shopcast-Signature"], body)
    assert not verify(["another secret"], second["Shopcast-Signature"], body)
    payload = json.loads(body)
    assert payload["id"] == second["Shopcast-Event-Id"]
    assert payload["type"] == "order.reserved" and payload["data"]["id"] == order["id"]
    await eventually(lambda: len(hooks.events("stream.live")) == 2, 10, "no stream.live")
    await asyncio.sleep(2.5)
    assert len(hooks.events("order.reserved")) == 2, "acknowledged events are not sent again"

    settle = f"/api/v1/orders/{order['id']}/settle"
    paid = json.dumps({"order_id": order["id"], "status": "paid"}).encode()
    async with shop.unchanged():
        for header in (
            "",
            sign("wrong secret", int(time.time()), paid),
            sign(secret, int(time.time()) - 3600, paid),
        ):
            response = await client.post(
                settle,
                data=paid,
                headers={"Content-Type": "application/json", "Shopcast-Signature": header},
            )
            await expect_error(response, 401, "invalid_signature")
    response = await client.post(
        settle,
        data=paid,
        headers={
            "Content-Type": "application/json",
            "Shopcast-Signature": sign(secret, int(time.time()), paid),
        },
    )
    assert response.status == 200 and (await response.json())["status"] == "paid"
    await eventually(lambda: len(hooks.events("order.paid")) == 2, 10, "no order.paid")
    assert (
        await client.post(f"/api/v1/streams/{stream['id']}/end", headers=seller.auth)
    ).status == 200
    await eventually(lambda: len(hooks.events("stream.ended")) == 2, 10, "no stream.ended")
    ids = {h["Shopcast-Event-Id"] for h, _ in hooks.requests}
    assert len(ids) == 4, "four events, each sent twice under one id"


async def test_a_settle_signature_settles_its_order_once(client: Client, shop: Shop) -> None:
    # The settle callback once signed only {"status": ...}: one captured signature then settled
    # any order of the seller, as often as liked, for five minutes.
    seller, buyer = await shop.account("seller"), await shop.account()
    created = await client.post(
        "/api/v1/webhooks", json={"url": "https://shop.example/hook"}, headers=seller.auth
    )
    secret = (await created.json())["secret"]
    product = await shop.product(seller, stock=3)
    stream = await shop.stream(seller, product_ids=[product["id"]])
    services = client.app[SERVICES]
    await StreamLifecycle(services.sessions, services.rooms, services.bus).media_started(
        stream["id"]
    )
    orders = []
    for key in ("settle-once-1", "settle-once-2"):
        response = await client.post(
            f"/api/v1/streams/{stream['id']}/orders",
            json={"product_id": product["id"]},
            headers={**buyer.auth, "Idempotency-Key": key},
        )
        orders.append(await response.json())
    first, second = (o["id"] for o in orders)

    def signed(body: bytes, at: int | None = None) -> dict[str, str]:
        stamp = int(time.time()) if at is None else at
        return {"Content-Type": "application/json", "Shopcast-Signature": sign(secret, stamp, body)}

    paid = json.dumps({"order_id": first, "status": "paid"}).encode()
    captured = signed(paid)
    async with shop.unchanged():
        for path, headers in (
            (f"/api/v1/orders/{second}/settle", captured),  # names another order
            (f"/api/v1/orders/{first}/settle", signed(paid, int(time.time()) - 120)),  # too old
        ):
            response = await client.post(path, data=paid, headers=headers)
            await expect_error(response, 401, "invalid_signature")
    response = await client.post(f"/api/v1/orders/{first}/settle", data=paid, headers=captured)
    assert response.status == 200 and (await response.json())["status"] == "paid"
    await asyncio.sleep(1.1)  # the cancel is a later change than the captured signature
    cancelled = json.dumps({"order_id": first, "status": "cancelled"}).encode()
    response = await client.post(
        f"/api/v1/orders/{first}/settle", data=cancelled, headers=signed(cancelled)
    )
    assert response.status == 200 and (await response.json())["status"] == "cancelled"
    async with shop.unchanged():
        response = await client.post(f"/api/v1/orders/{first}/settle", data=paid, headers=captured)
        await expect_error(response, 401, "invalid_signature")


async def test_webhook_endpoint_refusals(client: Client, shop: Shop) -> None:
    seller, viewer = await shop.account("seller"), await shop.account()
    async with shop.unchanged():
        for url in ("ftp://shop.example/hook", "not a url", "javascript:alert(1)"):
            response = await client.post("/api/v1/webhooks", json={"url": url}, headers=seller.auth)
            await expect_error(response, 422, "invalid")
        response = await client.post(
            "/api/v1/webhooks", json={"url": "https://shop.example/h"}, headers=viewer.auth
        )
        await expect_error(response, 403, "forbidden")
        await expect_error(
            await client.delete("/api/v1/webhooks/nope", headers=seller.auth), 404, "not_found"
        )


async def _order_event(client: Client, shop: Shop, urls: list[str]) -> None:
    """A seller with these webhook URLs, and one order: an order.reserved for each."""
    seller, buyer = await shop.account("seller"), await shop.account()
    for url in urls:
        created = await client.post("/api/v1/webhooks", json={"url": url}, headers=seller.auth)
        assert created.status == 201, await created.text()
    product = await shop.product(seller, stock=3)
    stream = await shop.stream(seller, product_ids=[product["id"]])
    services = client.app[SERVICES]
    await StreamLifecycle(services.sessions, services.rooms, services.bus).media_started(
        stream["id"]
    )
    ordered = await client.post(
        f"/api/v1/streams/{stream['id']}/orders",
        json={"product_id": product["id"]},
        headers={**buyer.auth, "Idempotency-Key": "ssrf-order-1"},
    )
    assert ordered.status == 201


async def _errors(client: Client, event: str) -> list[str]:
    async with client.app[SERVICES].reads() as session:
        rows = await session.scalars(
            select(WebhookDelivery.last_error).where(WebhookDelivery.event == event)
        )
        return [row or "" for row in rows]


async def test_webhooks_reach_no_internal_address(
    client: Client, shop: Shop, receiver: tuple[Receiver, str]
) -> None:
    # Any account can become a seller: its webhook URLs must not reach this machine or its
    # network, however the address is written, whatever a name resolves to.
    hooks, url = receiver
    port = url.split(":")[2].split("/")[0]
    internal = [
        url,
        f"http://localhost:{port}/hooks",
        f"http://2130706433:{port}/hooks",  # 127.0.0.1 as one decimal number
        f"http://[::ffff:127.0.0.1]:{port}/hooks",
        f"http://[::1]:{port}/hooks",
        "http://169.254.169.254/latest/meta-data/",
    ]
    await _order_event(client, shop, internal)

    async def all_tried() -> bool:
        errors = await _errors(client, "order.reserved")
        return len(errors) == len(internal) and all(errors)

    await eventually(all_tried, 15, "not every delivery was tried")
    assert hooks.requests == [], "a webhook reached a loopback listener"
    assert all("public" in error for error in await _errors(client, "order.reserved"))


async def test_webhooks_follow_no_redirect(local_shop_client: Client, database_url: str) -> None:
    # A 307 would re-send the signed body to wherever the receiver points.
    reached: list[str] = []

    async def redirect(request: web.Request) -> web.Response:
        reached.append(request.path)
        raise web.HTTPTemporaryRedirect("/elsewhere")

    async def elsewhere(request: web.Request) -> web.Response:
        reached.append(request.path)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hooks", redirect)
    app.router.add_post("/elsewhere", elsewhere)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        client, shop = local_shop_client, Shop(local_shop_client, database_url)
        await _order_event(client, shop, [str(server.make_url("/hooks"))])

        async def tried() -> bool:
            return await _errors(client, "order.reserved") == ["HTTP 307"]

        await eventually(tried, 15, "the delivery was not tried")
        assert reached and set(reached) == {"/hooks"}, "the redirect was followed"
    finally:
        await server.close()
