"""Signed webhooks to a real local receiver, retried until acknowledged, and signed settling."""

import asyncio
import base64
import json
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks import Webhook, WebhookVerificationError

from api.db import utcnow
from api.identity.models import Role, User
from api.shows.lifecycle import StreamLifecycle
from api.web.context import SERVICES
from api.webhooks import webhooks
from api.webhooks.models import WebhookDelivery, WebhookEndpoint
from api.webhooks.webhooks import Dispatcher, enqueue, sign, signed_at, verify
from server.app import build_app
from server.database import create_engine, session_factory
from server.settings import Settings
from tests.api.test_metrics import scraped
from tests.conftest import Shop, eventually, expect_error

Client = TestClient[Any, Any]
Sessions = async_sessionmaker[AsyncSession]


def standard_secret(secret: str) -> str:
    """An endpoint's secret as Standard Webhooks libraries take it (docs/commerce.md)."""
    return "whsec_" + base64.b64encode(secret.encode()).decode()


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
    assert Webhook(standard_secret(secret)).verify(body, second) == json.loads(body)
    assert second["webhook-id"] == second["Shopcast-Event-Id"]
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

    async def sends(outcome: str) -> float:
        return await scraped(client, "shopcast_webhook_deliveries_total", outcome=outcome)

    async def all_counted() -> bool:
        return await sends("delivered") == 4

    await eventually(all_counted, 10, "not four deliveries counted")
    assert await sends("refused") == 4 and await sends("unreachable") == 0
    assert await scraped(client, "shopcast_webhook_delivery_duration_seconds_count") == 8
    assert await scraped(client, "shopcast_order_payments_total", method="shop") == 1


async def _park_outbox(shop: Shop) -> None:
    """Put every delivery out of the app's dispatcher's reach, so that a snapshot sees only the
    requests under test. A claim already taken records nothing: its lease is gone."""
    engine = create_engine(shop.database_url)
    try:
        async with engine.begin() as conn:
            later = utcnow() + timedelta(days=1)
            await conn.execute(update(WebhookDelivery).values(next_attempt_at=later))
    finally:
        await engine.dispose()


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
    await _park_outbox(shop)
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
    await _park_outbox(shop)
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


class Destinations:
    """Webhook receivers on 127.0.0.1, each on a port of its own (a destination of its own).
    They record every request and count how many are in flight at each; a held receiver
    answers only once ``released`` is set."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.received_at: dict[str, datetime] = {}
        self.answered: list[str] = []
        self.in_flight: Counter[str] = Counter()
        self.most: Counter[str] = Counter()
        self.released = asyncio.Event()
        self._held: set[str] = set()
        self._servers: list[TestServer] = []

    async def listen(self, *, hold: bool = False) -> str:
        """Start a receiver; its origin, ``http://127.0.0.1:<port>``, takes any path."""
        app = web.Application()
        app.router.add_post("/{path}", self._handle)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        self._servers.append(server)
        host = f"127.0.0.1:{server.port}"
        if hold:
            self._held.add(host)
        return f"http://{host}"

    async def _handle(self, request: web.Request) -> web.Response:
        delivery = request.headers["webhook-id"]
        self.requests.append((request.host, dict(request.headers), await request.read()))
        self.received_at[delivery] = utcnow()
        self.in_flight[request.host] += 1
        self.most[request.host] = max(self.most[request.host], self.in_flight[request.host])
        try:
            if request.host in self._held:
                await self.released.wait()
        finally:
            self.in_flight[request.host] -= 1
        self.answered.append(delivery)
        return web.Response(status=204)

    def ids(self) -> list[str]:
        return [headers["webhook-id"] for _, headers, _ in self.requests]

    async def close(self) -> None:
        self.released.set()
        for server in self._servers:
            await server.close()


@pytest.fixture
async def destinations() -> AsyncIterator[Destinations]:
    receivers = Destinations()
    yield receivers
    await receivers.close()


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[Sessions]:
    """Sessions on the test's database; no node runs on it but the test's dispatchers."""
    engine = create_engine(database_url)
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture
async def dispatchers(
    database_url: str, destinations: Destinations
) -> AsyncIterator[Callable[[], Awaitable[Dispatcher]]]:
    """Start dispatchers as nodes do, each with an engine of its own. Each fills its slots by
    itself only when one of its sends finishes; the test calls ``send_due`` for the rest."""
    started: list[tuple[Dispatcher, Any]] = []

    async def start() -> Dispatcher:
        engine = create_engine(database_url)
        dispatcher = Dispatcher(session_factory(engine), every=3600, private_networks=True)
        started.append((dispatcher, engine))
        await dispatcher.start()
        return dispatcher

    yield start
    destinations.released.set()
    for dispatcher, engine in started:
        await dispatcher.close()
        await engine.dispose()


async def _seller(sessions: Sessions, urls: list[str]) -> tuple[str, list[str]]:
    """A seller with an endpoint at each URL: its id and the endpoints' secrets."""
    async with sessions.begin() as session:
        seller = User(
            email=f"seller-{secrets.token_hex(4)}@example.com",
            display_name="seller",
            password_hash="-",
            role=Role.SELLER,
        )
        session.add(seller)
        await session.flush()
        endpoints = [
            WebhookEndpoint(owner_id=seller.id, url=url, secret=secrets.token_hex(32))
            for url in urls
        ]
        session.add_all(endpoints)
    return seller.id, [endpoint.secret for endpoint in endpoints]


async def _events(sessions: Sessions, seller_id: str, count: int) -> None:
    """``count`` order.reserved events of the seller, one after the other: one delivery to
    each of its endpoints for each."""
    for n in range(count):
        async with sessions.begin() as session:
            await enqueue(session, seller_id, "order.reserved", {"n": n})


async def _deliveries(sessions: Sessions, seller_id: str) -> dict[str, WebhookDelivery]:
    async with sessions.begin() as session:
        rows = await session.scalars(
            select(WebhookDelivery)
            .join(WebhookEndpoint)
            .where(WebhookEndpoint.owner_id == seller_id)
            .order_by(WebhookDelivery.created_at)
        )
        return {row.id: row for row in rows}


async def test_a_sellers_slow_endpoints_do_not_delay_another_sellers_events(
    sessions: Sessions,
    destinations: Destinations,
    dispatchers: Callable[[], Awaitable[Dispatcher]],
) -> None:
    # Deliveries were sent one at a time, oldest first: 30 slow endpoints of one seller delayed
    # another seller's order.reserved by 348 s, and 50 held up every seller.
    slow = [await destinations.listen(hold=True) for _ in range(12)]
    busy, endpoints = await _seller(sessions, [f"{o}/{n}" for o in slow for n in range(6)])
    await _events(sessions, busy, 2)  # 144 deliveries, all older than the other seller's
    assert 2 * len(endpoints) > webhooks.CANDIDATES, "more than one fill reads"
    other, _ = await _seller(sessions, [f"{await destinations.listen()}/hooks"])
    await _events(sessions, other, 1)
    dispatcher = await dispatchers()

    assert await dispatcher.send_due() == webhooks.PER_SELLER + 1, "not both sellers at once"
    others = list(await _deliveries(sessions, other))
    await eventually(lambda: destinations.answered == others, 10, "the other seller waited")
    slow_hosts = {origin.removeprefix("http://") for origin in slow}
    held = [host for host, _, _ in destinations.requests if host in slow_hosts]
    assert len(held) == webhooks.PER_SELLER, "one seller holds a few slots, not the node"
    assert destinations.in_flight.total() == webhooks.PER_SELLER, "answered while all are held"
    now = utcnow()
    claimed = [d for d in (await _deliveries(sessions, busy)).values() if d.next_attempt_at > now]
    assert len(claimed) == webhooks.PER_SELLER, "only what is sent is claimed, the rest stays due"


async def test_at_most_two_sends_at_once_to_one_destination(
    sessions: Sessions,
    destinations: Destinations,
    dispatchers: Callable[[], Awaitable[Dispatcher]],
) -> None:
    origin = await destinations.listen(hold=True)
    host = origin.removeprefix("http://")
    seller, _ = await _seller(sessions, [f"{origin}/orders", f"{origin}/streams"])
    await _events(sessions, seller, 4)  # 8 deliveries to one origin, through two endpoints
    dispatcher = await dispatchers()

    assert await dispatcher.send_due() == webhooks.PER_DESTINATION
    await eventually(
        lambda: destinations.in_flight[host] == webhooks.PER_DESTINATION, 10, "not sent at once"
    )
    assert await dispatcher.send_due() == 0, "the destination has no free slot"
    destinations.released.set()
    await eventually(lambda: len(destinations.answered) == 8, 10, "a finished send freed no slot")
    assert destinations.most[host] == webhooks.PER_DESTINATION
    assert sorted(destinations.ids()) == sorted(await _deliveries(sessions, seller)), "each once"


async def test_a_delivery_in_flight_is_not_sent_again_by_another_node(
    sessions: Sessions,
    destinations: Destinations,
    dispatchers: Callable[[], Awaitable[Dispatcher]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A claim lasted 30 s whatever the sends took: a batch sent one at a time outlived it, and
    # another node sent the rest of the batch again.
    monkeypatch.setattr(webhooks, "SEND_SECONDS", 60.0)  # longer than the old fixed lease
    origins = [await destinations.listen(hold=True) for _ in range(3)]
    seller, _ = await _seller(sessions, [f"{o}/{path}" for o in origins for path in ("a", "b")])
    await _events(sessions, seller, 1)
    one, two = await dispatchers(), await dispatchers()

    assert sum(await asyncio.gather(one.send_due(), two.send_due())) == 6
    await eventually(lambda: len(destinations.requests) == 6, 10, "not sent")
    assert await one.send_due() == 0 and await two.send_due() == 0, "sent while in flight"
    deliveries = await _deliveries(sessions, seller)
    for delivery_id, received in destinations.received_at.items():
        lease = deliveries[delivery_id].next_attempt_at
        assert lease >= received + timedelta(seconds=60), "the claim ends before the send may"
    destinations.released.set()

    async def recorded() -> bool:
        return all(d.delivered_at for d in (await _deliveries(sessions, seller)).values())

    await eventually(recorded, 10, "the results were not recorded")
    assert await one.send_due() == 0 and await two.send_due() == 0, "sent after delivery"
    assert sorted(destinations.ids()) == sorted(deliveries), "each delivery was sent once"


async def test_deliveries_carry_standard_webhooks_headers(
    sessions: Sessions,
    destinations: Destinations,
    dispatchers: Callable[[], Awaitable[Dispatcher]],
) -> None:
    seller, (secret,) = await _seller(sessions, [f"{await destinations.listen()}/hooks"])
    await _events(sessions, seller, 1)
    dispatcher = await dispatchers()

    assert await dispatcher.send_due() == 1
    await eventually(lambda: destinations.answered, 10, "not sent")
    ((_, headers, body),) = destinations.requests
    assert Webhook(standard_secret(secret)).verify(body, headers) == json.loads(body)
    assert headers["webhook-id"] == headers["Shopcast-Event-Id"] == json.loads(body)["id"]
    assert int(headers["webhook-timestamp"]) == signed_at(headers["Shopcast-Signature"])
    assert verify([secret], headers["Shopcast-Signature"], body), "the deprecated header signs"
    tampered = body.replace(b'"n":0', b'"n":1')
    assert tampered != body
    for key, signed in ((secrets.token_hex(32), body), (secret, tampered)):
        with pytest.raises(WebhookVerificationError):
            Webhook(standard_secret(key)).verify(signed, headers)
