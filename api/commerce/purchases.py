"""The buyer's side of orders: the delivery details they go to, and the list of what one bought,
each with what a page needs to show it and pay for it (the seller's checkout).

The details live on the account (``api.accounts.delivery``); this module, above accounts in the
layers, is where setting them also reaches the buyer's reserved orders.
"""

from __future__ import annotations

from sqlalchemy import select

from api.accounts.delivery import keep_delivery
from api.accounts.schemas import Delivery, PublicUserOut, UserOut
from api.accounts.users import require_user
from api.catalog.models import Product
from api.catalog.products import photo_url
from api.commerce.models import Order, OrderStatus
from api.commerce.orders import tell_buyer
from api.commerce.schemas import (
    OrderOut,
    PurchasedProductOut,
    PurchaseOut,
    PurchasesQuery,
    StreamTitleOut,
)
from api.identity.models import Checkout, User
from api.shows.models import Stream
from api.web.context import Context
from api.web.routing import Api

api = Api()


@api.route(
    "PUT",
    "/api/v1/me/delivery",
    summary="Set your delivery details",
    tag="accounts",
    body=Delivery,
    response=UserOut,
    errors=(400, 401, 413, 415, 422),
    description="Kept on the account and copied onto every order placed from now on, and onto "
    "the caller's reserved orders that have none yet (each is sent to the buyer's pages as "
    "`order:status`). Orders that already have details, and paid or shipped ones, keep theirs.",
)
async def set_delivery(ctx: Context, body: Delivery) -> UserOut:
    buyer = require_user(ctx)
    details = keep_delivery(buyer, body)
    filled = list(
        await ctx.session.scalars(
            select(Order)
            .where(
                Order.buyer_id == buyer.id,
                Order.status == OrderStatus.RESERVED,
                Order.delivery.is_(None),
            )
            .with_for_update()
        )
    )
    for order in filled:
        order.delivery = details
    await ctx.session.flush()
    for order in filled:
        tell_buyer(ctx, order)
    return UserOut.model_validate(buyer)


@api.route(
    "GET",
    "/api/v1/me/orders",
    summary="Your orders",
    tag="commerce",
    query=PurchasesQuery,
    response=list[PurchaseOut],
    errors=(401, 422),
    description="The caller's orders, newest first (`limit` 1-100, default 50, and `offset`), "
    "each with its product (`image_url`, `checkout_url`), show, seller and the seller's "
    "`checkout` now: `pay_later` (the seller invoices), `shop` (pay at the product's "
    "`checkout_url`, with `shopcast_order=<order id>` added) or `stripe` (`POST /checkout`).",
)
async def my_orders(ctx: Context, query: PurchasesQuery) -> list[PurchaseOut]:
    buyer = require_user(ctx)
    rows = await ctx.session.execute(
        select(Order, Product, Stream, User)
        .join(Product, Product.id == Order.product_id)
        .join(Stream, Stream.id == Order.stream_id)
        .join(User, User.id == Order.seller_id)
        .where(Order.buyer_id == buyer.id)
        .order_by(Order.created_at.desc(), Order.id.desc())
        .limit(query.limit)
        .offset(query.offset)
    )
    return [purchase(order, product, stream, seller) for order, product, stream, seller in rows]


def purchase(order: Order, product: Product, stream: Stream, seller: User) -> PurchaseOut:
    return PurchaseOut(
        **OrderOut.model_validate(order).model_dump(),
        product=PurchasedProductOut(
            id=product.id,
            title=product.title,
            image_url=photo_url(product),
            checkout_url=product.checkout_url,
        ),
        stream=StreamTitleOut(id=stream.id, title=stream.title),
        seller=PublicUserOut.model_validate(seller),
        checkout=Checkout(seller.checkout),
        checkout_session_id=order.checkout_session_id,
    )
