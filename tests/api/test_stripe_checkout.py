"""Stripe Checkout on both engines: sessions, signed events, refunds and the holds around them.

The Stripe SDK in the app is the real one; the API it calls is a local stand-in
(``tests/stripe_api.py``), since Stripe cannot be reached from here. The stand-in answers as
Stripe documents (objects, errors, idempotent replays, the 30 minute to 24 hour rule for a
session's end) and signs events exactly as Stripe does, which the app verifies with the SDK's
``stripe.Webhook.construct_event``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import pytest
import stripe
from aiohttp.test_utils import TestClient
from pydantic import SecretStr
from sqlalchemy import select, update

from api.commerce.checkout import TIME_TO_PAY
from api.commerce.holds import HoldExpiry
from api.commerce.models import Order, StripeEvent
from api.db import utcnow
from api.web.context import SERVICES, StripeAccount
from api.webhooks.models import WebhookDelivery, WebhookEndpoint
from server.app import build_app
from server.settings import Settings
from tests.api.test_commerce import buy, live_show
from tests.conftest import Account, Shop, eventually, expect_error
from tests.stripe_api import StripeStandIn

Client = TestClient[Any, Any]
DELIVERY = {"name": "Ann Buyer", "line1": "1 Main St", "city": "Berlin", "postal_code": "10115",
            "country": "DE"}  # fmt: skip
SESSIONS = "/v1/checkout/sessions"


@pytest.fixture
async def stripe_api() -> AsyncIterator[StripeStandIn]:
    async with StripeStandIn() as api:
        yield api


@pytest.fixture
def settings(settings: Settings, stripe_api: StripeStandIn) -> Settings:
    return settings.model_copy(
        update={
            "stripe_api_base": stripe_api.url,
            "stripe_secret_key": SecretStr(stripe_api.api_key),
            "stripe_webhook_secret": SecretStr(stripe_api.webhook_secret),
        }
    )


@pytest.fixture
async def without_stripe(
    settings: Settings, aiohttp_client: Callable[..., Awaitable[Client]]
) -> Client:
    """A second node on the same database, with no Stripe account configured."""
    plain = settings.model_copy(
        update={"stripe_secret_key": SecretStr(""), "stripe_webhook_secret": SecretStr("")}
    )
    return await aiohttp_client(build_app(plain))


async def stripe_show(
    client: Client, shop: Shop, *, products: int = 1, stock: int = 10
) -> tuple[Account, str, list[str]]:
    """A live show whose seller takes Stripe Checkout."""
    seller, sid, ids = await live_show(client, shop, stock=stock, products=products)
    chosen = await client.put(
        "/api/v1/me/checkout", json={"checkout": "stripe"}, headers=seller.auth
    )
    assert chosen.status == 200, await chosen.text()
    return seller, sid, ids


async def hooked(client: Client, seller: Account) -> None:
    """The seller's shop hears its webhooks (the test counts the events queued for it)."""
    hook = {"url": "https://shop.example/hook"}
    assert (await client.post("/api/v1/webhooks", json=hook, headers=seller.auth)).status == 201


async def buyer_of(client: Client, shop: Shop) -> Account:
    """A buyer whose delivery details are on the account, and so on each of their orders."""
    account = await shop.account()
    response = await client.put("/api/v1/me/delivery", json=DELIVERY, headers=account.auth)
    assert response.status == 200, await response.text()
    return account


async def reserve(
    client: Client, sid: str, buyer: Account, pid: str, quantity: int = 1
) -> dict[str, Any]:
    response = await buy(client, sid, buyer, pid, quantity)
    assert response.status == 201, await response.text()
    return dict(await response.json())


def pay(client: Client, buyer: Account, *order_ids: str) -> Any:
    return client.post("/api/v1/checkout", json={"order_ids": list(order_ids)}, headers=buyer.auth)


async def opened(client: Client, buyer: Account, *order_ids: str) -> dict[str, Any]:
    response = await pay(client, buyer, *order_ids)
    assert response.status == 201, await response.text()
    return dict(await response.json())


def post_event(client: Client, body: bytes, signature: str | None) -> Any:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["Stripe-Signature"] = signature
    return client.post("/api/v1/stripe/webhook", data=body, headers=headers)


async def send(client: Client, stripe_api: StripeStandIn, event: dict[str, Any]) -> dict[str, Any]:
    response = await post_event(client, *stripe_api.sign(event))
    assert response.status == 200, await response.text()
    return dict(await response.json())


async def order(client: Client, account: Account, order_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/orders/{order_id}", headers=account.auth)
    assert response.status == 200, await response.text()
    return dict(await response.json())


async def stock_of(client: Client, product_id: str) -> int:
    return int((await (await client.get(f"/api/v1/products/{product_id}")).json())["stock"])


async def session_of(client: Client, order_id: str) -> str | None:
    async with client.app[SERVICES].reads.begin() as session:
        return await session.scalar(select(Order.checkout_session_id).where(Order.id == order_id))


async def webhook_events(client: Client, seller: Account) -> list[str]:
    async with client.app[SERVICES].reads.begin() as session:
        rows = await session.scalars(
            select(WebhookDelivery.event)
            .join(WebhookEndpoint)
            .where(WebhookEndpoint.owner_id == seller.id)
            .order_by(WebhookDelivery.created_at)
        )
        return list(rows)


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def hold_until(client: Client, order_id: str, until: datetime) -> None:
    """Move an order's hold, as if it had been placed earlier."""
    async with client.app[SERVICES].sessions.begin() as session:
        await session.execute(
            update(Order).where(Order.id == order_id).values(hold_expires_at=until)
        )


def sweeper(client: Client, account: StripeAccount | None = None) -> HoldExpiry:
    """A node's hold sweeper on the app's database and (unless told) its Stripe account, swept
    by hand at the instants a test names."""
    services = client.app[SERVICES]
    return HoldExpiry(
        services.sessions,
        services.rooms,
        reads=services.reads,
        stripe=account or services.stripe,
    )


def closes(stripe_api: StripeStandIn, session_id: str) -> list[Any]:
    """The expire calls Stripe got for the session."""
    return stripe_api.calls("POST", f"{SESSIONS}/{session_id}/expire")


@asynccontextmanager
async def unreachable_stripe(stripe_api: StripeStandIn) -> AsyncIterator[StripeAccount]:
    """The Stripe account as a node that cannot reach Stripe has it: nothing listens there."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    http = stripe.AIOHTTPClient()
    client = stripe.StripeClient(
        stripe_api.api_key, base_addresses={"api": f"http://127.0.0.1:{port}"}, http_client=http
    )
    try:
        yield StripeAccount(client, SecretStr(stripe_api.webhook_secret))
    finally:
        await http.close_async()  # type: ignore[no-untyped-call]  # unannotated in the SDK


async def test_a_seller_chooses_stripe_checkout(
    client: Client, shop: Shop, without_stripe: Client
) -> None:
    seller, viewer = await shop.account("seller"), await shop.account()
    url = "/api/v1/me/checkout"
    chosen = await client.put(url, json={"checkout": "stripe"}, headers=seller.auth)
    assert chosen.status == 200
    body = await chosen.json()
    assert (body["id"], body["checkout"], body["role"]) == (seller.id, "stripe", "seller")
    me = await (await client.get("/api/v1/me", headers=seller.auth)).json()
    assert me["checkout"] == "stripe"
    async with shop.unchanged():
        refused = await without_stripe.put(url, json={"checkout": "stripe"}, headers=seller.auth)
        await expect_error(refused, 409, "stripe_unavailable")
        await expect_error(
            await client.put(url, json={"checkout": "shop"}, headers=viewer.auth), 403, "forbidden"
        )
        await expect_error(
            await client.put(url, json={"checkout": "paypal"}, headers=seller.auth), 422, "invalid"
        )
        await expect_error(await client.put(url, json={"checkout": "shop"}), 401, "unauthorized")
    back = await without_stripe.put(url, json={"checkout": "pay_later"}, headers=seller.auth)
    assert (await back.json())["checkout"] == "pay_later"


async def test_checkout_opens_one_session_for_the_reserved_orders(
    client: Client, shop: Shop, stripe_api: StripeStandIn
) -> None:
    _, sid, (mug, cup) = await stripe_show(client, shop, products=2)
    buyer = await buyer_of(client, shop)
    first = await reserve(client, sid, buyer, mug, quantity=2)
    second = await reserve(client, sid, buyer, cup)
    before = time.time()
    checkout = await opened(client, buyer, first["id"], second["id"])
    assert checkout["session_id"].startswith("cs_test_")
    assert checkout["url"] == stripe_api.sessions[checkout["session_id"]]["url"]

    (created,) = stripe_api.calls("POST", SESSIONS)
    params = created.params
    assert params["mode"] == "payment"
    assert params["line_items"] == [
        {
            "quantity": "2",
            "price_data": {
                "currency": "usd",
                "unit_amount": "2500",
                "product_data": {"name": "P0"},
            },
        },
        {
            "quantity": "1",
            "price_data": {
                "currency": "usd",
                "unit_amount": "2500",
                "product_data": {"name": "P1"},
            },
        },
    ]
    assert params["metadata"] == {"order_ids": f"{first['id']},{second['id']}"}
    assert params["payment_intent_data"]["metadata"] == params["metadata"]
    assert (params["customer_email"], params["client_reference_id"]) == (buyer.email, buyer.id)
    assert params["success_url"] == "http://shopcast.test/orders?checkout={CHECKOUT_SESSION_ID}"
    assert params["cancel_url"] == f"http://shopcast.test/watch/{sid}"
    assert created.idempotency_key and created.idempotency_key.startswith("shopcast-checkout-")
    assert stripe_api.sessions[checkout["session_id"]]["amount_total"] == 7500

    # Stripe's session lasts at least 30 minutes; the orders keep their own 10-minute holds.
    ends = instant(checkout["expires_at"])
    assert int(params["expires_at"]) == int(ends.timestamp())
    assert before + 30 * 60 < ends.timestamp() < time.time() + 32 * 60
    for placed in (first, second):
        held = instant((await order(client, buyer, placed["id"]))["hold_expires_at"])
        assert held == instant(placed["hold_expires_at"]) < ends - timedelta(minutes=20)
        assert await session_of(client, placed["id"]) == checkout["session_id"]
    assert instant(checkout["hold_expires_at"]) == instant(first["hold_expires_at"])

    # Asked again while the session is open: the same session, found at Stripe.
    async with shop.unchanged():
        again = await opened(client, buyer, second["id"], first["id"])
    assert again == checkout
    assert len(stripe_api.calls("POST", SESSIONS)) == 1
    assert len(stripe_api.calls("GET", f"{SESSIONS}/{checkout['session_id']}")) == 1


async def test_two_checkouts_at_once_make_one_session(
    client: Client, shop: Shop, stripe_api: StripeStandIn
) -> None:
    _, sid, (pid,) = await stripe_show(client, shop)
    buyer = await buyer_of(client, shop)
    placed = await reserve(client, sid, buyer, pid)
    if time.time() % 60 > 55:  # a session ends on a whole minute: stay inside this one
        await asyncio.sleep(60 - time.time() % 60 + 0.5)
    answers = await asyncio.gather(
        pay(client, buyer, placed["id"]), pay(client, buyer, placed["id"])
    )
    bodies = [await answer.json() for answer in answers]
    assert [answer.status for answer in answers] == [201, 201], bodies
    assert bodies[0] == bodies[1]
    creates = stripe_api.calls("POST", SESSIONS)
    assert len({create.idempotency_key for create in creates}) == 1
    assert list(stripe_api.sessions) == [bodies[0]["session_id"]]


async def test_a_paid_session_pays_its_orders_once(
    client: Client, shop: Shop, stripe_api: StripeStandIn, viewers: Any
) -> None:
    seller, sid, (pid,) = await stripe_show(client, shop)
    await hooked(client, seller)
    buyer = await buyer_of(client, shop)
    page = await viewers(buyer)
    first, second = (
        await reserve(client, sid, buyer, pid, 2),
        await reserve(client, sid, buyer, pid),
    )
    checkout = await opened(client, buyer, first["id"], second["id"])
    event = stripe_api.complete(checkout["session_id"])
    intent = stripe_api.sessions[checkout["session_id"]]["payment_intent"]

    # Stripe delivers at least once: the same event twice at the same time, then again.
    answers = await asyncio.gather(send(client, stripe_api, event), send(client, stripe_api, event))
    assert sorted(answer["duplicate"] for answer in answers) == [False, True]
    assert (await send(client, stripe_api, event))["duplicate"] is True

    for placed in (first, second):
        paid = await order(client, buyer, placed["id"])
        assert (paid["status"], paid["payment_method"]) == ("paid", "stripe")
        assert paid["paid_at"] is not None
    async with client.app[SERVICES].reads.begin() as session:
        refs = await session.scalars(select(Order.payment_ref).where(Order.buyer_id == buyer.id))
        assert set(refs) == {intent}
        assert await session.scalar(select(StripeEvent.type).where(StripeEvent.id == event["id"]))
    events = await webhook_events(client, seller)
    assert events.count("order.paid") == 2 and events.count("order.reserved") == 2
    summary = await (
        await client.get(f"/api/v1/streams/{sid}/analytics", headers=seller.auth)
    ).json()
    assert summary["products"][0]["purchases"] == 3
    await page.wait_for("order:status", lambda o: o["id"] == first["id"] and o["status"] == "paid")
    assert stripe_api.refunds == []


async def test_a_bad_signature_changes_nothing(
    client: Client, shop: Shop, stripe_api: StripeStandIn
) -> None:
    _, sid, (pid,) = await stripe_show(client, shop)
    buyer = await buyer_of(client, shop)
    placed = await reserve(client, sid, buyer, pid)
    checkout = await opened(client, buyer, placed["id"])
    event = stripe_api.complete(checkout["session_id"])
    body, signature = stripe_api.sign(event)
    tampered = body.replace(b'"paid"', b'"PAID"')
    forged = stripe_api.sign(event, secret="whsec_someone_else")
    stale = stripe_api.sign(event, timestamp=int(time.time()) - 600)
    not_json = b"{not json"
    async with shop.unchanged():
        for payload, header in (
            (body, None),
            (body, ""),
            (body, "t=1,v0=abc"),
            (body, "garbage"),
            (tampered, signature),
            forged,
            stale,
            (not_json, stripe_api.sign(event)[1]),
            stripe_api.sign_raw(not_json),
            stripe_api.sign_raw(b"\xff\xfe"),
        ):
            await expect_error(await post_event(client, payload, header), 400, "invalid_signature")
    assert (await order(client, buyer, placed["id"]))["status"] == "reserved"
    assert (await send(client, stripe_api, event))["duplicate"] is False
    assert (await order(client, buyer, placed["id"]))["status"] == "paid"


async def test_a_hold_about_to_run_out_gets_the_time_to_pay_once(
    client: Client, shop: Shop, stripe_api: StripeStandIn, viewers: Any
) -> None:
    _, sid, (pid,) = await stripe_show(client, shop)
    buyer = await buyer_of(client, shop)
    page = await viewers(buyer)
    first = await reserve(client, sid, buyer, pid)
    await hold_until(client, first["id"], utcnow() + timedelta(minutes=1))
    before = utcnow()
    alone = await opened(client, buyer, first["id"])
    held = instant((await order(client, buyer, first["id"]))["hold_expires_at"])
    assert before + TIME_TO_PAY <= held <= utcnow() + TIME_TO_PAY
    assert instant(alone["hold_expires_at"]) == held
    await page.wait_for(
        "order:status", lambda o: o["id"] == first["id"] and instant(o["hold_expires_at"]) == held
    )

    # Once per order: a new session for it and one more order leaves its hold as it is.
    second = await reserve(client, sid, buyer, pid)
    soon = utcnow() + timedelta(minutes=1)
    await hold_until(client, first["id"], soon)
    together = await opened(client, buyer, first["id"], second["id"])
    assert together["session_id"] != alone["session_id"]
    assert instant((await order(client, buyer, first["id"]))["hold_expires_at"]) == soon
    later = instant((await order(client, buyer, second["id"]))["hold_expires_at"])
    assert later == instant(second["hold_expires_at"])
    assert instant(together["hold_expires_at"]) == soon  # the first to run out


async def test_at_the_holds_end_the_sweeper_closes_the_session_then_gives_the_units_back(
    client: Client, shop: Shop, stripe_api: StripeStandIn, viewers: Any
) -> None:
    seller, sid, (pid,) = await stripe_show(client, shop)
    await hooked(client, seller)
    buyer = await buyer_of(client, shop)
    page = await viewers(buyer)
    in_checkout, plain = (
        await reserve(client, sid, buyer, pid, 2),
        await reserve(client, sid, buyer, pid),
    )
    session_id = (await opened(client, buyer, in_checkout["id"]))["session_id"]
    held = instant(in_checkout["hold_expires_at"])
    holds = sweeper(client)
    assert await holds.sweep(held - timedelta(seconds=1)) == 0
    assert closes(stripe_api, session_id) == []
    assert await stock_of(client, pid) == 7

    # Both holds ran out: the session is closed at Stripe, once, and then both orders expire.
    assert await holds.sweep(held + timedelta(seconds=1)) == 2
    assert len(closes(stripe_api, session_id)) == 1
    assert stripe_api.sessions[session_id]["status"] == "expired"
    for placed in (in_checkout, plain):
        assert (await order(client, buyer, placed["id"]))["status"] == "expired"
    assert await stock_of(client, pid) == 10
    await page.wait_for(
        "order:status", lambda o: o["id"] == in_checkout["id"] and o["status"] == "expired"
    )

    # Later sweeps, here or on another node, have nothing left to do and ask Stripe nothing.
    assert await holds.sweep(held + timedelta(minutes=1)) == 0
    assert await sweeper(client).sweep(held + timedelta(minutes=11)) == 0
    assert len(closes(stripe_api, session_id)) == 1
    assert (await webhook_events(client, seller)).count("order.cancelled") == 2


async def test_two_nodes_sweeping_at_once_expire_each_order_once(
    client: Client, shop: Shop, stripe_api: StripeStandIn
) -> None:
    seller, sid, (pid,) = await stripe_show(client, shop)
    await hooked(client, seller)
    buyer = await buyer_of(client, shop)
    first, second = (
        await reserve(client, sid, buyer, pid, 2),
        await reserve(client, sid, buyer, pid),
    )
    session_id = (await opened(client, buyer, first["id"], second["id"]))["session_id"]
    at = instant(second["hold_expires_at"]) + timedelta(seconds=1)
    counts = await asyncio.gather(sweeper(client).sweep(at), sweeper(client).sweep(at))
    assert sum(counts) == 2
    # Each node may have closed the session; Stripe's "already expired" is success for the last.
    assert 1 <= len(closes(stripe_api, session_id)) <= 2
    assert stripe_api.sessions[session_id]["status"] == "expired"
    assert await stock_of(client, pid) == 10
    assert (await webhook_events(client, seller)).count("order.cancelled") == 2


async def test_a_session_paid_as_the_hold_ran_out_is_left_to_its_event(
    client: Client, shop: Shop, stripe_api: StripeStandIn
) -> None:
    _, sid, (pid,) = await stripe_show(client, shop)
    buyer = await buyer_of(client, shop)
    placed = await reserve(client, sid, buyer, pid, 2)
    session_id = (await opened(client, buyer, placed["id"]))["session_id"]
    held = instant(placed["hold_expires_at"])
    event = stripe_api.complete(session_id)  # paid a moment ago; the event is on its way
    holds = sweeper(client)
    assert await holds.sweep(held + timedelta(seconds=1)) == 0
    assert len(closes(stripe_api, session_id)) == 1  # refused: it is complete
    assert stripe_api.sessions[session_id]["status"] == "complete"
    assert (await order(client, buyer, placed["id"]))["status"] == "reserved"
    assert await stock_of(client, pid) == 8
    # Stripe said it is paid: this node does not ask again while it waits for the event.
    assert await holds.sweep(held + timedelta(minutes=1)) == 0
    assert len(closes(stripe_api, session_id)) == 1
    assert len(stripe_api.calls("GET", f"{SESSIONS}/{session_id}")) == 1

    assert (await send(client, stripe_api, event))["duplicate"] is False
    paid = await order(client, buyer, placed["id"])
    assert (paid["status"], paid["payment_method"]) == ("paid", "stripe")
    assert await holds.sweep(held + timedelta(minutes=11)) == 0
    assert await stock_of(client, pid) == 8
    assert stripe_api.refunds == []


async def test_while_stripe_cannot_be_reached_the_units_stay_held_until_the_grace(
    client: Client, shop: Shop, stripe_api: StripeStandIn
) -> None:
    _, sid, (pid,) = await stripe_show(client, shop)
    buyer = await buyer_of(client, shop)
    placed = await reserve(client, sid, buyer, pid)
    session_id = (await opened(client, buyer, placed["id"]))["session_id"]
    held = instant(placed["hold_expires_at"])
    async with unreachable_stripe(stripe_api) as account:
        holds = sweeper(client, account)
        for after in (timedelta(seconds=1), timedelta(minutes=9, seconds=59)):
            assert await holds.sweep(held + after) == 0  # it could have been paid: ask again
            assert (await order(client, buyer, placed["id"]))["status"] == "reserved"
            assert await stock_of(client, pid) == 9
        # The grace is over: the order expires, though Stripe never heard of it.
        assert await holds.sweep(held + timedelta(minutes=10, seconds=1)) == 1
    assert (await order(client, buyer, placed["id"]))["status"] == "expired"
    assert await stock_of(client, pid) == 10
    assert closes(stripe_api, session_id) == []
    assert stripe_api.sessions[session_id]["status"] == "open"

    # Paid on the page that stayed open: the money goes back, the order stays expired.
    await send(client, stripe_api, stripe_api.complete(session_id))
    assert (await order(client, buyer, placed["id"]))["status"] == "expired"
    intent = stripe_api.sessions[session_id]["payment_intent"]
    assert [(r["payment_intent"], r["amount"]) for r in stripe_api.refunds] == [(intent, 2500)]


async def test_stripes_expired_event_after_the_sweeper_changes_nothing(
    client: Client, shop: Shop, stripe_api: StripeStandIn, viewers: Any
) -> None:
    seller, sid, (pid,) = await stripe_show(client, shop)
    await hooked(client, seller)
    buyer = await buyer_of(client, shop)
    placed = await reserve(client, sid, buyer, pid, 3)
    session_id = (await opened(client, buyer, placed["id"]))["session_id"]
    sweep_at = instant(placed["hold_expires_at"]) + timedelta(seconds=1)
    assert await sweeper(client).sweep(sweep_at) == 1
    page = await viewers(buyer)
    before = await shop.snapshot()
    event = stripe_api.event("checkout.session.expired", stripe_api.sessions[session_id])
    assert (await send(client, stripe_api, event))["duplicate"] is False
    after = await shop.snapshot()
    assert len(after.pop("stripe_events")) == len(before.pop("stripe_events")) + 1
    assert after == before
    assert (await webhook_events(client, seller)).count("order.cancelled") == 1
    assert await stock_of(client, pid) == 10
    await asyncio.sleep(0.3)  # what the event's commit would have announced
    assert page.received("order:status") == []


async def test_an_expired_session_gives_back_the_units_of_holds_that_ran_out(
    client: Client, shop: Shop, stripe_api: StripeStandIn, viewers: Any
) -> None:
    seller, sid, (pid,) = await stripe_show(client, shop, stock=5)
    await hooked(client, seller)
    buyer = await buyer_of(client, shop)
    page = await viewers(buyer)
    placed, other = (
        await reserve(client, sid, buyer, pid, 3),
        await reserve(client, sid, buyer, pid),
    )
    session_id = (await opened(client, buyer, placed["id"]))["session_id"]
    other_session = (await opened(client, buyer, other["id"]))["session_id"]
    assert await stock_of(client, pid) == 1
    # Expired at Stripe while the hold runs (from its dashboard, say): the units stay held,
    # and the buyer may open another checkout for them.
    event = stripe_api.expire(session_id)
    assert (await send(client, stripe_api, event))["duplicate"] is False
    assert (await order(client, buyer, placed["id"]))["status"] == "reserved"
    assert await stock_of(client, pid) == 1

    # Expired with its hold run out: Stripe's event or this node's own sweeper, whichever is
    # first, gives the units back, once.
    await hold_until(client, other["id"], utcnow() - timedelta(seconds=1))
    assert (await send(client, stripe_api, stripe_api.expire(other_session)))["duplicate"] is False
    assert (await order(client, buyer, other["id"]))["status"] == "expired"
    assert await stock_of(client, pid) == 2
    await page.wait_for(
        "order:status", lambda o: o["id"] == other["id"] and o["status"] == "expired"
    )

    # The first hold runs out: the sweeper finds its session already expired at Stripe (Stripe
    # refuses to expire it again), which is as good as closing it.
    assert (
        await sweeper(client).sweep(instant(placed["hold_expires_at"]) + timedelta(seconds=1)) == 1
    )
    assert len(closes(stripe_api, session_id)) == 1
    assert (await order(client, buyer, placed["id"]))["status"] == "expired"
    assert await stock_of(client, pid) == 5
    assert (await webhook_events(client, seller)).count("order.cancelled") == 2
    async with shop.unchanged():
        assert (await send(client, stripe_api, event))["duplicate"] is True
        await expect_error(await pay(client, buyer, placed["id"]), 409, "invalid_status")
    # Other events are acknowledged, and change no order.
    other_event = stripe_api.event("payment_intent.created", {"id": "pi_test_1"})
    assert (await send(client, stripe_api, other_event))["duplicate"] is False
    assert (await order(client, buyer, placed["id"]))["status"] == "expired"
    assert await stock_of(client, pid) == 5


async def test_the_seller_cancelling_a_stripe_paid_order_refunds_it(
    client: Client, shop: Shop, stripe_api: StripeStandIn
) -> None:
    seller, sid, (pid,) = await stripe_show(client, shop)
    buyer = await buyer_of(client, shop)
    first, second = (
        await reserve(client, sid, buyer, pid, 2),
        await reserve(client, sid, buyer, pid),
    )
    checkout = await opened(client, buyer, first["id"], second["id"])
    await send(client, stripe_api, stripe_api.complete(checkout["session_id"]))
    intent = stripe_api.sessions[checkout["session_id"]]["payment_intent"]

    cancelled = await client.post(f"/api/v1/orders/{first['id']}/cancel", headers=seller.auth)
    assert cancelled.status == 200, await cancelled.text()
    assert (await cancelled.json())["status"] == "cancelled"
    assert [(r["payment_intent"], r["amount"]) for r in stripe_api.refunds] == [(intent, 5000)]
    (refund,) = stripe_api.calls("POST", "/v1/refunds")
    assert refund.idempotency_key == f"shopcast-refund-{first['id']}"
    assert await stock_of(client, pid) == 9

    async with shop.unchanged():
        again = await client.post(f"/api/v1/orders/{first['id']}/cancel", headers=seller.auth)
        await expect_error(again, 409, "invalid_status")
        # Stripe refuses the refund: the order stays paid.
        stripe_api.fail_next(402, "The refund could not be made")
        refused = await client.post(f"/api/v1/orders/{second['id']}/cancel", headers=seller.auth)
        body = await expect_error(refused, 502, "payment_provider")
        assert "Stripe" in body["message"]
    assert len(stripe_api.refunds) == 1
    assert (await order(client, buyer, second["id"]))["status"] == "paid"


async def test_a_payment_for_orders_no_longer_reserved_is_refunded(
    client: Client, shop: Shop, stripe_api: StripeStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    _, sid, (pid,) = await stripe_show(client, shop)
    buyer = await buyer_of(client, shop)
    kept, dropped = (
        await reserve(client, sid, buyer, pid, 2),
        await reserve(client, sid, buyer, pid),
    )
    both = await opened(client, buyer, kept["id"], dropped["id"])
    cancel = await client.post(f"/api/v1/orders/{dropped['id']}/cancel", headers=buyer.auth)
    assert cancel.status == 200
    caplog.set_level(logging.WARNING, logger="api.commerce")
    await send(client, stripe_api, stripe_api.complete(both["session_id"]))
    intent = stripe_api.sessions[both["session_id"]]["payment_intent"]
    assert (await order(client, buyer, kept["id"]))["status"] == "paid"
    assert (await order(client, buyer, dropped["id"]))["status"] == "cancelled"
    assert [(r["payment_intent"], r["amount"]) for r in stripe_api.refunds] == [(intent, 2500)]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len([w for w in warnings if "refunding" in w]) == 1
    assert stripe_api.api_key not in caplog.text and stripe_api.webhook_secret not in caplog.text


async def test_a_new_session_for_more_orders_replaces_the_open_one(
    client: Client, shop: Shop, stripe_api: StripeStandIn
) -> None:
    _, sid, (pid,) = await stripe_show(client, shop)
    buyer = await buyer_of(client, shop)
    first = await reserve(client, sid, buyer, pid)
    alone = await opened(client, buyer, first["id"])
    second = await reserve(client, sid, buyer, pid)
    together = await opened(client, buyer, first["id"], second["id"])
    assert together["session_id"] != alone["session_id"]
    assert stripe_api.sessions[alone["session_id"]]["status"] == "expired"
    assert stripe_api.sessions[together["session_id"]]["amount_total"] == 5000
    # Had the buyer paid the replaced session in time, that money would go back.
    stripe_api.sessions[alone["session_id"]]["status"] = "open"
    await send(client, stripe_api, stripe_api.complete(alone["session_id"]))
    assert [r["amount"] for r in stripe_api.refunds] == [2500]
    assert (await order(client, buyer, first["id"]))["status"] == "reserved"
    await send(client, stripe_api, stripe_api.complete(together["session_id"]))
    assert (await order(client, buyer, first["id"]))["status"] == "paid"
    assert (await order(client, buyer, second["id"]))["status"] == "paid"
    assert len(stripe_api.refunds) == 1


async def test_checkout_refusals_change_nothing(
    client: Client, shop: Shop, stripe_api: StripeStandIn, without_stripe: Client
) -> None:
    seller, sid, (pid,) = await stripe_show(client, shop)
    buyer, stranger = await buyer_of(client, shop), await buyer_of(client, shop)
    placed = await reserve(client, sid, buyer, pid)
    paid = await reserve(client, sid, buyer, pid)
    assert (
        await client.post(f"/api/v1/orders/{paid['id']}/pay", headers=seller.auth)
    ).status == 200
    nowhere = await shop.account()  # no delivery details yet
    no_delivery = await reserve(client, sid, nowhere, pid)
    _, other_sid, (other_pid,) = await stripe_show(client, shop)
    elsewhere = await reserve(client, other_sid, buyer, other_pid)
    _, later_sid, (later_pid,) = await live_show(client, shop)
    pay_later = await reserve(client, later_sid, buyer, later_pid)
    # A hold that ran out in a session Stripe says is paid, its event not here yet: the app's
    # sweeper asks Stripe once, then leaves it for the event (any other is swept at once).
    latecomer = await buyer_of(client, shop)  # purchases are rate-limited per buyer
    late = await reserve(client, sid, latecomer, pid)
    late_session = (await opened(client, latecomer, late["id"]))["session_id"]
    stripe_api.complete(late_session)
    await hold_until(client, late["id"], utcnow() - timedelta(seconds=1))
    await eventually(
        lambda: stripe_api.calls("GET", f"{SESSIONS}/{late_session}"), 5, "no sweep asked Stripe"
    )
    refusals: list[tuple[Any, int, str]] = [
        (pay(client, stranger, placed["id"]), 404, "not_found"),
        (pay(client, buyer, placed["id"], "no-such-order"), 404, "not_found"),
        (pay(client, buyer, placed["id"], paid["id"]), 409, "invalid_status"),
        (pay(client, latecomer, late["id"]), 409, "hold_expired"),
        (pay(client, buyer, placed["id"], elsewhere["id"]), 409, "mixed_sellers"),
        (pay(client, buyer, pay_later["id"]), 409, "checkout_unavailable"),
        (pay(without_stripe, buyer, placed["id"]), 409, "checkout_unavailable"),
        (pay(client, nowhere, no_delivery["id"]), 409, "delivery_required"),
        (pay(client, buyer), 422, "invalid"),
        (pay(client, buyer, placed["id"], placed["id"]), 422, "invalid"),
        (pay(client, buyer, *[f"order-{n}" for n in range(21)]), 422, "invalid"),
        (client.post("/api/v1/checkout", json={"order_ids": [placed["id"]]}), 401, "unauthorized"),
        (
            client.post("/api/v1/checkout", data=b"[]", headers=buyer.auth),
            415,
            "unsupported_media_type",
        ),
    ]
    async with shop.unchanged():
        for request, status, code in refusals:
            await expect_error(await request, status, code)
        stripe_api.fail_next(500, "Stripe had a bad moment", kind="api_error")
        stripe_api.fail_next(500, "Stripe had a bad moment", kind="api_error")
        stripe_api.fail_next(500, "Stripe had a bad moment", kind="api_error")
        body = await expect_error(await pay(client, buyer, placed["id"]), 502, "payment_provider")
        assert "Stripe" in body["message"] and "bad moment" not in body["message"]
        detail = await expect_error(
            await pay(client, nowhere, no_delivery["id"]), 409, "delivery_required"
        )
        assert detail["details"]["order_ids"] == [no_delivery["id"]]
        response = await post_event(without_stripe, *stripe_api.sign({"id": "evt_1"}))
        await expect_error(response, 409, "stripe_unavailable")
    assert len(stripe_api.calls("POST", SESSIONS)) == 1 + 3  # late's session, then 3 tries
    assert len(stripe_api.sessions) == 1
    assert await session_of(client, placed["id"]) is None


async def test_a_completed_checkout_is_not_opened_again(
    client: Client, shop: Shop, stripe_api: StripeStandIn
) -> None:
    _, sid, (pid,) = await stripe_show(client, shop)
    buyer = await buyer_of(client, shop)
    placed = await reserve(client, sid, buyer, pid)
    checkout = await opened(client, buyer, placed["id"])
    stripe_api.complete(checkout["session_id"])  # paid; the event is not here yet
    async with shop.unchanged():
        refused = await pay(client, buyer, placed["id"])
        body = await expect_error(refused, 409, "checkout_complete")
        assert body["details"]["session_id"] == checkout["session_id"]
    assert len(stripe_api.sessions) == 1


async def test_paying_on_the_session_page_pays_the_order(
    client: Client, shop: Shop, stripe_api: StripeStandIn
) -> None:
    # The stand-in's hosted page, as a browser test walks it: Pay, Stripe's event, success_url.
    _, sid, (pid,) = await stripe_show(client, shop)
    buyer = await buyer_of(client, shop)
    placed = await reserve(client, sid, buyer, pid)
    checkout = await opened(client, buyer, placed["id"])
    stripe_api.webhook_url = str(client.make_url("/api/v1/stripe/webhook"))
    async with aiohttp.ClientSession() as browser:
        async with browser.get(checkout["url"]) as page:
            assert page.status == 200 and "25.00 USD" in await page.text()
        async with browser.post(checkout["url"], allow_redirects=False) as paid:
            assert paid.status == 303
            expected = f"http://shopcast.test/orders?checkout={checkout['session_id']}"
            assert paid.headers["Location"] == expected
    assert (await order(client, buyer, placed["id"]))["status"] == "paid"
