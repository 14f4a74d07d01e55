"""Stripe Checkout: a buyer pays reserved orders of one seller on Stripe's hosted page.

``POST /checkout`` opens a Checkout Session for the orders, which keep their own holds (Stripe's
session lasts at least 30 minutes; the hold sweeper closes it when a hold runs out, in
``api.commerce.holds``). Stripe's signed events then settle them (``POST /stripe/webhook``): a
paid session pays its orders, an expired one gives back the units of those whose hold ran out.
An order is paid only by the session it names (``checkout_session_id``): money that reaches any
other session is refunded. See docs/commerce.md#stripe-checkout.

Stripe is asked before the request's write transaction begins (a precheck): on SQLite that
transaction holds the node's one write lock, which no purchase should wait on while Stripe
answers. The transaction then checks the orders again, locked, and records the session only
if they are where the precheck found them.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import stripe
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from stripe.checkout import Session
from stripe.params.checkout import SessionCreateParams

from api.accounts.schemas import UserOut
from api.accounts.users import require_role, require_user
from api.catalog.models import Product
from api.catalog.products import SELLERS
from api.commerce import holds, payments
from api.commerce.gate import GATE
from api.commerce.models import Order, OrderStatus, StripeEvent
from api.commerce.orders import mark_paid, tell_buyer
from api.commerce.schemas import CheckoutChoiceIn, CheckoutIn, CheckoutOut, StripeReceiptOut
from api.db import utcnow
from api.identity.models import Checkout, User
from api.web.context import SERVICES, Context, StripeAccount
from api.web.errors import ApiError, not_found
from api.web.routing import Api, Auth

log = logging.getLogger(__name__)
api = Api()

SESSION_LIFETIME = timedelta(minutes=31)  # Stripe takes 30 minutes to 24 hours: one to spare
# An order whose hold is about to run out when its buyer opens Checkout gets this long to pay
# (typing a card, a bank's confirmation), on its first session only, so it cannot be renewed.
TIME_TO_PAY = timedelta(minutes=5)
PAYING = frozenset({"checkout.session.completed", "checkout.session.async_payment_succeeded"})
EXPIRED = "checkout.session.expired"


@dataclass(frozen=True)
class Basket:
    """Reserved orders of one buyer from one seller who takes Stripe, oldest first."""

    orders: list[Order]
    titles: dict[str, str]  # product id -> title, the line items' names


@dataclass(frozen=True)
class Opened:
    """The session the orders go into, as the precheck leaves it for the transaction."""

    session_id: str
    url: str
    expires_at: datetime
    was_in: dict[str, str | None]  # each order's session when the precheck read it
    replaced: tuple[str, ...] = ()  # open sessions the orders leave: expired once they have


OPENED = web.RequestKey("checkout_opened", Opened)
EVENT = web.RequestKey("stripe_event", stripe.Event)


@api.route(
    "PUT",
    "/api/v1/me/checkout",
    summary="Choose how buyers pay you (sellers)",
    tag="commerce",
    body=CheckoutChoiceIn,
    response=UserOut,
    errors=(401, 403, 409, 415, 422),
    description="pay_later: you invoice, then mark orders paid; shop: your shop settles them "
    "with a signed callback; stripe: buyers pay on Stripe Checkout (409 stripe_unavailable "
    "when this server has no Stripe account).",
)
async def choose_checkout(ctx: Context, body: CheckoutChoiceIn) -> UserOut:
    seller = require_role(ctx, SELLERS, "Only sellers take payment")
    if body.checkout == Checkout.STRIPE and ctx.services.stripe is None:
        raise payments.unavailable()
    seller.checkout = body.checkout
    await ctx.session.flush()
    return UserOut.model_validate(seller)


@asynccontextmanager
async def _stripe_first(
    request: web.Request, buyer_id: str | None, params: dict[str, Any]
) -> AsyncIterator[None]:
    """Before the write transaction: check the orders as they are now, and open (or find) their
    session at Stripe."""
    services = request.app[SERVICES]
    async with services.reads.begin() as session:
        buyer = await session.get(User, buyer_id) if buyer_id else None
        basket = None
        if buyer is not None:  # else the route answers 401
            basket = await _basket(session, buyer, params["body"].order_ids, services.stripe)
    if buyer is not None and basket is not None and services.stripe is not None:
        request[OPENED] = await _open(services.stripe, services.public_url, buyer, basket)
    yield


@api.route(
    "POST",
    "/api/v1/checkout",
    summary="Pay reserved orders on Stripe Checkout",
    tag="commerce",
    status=201,
    body=CheckoutIn,
    response=CheckoutOut,
    errors=(401, 404, 409, 415, 422, 502),
    description="Send the buyer to `url`, to pay before `hold_expires_at`, when the first of "
    "the orders' holds runs out and the session is closed (the holds stay as they were; one "
    "with less than 5 minutes left gets 5 minutes, on its first session only). `expires_at` "
    "is the session's own end at Stripe, at least 30 minutes away. Asked again for the same "
    "orders while their session is open, it answers that session. 409 codes: invalid_status "
    "(an order is not reserved), hold_expired, mixed_sellers, mixed_currencies, "
    "checkout_unavailable (the seller does not take Stripe, or this server has no Stripe "
    "account), delivery_required (`details.order_ids`), checkout_complete (paid; Stripe's "
    "confirmation is on its way), checkout_changed (the orders changed meanwhile: try again). "
    "502 payment_provider: Stripe failed; nothing changed.",
    precheck=_stripe_first,
)
async def checkout(ctx: Context, body: CheckoutIn) -> CheckoutOut:
    buyer = require_user(ctx)
    opened = ctx.request[OPENED]
    basket = await _basket(ctx.session, buyer, body.order_ids, ctx.services.stripe, lock=True)
    for order in basket.orders:
        if order.checkout_session_id not in (opened.was_in[order.id], opened.session_id):
            raise ApiError(409, "checkout_changed", "These orders changed meanwhile: try again")
    pay_by = utcnow() + TIME_TO_PAY
    for order in basket.orders:
        if order.checkout_session_id == opened.session_id:
            continue
        first = order.checkout_session_id is None
        order.checkout_session_id = opened.session_id
        if first and order.hold_expires_at < pay_by:
            order.hold_expires_at = pay_by
            tell_buyer(ctx, order)  # the page's countdown shows the time to pay
    if opened.replaced and ctx.services.stripe is not None:
        ctx.after_commit(partial(_expire_all, ctx.services.stripe, opened.replaced))
    return CheckoutOut(
        session_id=opened.session_id,
        url=opened.url,
        expires_at=opened.expires_at,
        hold_expires_at=min(order.hold_expires_at for order in basket.orders),
    )


async def _basket(
    session: AsyncSession,
    buyer: User,
    ids: Sequence[str],
    account: StripeAccount | None,
    *,
    lock: bool = False,
) -> Basket:
    """The buyer's orders ``ids``, or the refusal of the first rule they break."""
    query = (
        select(Order, Product.title)
        .join(Product, Product.id == Order.product_id)
        .where(Order.id.in_(ids), Order.buyer_id == buyer.id)
        .order_by(Order.created_at, Order.id)
    )
    rows = (await session.execute(query.with_for_update(of=Order) if lock else query)).all()
    if len(rows) != len(ids):
        raise not_found("Order")
    orders = [order for order, _ in rows]
    sellers = {order.seller_id for order in orders}
    seller = await session.get(User, next(iter(sellers)))
    _check(orders, len(sellers) == 1 and seller is not None and _takes_stripe(seller, account))
    return Basket(orders, {order.product_id: title for order, title in rows})


def _takes_stripe(seller: User, account: StripeAccount | None) -> bool:
    return seller.checkout == Checkout.STRIPE and account is not None


def _check(orders: list[Order], stripe_seller: bool) -> None:
    now = utcnow()
    for order in orders:
        if order.status != OrderStatus.RESERVED:
            raise ApiError(
                409,
                "invalid_status",
                f"The order is {order.status}",
                {"order_id": order.id, "status": order.status},
            )
    late = [order.id for order in orders if order.hold_expires_at <= now]
    if late:
        raise ApiError(409, "hold_expired", "The hold ran out: buy again", {"order_ids": late})
    if len({order.seller_id for order in orders}) > 1:
        raise ApiError(409, "mixed_sellers", "Check out one seller's orders at a time")
    if not stripe_seller:
        raise ApiError(
            409, "checkout_unavailable", "This seller does not take payment on Stripe Checkout"
        )
    if len({order.currency for order in orders}) > 1:
        raise ApiError(409, "mixed_currencies", "Check out orders of one currency at a time")
    missing = [order.id for order in orders if order.delivery is None]
    if missing:
        raise ApiError(
            409, "delivery_required", "Give your delivery details first", {"order_ids": missing}
        )


async def _open(account: StripeAccount, public_url: str, buyer: User, basket: Basket) -> Opened:
    """The open session that pays exactly these orders, or a new one."""
    ids = {order.id for order in basket.orders}
    was_in = {order.id: order.checkout_session_id for order in basket.orders}
    replaced = []
    for session_id in sorted({s for s in was_in.values() if s is not None}):
        found = await payments.find_session(account, session_id)
        if found.status == "complete":
            raise ApiError(
                409,
                "checkout_complete",
                "These orders are paid: Stripe's confirmation is on its way",
                {"session_id": session_id},
            )
        if found.status != "open":
            continue
        if set(was_in.values()) == {session_id} and _pays(found) == ids and found.url:
            return Opened(found.id, found.url, _instant(found.expires_at), was_in)
        replaced.append(session_id)
    ends = _next_minute(utcnow() + SESSION_LIFETIME)
    params = _session_params(public_url, buyer, basket, ends)
    created = await payments.open_session(account, params, _key(ids, was_in, ends))
    if not created.url:
        raise ApiError(502, "payment_provider", "Stripe opened a checkout without a page")
    return Opened(created.id, created.url, _instant(created.expires_at), was_in, tuple(replaced))


def _session_params(
    public_url: str, buyer: User, basket: Basket, ends: datetime
) -> SessionCreateParams:
    names = ",".join(order.id for order in basket.orders)  # 20 ids fit Stripe's 500 characters
    return {
        "mode": "payment",
        "line_items": [
            {
                "quantity": order.quantity,
                "price_data": {
                    "currency": order.currency.lower(),
                    "unit_amount": order.unit_price_cents,
                    "product_data": {"name": basket.titles[order.product_id]},
                },
            }
            for order in basket.orders
        ],
        "customer_email": buyer.email,
        "client_reference_id": buyer.id,
        "metadata": {"order_ids": names},
        "payment_intent_data": {"metadata": {"order_ids": names}},
        "success_url": f"{public_url}/orders?checkout={{CHECKOUT_SESSION_ID}}",
        "cancel_url": f"{public_url}/watch/{basket.orders[-1].stream_id}",
        "expires_at": int(ends.timestamp()),
    }


def _key(ids: set[str], was_in: dict[str, str | None], ends: datetime) -> str:
    """Stripe's Idempotency-Key: a retry replays the session only with the same parameters,
    so the key names all that varies in them, the session's end included. Ends fall on whole
    minutes: a retry within the minute gets the same session; a later one a new session, and
    the first, whose page no one was sent to, expires unpaid."""
    earlier = sorted({s for s in was_in.values() if s is not None})
    spelled = "|".join([",".join(sorted(ids)), ",".join(earlier), str(int(ends.timestamp()))])
    return "shopcast-checkout-" + hashlib.sha256(spelled.encode()).hexdigest()


def _pays(session: Session) -> set[str]:
    names = session.metadata.to_dict().get("order_ids", "") if session.metadata else ""
    return set(names.split(",")) if names else set()


def _next_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0) + timedelta(minutes=1)


def _instant(unix: int) -> datetime:
    return datetime.fromtimestamp(unix, UTC)


async def _expire_all(account: StripeAccount, session_ids: Sequence[str]) -> None:
    """The orders left these sessions: close them, so no one pays them (a payment that still
    reaches one is refunded, as it pays no order)."""
    for session_id in session_ids:
        await payments.expire_session(account, session_id)


@asynccontextmanager
async def _signed_by_stripe(
    request: web.Request, _subject: str | None, _params: dict[str, Any]
) -> AsyncIterator[None]:
    """Before any database work: only an event Stripe signed goes on."""
    account = request.app[SERVICES].stripe
    if account is None:
        raise payments.unavailable()
    payload = await request.read()
    signature = request.headers.get("Stripe-Signature", "")
    request[EVENT] = payments.verified_event(account, payload, signature)
    yield


@api.route(
    "POST",
    "/api/v1/stripe/webhook",
    summary="Stripe's events (signed)",
    tag="commerce",
    auth=Auth.NONE,
    response=StripeReceiptOut,
    errors=(400, 409, 502),
    description="For Stripe only: register this URL in Stripe's dashboard with the events "
    "checkout.session.completed, checkout.session.async_payment_succeeded and "
    "checkout.session.expired. The raw body is verified against the Stripe-Signature header "
    "(400 invalid_signature). Each event is handled once: a repeat answers `duplicate`. A "
    "refund Stripe refuses answers 502, and Stripe sends the event again later.",
    precheck=_signed_by_stripe,
)
async def stripe_webhook(ctx: Context) -> StripeReceiptOut:
    event = ctx.request[EVENT]
    ctx.session.add(StripeEvent(id=event.id, type=event.type[:64]))
    try:
        async with ctx.session.begin_nested():
            await ctx.session.flush()
    except IntegrityError:
        # Handled before, or being handled now by another request that commits first.
        return StripeReceiptOut(duplicate=True)
    if event.type in PAYING:
        await _session_paid(ctx, event)
    elif event.type == EXPIRED:
        await _session_expired(ctx, payments.session_event(event).id)
    return StripeReceiptOut()


async def _session_paid(ctx: Context, event: stripe.Event) -> None:
    """Its reserved orders become paid; money for orders that moved on goes back."""
    paid = payments.session_event(event)
    if paid.payment_status != "paid":  # a bank debit still on its way: it sends another event
        return
    orders = await ctx.session.scalars(
        select(Order)
        .where(Order.checkout_session_id == paid.id)
        .order_by(Order.created_at, Order.id)
        .with_for_update()
    )
    settled = 0
    for order in orders:
        if order.status == OrderStatus.RESERVED:
            await mark_paid(ctx, order, Checkout.STRIPE, paid.payment_intent)
        if paid.payment_intent is not None and order.payment_ref == paid.payment_intent:
            settled += order.quantity * order.unit_price_cents
    left = (paid.amount_total or 0) - settled
    if left > 0 and paid.payment_intent is not None:
        log.warning(
            "Stripe checkout %s was paid for orders no longer reserved: refunding %d of %d",
            paid.id,
            left,
            paid.amount_total,
        )
        key = f"shopcast-refund-{event.id}"
        await payments.refund(ctx.services.stripe, paid.payment_intent, amount=left, key=key)


async def _session_expired(ctx: Context, session_id: str) -> None:
    """Its reserved orders whose hold ran out expire and their units go back, as when the
    sweeper finds them (most often the sweeper closed the session and took them first); the
    others keep their hold, and their buyer may check them out again."""
    now = utcnow()
    ids = await ctx.session.scalars(
        select(Order.id).where(
            Order.checkout_session_id == session_id,
            Order.status == OrderStatus.RESERVED,
            Order.hold_expires_at <= now,
        )
    )
    expired = await holds.expire(ctx.session, list(ids), now)
    expired.release(ctx.request.app[GATE])
    ctx.after_commit(partial(expired.announce, ctx.services.rooms))
