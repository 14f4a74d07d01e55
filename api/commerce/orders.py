"""Orders: buying during a show without ever overselling.

Stock is taken in the database with one conditional UPDATE per counter (the product's stock,
and the flash sale's remaining units), so concurrent buyers can never drive either below
zero. A request carries an Idempotency-Key: its replay returns the same order. An order is
``reserved`` for a hold time; the merchant marks it ``paid`` or cancels it, and an expired
hold gives the units back.
"""

from __future__ import annotations

import logging
from contextlib import AbstractAsyncContextManager, nullcontext
from datetime import timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from api.accounts.users import STAFF, require_user
from api.commerce import flash_sales, payments, stock
from api.commerce.gate import GATE
from api.commerce.models import Order, OrderStatus
from api.commerce.schemas import BuyerOut, OrderIn, OrderOut, SellerOrderOut, SettleIn
from api.db import utcnow
from api.identity.models import Checkout, User
from api.shows import cues
from api.shows.access import admit, sellers_view
from api.shows.models import Stream, StreamProduct
from api.web.context import Context
from api.web.errors import ApiError, forbidden, not_found, within_limit
from api.web.metrics import METRICS, after_commit, refusals
from api.web.routing import Api, Auth
from api.webhooks import webhooks
from api.webhooks.models import WebhookEndpoint
from live.states import FINISHED, StreamStatus
from twins.ratelimit import Limit

log = logging.getLogger(__name__)
api = Api()

HOLD = timedelta(minutes=10)  # a reserved order keeps its units this long (api.commerce.holds)
PURCHASE_LIMIT = Limit(rate=2, burst=5)
SELLABLE = frozenset({StreamStatus.LIVE, StreamStatus.RECONNECTING})
COUNTED = frozenset({OrderStatus.PAID, OrderStatus.SHIPPED})  # in the product's purchases
# A paid order cancelled is refunded; a shipped one is past cancelling (returns are the shop's).
SELLER_CANCELS = frozenset({OrderStatus.RESERVED, OrderStatus.PAID})


def _idempotency_key(ctx: Context) -> str:
    key = ctx.request.headers.get("Idempotency-Key", "").strip()
    if not 8 <= len(key) <= 128:
        raise ApiError(
            400, "idempotency_key_required", "Send an Idempotency-Key header of 8 to 128 characters"
        )
    return key


async def _replay(
    session: AsyncSession, buyer_id: str, key: str, stream_id: str, body: OrderIn
) -> Order | None:
    order = await session.scalar(
        select(Order).where(Order.buyer_id == buyer_id, Order.idempotency_key == key)
    )
    asked = (stream_id, body.product_id, body.quantity)
    if order is not None and (order.stream_id, order.product_id, order.quantity) != asked:
        raise ApiError(
            422, "idempotency_key_reused", "This Idempotency-Key was used for a different order"
        )
    return order


def order_data(order: Order) -> dict[str, Any]:
    """An order as webhooks carry it."""
    return OrderOut.model_validate(order).model_dump(mode="json")


def _gate(
    request: web.Request, buyer_id: str | None, params: dict[str, Any]
) -> AbstractAsyncContextManager[None]:
    """Before any database work: this node's sales gate holds the purchase back while as many
    buyers as there are units are at the database, or refuses it (api.commerce.gate)."""
    key = request.headers.get("Idempotency-Key", "").strip()
    if buyer_id is None or not key:
        return nullcontext()
    return request.app[GATE].admit(params["stream_id"], params["body"].product_id, buyer_id, key)


def _learn(ctx: Context, row: StreamProduct, refused: ApiError) -> None:
    """Tell the gate what the database's refusal says is left of the offer."""
    left = refused.details.get("remaining", refused.details.get("stock"))
    gate = ctx.request.app[GATE]
    if refused.code == "sale_ended":
        gate.learn(row.stream_id, row.product_id, 0, refused)
    elif refused.code == "out_of_stock" and isinstance(left, int):
        gate.learn(row.stream_id, row.product_id, left, refused if left == 0 else None)


@api.route(
    "POST",
    "/api/v1/streams/{stream_id}/orders",
    summary="Buy during a show",
    tag="commerce",
    status=201,
    body=OrderIn,
    response=OrderOut,
    errors=(400, 401, 403, 404, 409, 413, 415, 422, 429),
    description="Needs an Idempotency-Key header; a replay returns the same order. "
    "403 codes: audience_restricted (not in the show's audience), banned. "
    "409 codes: out_of_stock, limit_reached, sale_ended, not_live (the show has not started, "
    "or it is over and its replay does not sell). Once the show is over its replay sells at the "
    "regular price, stock-checked, while the stream's `shoppable_replay` is on. For a second "
    "after the database refused an offer as sold out or ended, new purchases of it are refused "
    "by the node without asking it again (`details.gate`: true).",
    precheck=_gate,
)
async def place_order(ctx: Context, stream_id: str, body: OrderIn) -> OrderOut:
    buyer = require_user(ctx)
    key = _idempotency_key(ctx)
    replay = await _replay(ctx.session, buyer.id, key, stream_id, body)
    if replay is not None:
        return OrderOut.model_validate(replay)
    orders = ctx.request.app[METRICS].orders
    with refusals(orders):
        placed = await _reserve(ctx, buyer, key, stream_id, body)
    after_commit(ctx, orders, "reserved")
    return placed


async def _reserve(ctx: Context, buyer: User, key: str, stream_id: str, body: OrderIn) -> OrderOut:
    await within_limit(
        ctx.services.limiter, f"order:{buyer.id}", PURCHASE_LIMIT, "Too many purchases at once"
    )
    stream = await ctx.session.get(Stream, stream_id)
    if stream is None:
        raise not_found("Stream")
    await admit(ctx.session, buyer, stream)
    from_replay = stream.status in FINISHED and stream.shoppable_replay
    if stream.status not in SELLABLE and not from_replay:
        raise ApiError(409, "not_live", f"The stream is {stream.status}", {"status": stream.status})
    row = await ctx.session.scalar(
        select(StreamProduct)
        .options(selectinload(StreamProduct.product))
        .where(StreamProduct.stream_id == stream.id, StreamProduct.product_id == body.product_id)
    )
    if row is None:
        raise not_found("Product in this stream")
    in_sale = row.sale_price_cents is not None and not from_replay  # a replay sells at list
    try:
        left = await _take(ctx.session, row, buyer.id, body.quantity, in_sale)
    except ApiError as refused:
        _learn(ctx, row, refused)
        raise
    now = utcnow()
    order = Order(
        stream_id=stream.id,
        product_id=row.product_id,
        buyer_id=buyer.id,
        seller_id=stream.owner_id,
        quantity=body.quantity,
        unit_price_cents=row.sale_price_cents if in_sale else row.product.price_cents,
        currency=row.product.currency,
        in_sale=in_sale,
        from_replay=from_replay,
        idempotency_key=key,
        hold_expires_at=now + HOLD,
        delivery=buyer.delivery,  # a copy: the account's details may change later
    )
    ctx.session.add(order)
    try:
        async with ctx.session.begin_nested():
            await ctx.session.flush()
    except IntegrityError:
        # The same key raced in on another request, which won: the client's retry replays it.
        raise ApiError(
            409, "duplicate_request", "This order is being placed already; retry"
        ) from None
    await ctx.session.refresh(row)
    ctx.request.app[GATE].learn(
        stream.id, row.product_id, (row.sale_remaining or 0) if in_sale else left
    )
    await webhooks.enqueue(ctx.session, stream.owner_id, "order.reserved", order_data(order))
    # The buyer's public name rides along: the watch page shows "Ann bought the scarf".
    sold = {**stock.event(row, left), "buyer": buyer.display_name}
    cues.announce(ctx, stream.id, "product:stock", sold)
    tell_buyer(ctx, order)
    return OrderOut.model_validate(order)


async def order_for_change(ctx: Context, order_id: str) -> Order:
    order = await ctx.session.scalar(select(Order).where(Order.id == order_id).with_for_update())
    if order is None:
        raise not_found("Order")
    return order


def _merchant(ctx: Context, order: Order) -> None:
    user = require_user(ctx)
    if user.id != order.seller_id and user.role not in STAFF:
        raise forbidden("Only the seller settles this order")


@api.route(
    "GET",
    "/api/v1/orders/{order_id}",
    summary="One order",
    tag="commerce",
    response=OrderOut,
    errors=(401, 404),
)
async def get_order(ctx: Context, order_id: str) -> OrderOut:
    user = require_user(ctx)
    order = await ctx.session.get(Order, order_id)
    involved = order is not None and user.id in (order.buyer_id, order.seller_id)
    if order is None or not (involved or user.role in STAFF):
        raise not_found("Order")
    return OrderOut.model_validate(order)


@api.route(
    "GET",
    "/api/v1/streams/{stream_id}/orders",
    summary="A show's orders (seller)",
    tag="commerce",
    response=list[SellerOrderOut],
    errors=(401, 403, 404),
    description="Oldest first, each with its buyer (name and email) and the delivery "
    "details copied onto it when it was placed.",
)
async def stream_orders(ctx: Context, stream_id: str) -> list[SellerOrderOut]:
    stream = await sellers_view(ctx, stream_id, "Only the seller sees a show's orders")
    rows = await ctx.session.execute(
        select(Order, User)
        .join(User, User.id == Order.buyer_id)
        .where(Order.stream_id == stream.id)
        .order_by(Order.created_at, Order.id)
    )
    return [
        SellerOrderOut.model_validate(
            {
                **OrderOut.model_validate(order).model_dump(),
                "buyer": BuyerOut.model_validate(buyer),
            }
        )
        for order, buyer in rows
    ]


async def _take(
    session: AsyncSession, row: StreamProduct, buyer_id: str, quantity: int, in_sale: bool
) -> int:
    """Take the units (from the sale, then the stock): the stock left, or a 409."""
    if in_sale:
        await flash_sales.take(session, row, buyer_id, quantity, utcnow())
    if row.product.stock < quantity and not in_sale:
        raise ApiError(409, "out_of_stock", "Sold out", {"stock": row.product.stock})
    left = await stock.take(session, row.product_id, quantity)
    if left is None:
        raise ApiError(409, "out_of_stock", "Sold out", {"stock": row.product.stock})
    return left


def tell_buyer(ctx: Context, order: Order) -> None:
    """The buyer's pages hear the order's status (``order:status``) once it has committed."""
    rooms = ctx.services.rooms
    data = order_data(order)

    async def send() -> None:
        await rooms.to_user(order.buyer_id, "order:status", data)

    ctx.after_commit(send)


async def mark_paid(
    ctx: Context, order: Order, method: Checkout, reference: str | None = None
) -> None:
    """Reserved -> paid, by ``method``; ``reference`` is the payment's id where it has one."""
    if order.status != OrderStatus.RESERVED:
        raise ApiError(
            409, "invalid_status", f"The order is {order.status}", {"status": order.status}
        )
    order.status = OrderStatus.PAID
    order.payment_method = method
    order.payment_ref = reference
    order.paid_at = utcnow()
    after_commit(ctx, ctx.request.app[METRICS].order_payments, method)
    await _count_purchase(ctx.session, order, sign=1)
    await ctx.session.flush()
    await webhooks.enqueue(ctx.session, order.seller_id, "order.paid", order_data(order))
    tell_buyer(ctx, order)


async def mark_cancelled(ctx: Context, order: Order, *, by_buyer: bool) -> None:
    allowed = {OrderStatus.RESERVED} if by_buyer else SELLER_CANCELS
    if order.status not in allowed:
        raise ApiError(
            409, "invalid_status", f"The order is {order.status}", {"status": order.status}
        )
    if order.status == OrderStatus.PAID and order.payment_method == Checkout.STRIPE:
        # First: a refund Stripe refuses (502) leaves the order paid.
        await payments.refund_order(ctx.services.stripe, order)
    if order.status in COUNTED:
        await _count_purchase(ctx.session, order, sign=-1)
    order.status = OrderStatus.CANCELLED
    after_commit(
        ctx, ctx.request.app[METRICS].order_cancellations, "buyer" if by_buyer else "seller"
    )
    units, row = await stock.give_back(ctx.session, order)
    await ctx.session.flush()
    await webhooks.enqueue(ctx.session, order.seller_id, "order.cancelled", order_data(order))
    tell_buyer(ctx, order)
    ctx.request.app[GATE].forget(order.stream_id, order.product_id)
    if row is not None:
        cues.announce(ctx, order.stream_id, "product:stock", stock.event(row, units))


async def _count_purchase(session: AsyncSession, order: Order, sign: int) -> None:
    await session.execute(
        update(StreamProduct)
        .where(
            StreamProduct.stream_id == order.stream_id, StreamProduct.product_id == order.product_id
        )
        .values(
            purchases=StreamProduct.purchases + sign * order.quantity,
            revenue_cents=StreamProduct.revenue_cents
            + sign * order.quantity * order.unit_price_cents,
        )
    )


@api.route(
    "POST",
    "/api/v1/orders/{order_id}/pay",
    summary="Mark an order paid (merchant)",
    tag="commerce",
    response=OrderOut,
    errors=(401, 403, 404, 409),
)
async def pay_order(ctx: Context, order_id: str) -> OrderOut:
    order = await order_for_change(ctx, order_id)
    _merchant(ctx, order)
    await mark_paid(ctx, order, Checkout.PAY_LATER)
    return OrderOut.model_validate(order)


@api.route(
    "POST",
    "/api/v1/orders/{order_id}/cancel",
    summary="Cancel an order",
    tag="commerce",
    response=OrderOut,
    errors=(401, 403, 404, 409, 502),
    description="The buyer may cancel a reserved order; the seller a reserved or paid one "
    "(a paid one is refunded), not a shipped one. The units go back to stock. An order paid "
    "on Stripe Checkout is refunded through Stripe first: 502 payment_provider when Stripe "
    "refuses, and the order stays paid.",
)
async def cancel_order(ctx: Context, order_id: str) -> OrderOut:
    order = await order_for_change(ctx, order_id)
    user = require_user(ctx)
    is_buyer = user.id == order.buyer_id
    if not is_buyer:
        _merchant(ctx, order)
    await mark_cancelled(ctx, order, by_buyer=is_buyer)
    return OrderOut.model_validate(order)


@api.route(
    "POST",
    "/api/v1/orders/{order_id}/settle",
    summary="Settle an order (signed callback)",
    tag="commerce",
    auth=Auth.NONE,
    body=SettleIn,
    response=OrderOut,
    errors=(401, 404, 409, 415, 422),
    description="For the seller's shop: sign the raw body, which names the order, the way "
    "Shopcast signs its webhooks (Shopcast-Signature, with one of the seller's webhook "
    "secrets). A signature settles the order it names once: one made before the order's "
    "last change is refused.",
)
async def settle_order(ctx: Context, order_id: str, body: SettleIn) -> OrderOut:
    order = await order_for_change(ctx, order_id)
    keys = list(
        await ctx.session.scalars(
            select(WebhookEndpoint.secret).where(WebhookEndpoint.owner_id == order.seller_id)
        )
    )
    raw = await ctx.request.read()
    header = ctx.request.headers.get(webhooks.SIGNATURE, "")
    if not keys or not webhooks.verify(keys, header, raw):
        raise ApiError(401, "invalid_signature", f"Sign the body in {webhooks.SIGNATURE}")
    # A captured signature settles only the order it names, and only once: it must be younger
    # than the order's last change, which settling it is.
    if body.order_id != order.id:
        raise ApiError(401, "invalid_signature", "The signed body names another order")
    if (webhooks.signed_at(header) or 0) < int(order.updated_at.timestamp()):
        raise ApiError(
            401, "invalid_signature", "The order changed since this was signed: sign again"
        )
    if body.status == "paid":
        await mark_paid(ctx, order, Checkout.SHOP)
    else:
        await mark_cancelled(ctx, order, by_buyer=False)
    return OrderOut.model_validate(order)
