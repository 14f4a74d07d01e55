"""Fulfilment, the seller's side of an order after the show: shipping it, the show's sales
summary, and its orders as a spreadsheet.

An order goes reserved -> paid -> shipped (``api.commerce.models.OrderStatus``); paying and
cancelling (a refund once paid) live in ``api.commerce.orders``, shipping here. A shipped order
is past cancelling: returns are the shop's business.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from aiohttp import web
from sqlalchemy import func, select

from api.accounts.handles import slug
from api.catalog.models import Product
from api.commerce.models import Order, OrderStatus
from api.commerce.orders import _merchant, order_data, order_for_change, tell_buyer
from api.commerce.schemas import (
    CurrencySalesOut,
    OrderOut,
    ProductSalesOut,
    SalesFigureOut,
    SalesFiguresOut,
    SalesOut,
    ShipIn,
    SourceSalesOut,
)
from api.db import utcnow
from api.identity.models import User
from api.shows.access import sellers_view
from api.web.context import Context
from api.web.errors import ApiError
from api.web.routing import Api
from api.webhooks import webhooks

api = Api()

CSV = "text/csv"
# A spreadsheet runs a cell that starts with one of these as a formula (OWASP "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
COLUMNS = (
    "created_at",
    "order_id",
    "status",
    "product",
    "quantity",
    "unit_price",
    "total",
    "currency",
    "source",
    "buyer_name",
    "buyer_email",
    "delivery_name",
    "phone",
    "line1",
    "line2",
    "city",
    "postal_code",
    "region",
    "country",
    "payment_method",
    "paid_at",
    "shipped_at",
    "tracking_url",
)
DELIVERY_FIELDS = ("name", "phone", "line1", "line2", "city", "postal_code", "region", "country")


async def mark_shipped(ctx: Context, order: Order, tracking_url: str | None) -> None:
    """Paid -> shipped, with the carrier's tracking page when there is one."""
    if order.status != OrderStatus.PAID:
        raise ApiError(
            409, "invalid_status", f"The order is {order.status}", {"status": order.status}
        )
    order.status = OrderStatus.SHIPPED
    order.shipped_at = utcnow()
    order.tracking_url = tracking_url
    await ctx.session.flush()
    await webhooks.enqueue(ctx.session, order.seller_id, "order.shipped", order_data(order))
    tell_buyer(ctx, order)


@api.route(
    "POST",
    "/api/v1/orders/{order_id}/ship",
    summary="Mark an order shipped (merchant)",
    tag="commerce",
    body=ShipIn,
    response=OrderOut,
    errors=(400, 401, 403, 404, 409, 415, 422),
    description="Only a paid order ships (409 invalid_status otherwise). Sends the "
    "order.shipped webhook and the buyer's order:status.",
)
async def ship_order(ctx: Context, order_id: str, body: ShipIn) -> OrderOut:
    order = await order_for_change(ctx, order_id)
    _merchant(ctx, order)
    await mark_shipped(ctx, order, body.tracking_url)
    return OrderOut.model_validate(order)


@dataclass
class _Tally:
    orders: int = 0
    units: int = 0
    amount_cents: int = 0

    def add(self, orders: int, units: int, amount_cents: int) -> None:
        self.orders += orders
        self.units += units
        self.amount_cents += amount_cents

    def out(self) -> SalesFigureOut:
        return SalesFigureOut(orders=self.orders, units=self.units, amount_cents=self.amount_cents)


def _figures_of(status: str, was_paid: bool) -> tuple[str, ...]:
    """The figures a group of orders in ``status`` counts in."""
    if status == OrderStatus.SHIPPED:
        return ("gross", "paid", "shipped")
    if status == OrderStatus.PAID:
        return ("gross", "paid")
    if status == OrderStatus.RESERVED:
        return ("gross", "pending")
    if status == OrderStatus.CANCELLED:
        return ("refunded",) if was_paid else ("cancelled",)
    return ("expired",)


Figures = defaultdict[str, _Tally]


def _figures() -> Figures:
    return defaultdict(_Tally)


def _figures_out(figures: Figures) -> dict[str, SalesFigureOut]:
    names = ("gross", "paid", "shipped", "pending", "cancelled", "refunded", "expired")
    return {name: figures[name].out() for name in names}


@dataclass
class _Currency:
    """One currency's sales as the groups are folded in."""

    orders: int = 0  # in any status
    total: Figures = field(default_factory=_figures)
    by_source: dict[bool, Figures] = field(default_factory=lambda: defaultdict(_figures))
    names: dict[str, str] = field(default_factory=dict)
    by_product: dict[str, Figures] = field(default_factory=lambda: defaultdict(_figures))

    def out(self, currency: str) -> CurrencySalesOut:
        products = [
            ProductSalesOut(
                product_id=product_id,
                name=self.names[product_id],
                units=figures["gross"].units,
                gross_cents=figures["gross"].amount_cents,
                paid_cents=figures["paid"].amount_cents,
                pending_cents=figures["pending"].amount_cents,
            )
            for product_id, figures in self.by_product.items()
        ]
        products.sort(key=lambda p: (-p.gross_cents, p.name, p.product_id))
        return CurrencySalesOut(
            currency=currency,
            **_figures_out(self.total),
            by_product=products,
            by_source=SourceSalesOut(
                live=SalesFiguresOut(**_figures_out(self.by_source[False])),
                replay=SalesFiguresOut(**_figures_out(self.by_source[True])),
            ),
        )


@api.route(
    "GET",
    "/api/v1/streams/{stream_id}/sales",
    summary="A show's sales summary (seller)",
    tag="commerce",
    response=SalesOut,
    errors=(401, 403, 404),
    description="Orders, units and amounts (cents) by status, by product and by source "
    "(live or replay), one summary per currency.",
)
async def stream_sales(ctx: Context, stream_id: str) -> SalesOut:
    stream = await sellers_view(ctx, stream_id, "Only the seller sees a show's sales")
    was_paid = Order.paid_at.is_not(None)  # a cancelled order that was paid was refunded
    groups = (
        Order.currency,
        Order.product_id,
        Product.title,
        Order.from_replay,
        Order.status,
        was_paid,
    )
    rows = await ctx.session.execute(
        select(
            *groups,
            func.count(),
            func.sum(Order.quantity),
            func.sum(Order.quantity * Order.unit_price_cents),
        )
        .join(Product, Product.id == Order.product_id)
        .where(Order.stream_id == stream.id)
        .group_by(*groups)
    )
    currencies: defaultdict[str, _Currency] = defaultdict(_Currency)
    for currency, product_id, title, from_replay, status, paid, count, units, amount in rows:
        sales = currencies[currency]
        sales.names[product_id] = title
        figures = (sales.total, sales.by_source[bool(from_replay)], sales.by_product[product_id])
        for name in _figures_of(status, bool(paid)):
            for tally in figures:
                tally[name].add(int(count), int(units), int(amount))
        sales.orders += int(count)
    order = sorted(currencies, key=lambda c: (-currencies[c].orders, c))
    return SalesOut(stream_id=stream.id, currencies=[currencies[c].out(c) for c in order])


def _cell(value: Any) -> str:
    """A value as a spreadsheet cell that can never run as a formula."""
    if value is None:
        return ""
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def _major(cents: int) -> str:
    return str(Decimal(cents).scaleb(-2))  # two decimals, as the pages show money


def _row(order: Order, product: str, buyer_name: str, buyer_email: str) -> list[str]:
    delivery = order.delivery or {}
    values: list[Any] = [
        order.created_at,
        order.id,
        order.status,
        product,
        order.quantity,
        _major(order.unit_price_cents),
        _major(order.unit_price_cents * order.quantity),
        order.currency,
        "replay" if order.from_replay else "live",
        buyer_name,
        buyer_email,
        *(delivery.get(name) for name in DELIVERY_FIELDS),
        order.payment_method,
        order.paid_at,
        order.shipped_at,
        order.tracking_url,
    ]
    return [_cell(value) for value in values]


def _filename(title: str) -> str:
    """An ASCII file name from the show's title: "Scarves & mugs" -> scarves-mugs-orders.csv."""
    return f"{slug(title, 60) or 'show'}-orders.csv"


@api.route(
    "GET",
    "/api/v1/streams/{stream_id}/orders.csv",
    summary="A show's orders as CSV (seller)",
    tag="commerce",
    errors=(401, 403, 404),
    produces=CSV,
    description="text/csv; charset=utf-8, as an attachment named after the show "
    '(Content-Disposition: attachment; filename="<show>-orders.csv"). One row per order, '
    f"oldest first, under a header row: {', '.join(COLUMNS)}. Prices are in the currency's "
    "major unit (25.00); times are ISO 8601 UTC; source is live or replay. A cell that "
    "would start with = + - @, a tab or a carriage return starts with ' instead, so no "
    "spreadsheet runs it as a formula.",
)
async def stream_orders_csv(ctx: Context, stream_id: str) -> web.Response:
    stream = await sellers_view(ctx, stream_id, "Only the seller sees a show's sales")
    rows = await ctx.session.execute(
        select(Order, Product.title, User.display_name, User.email)
        .join(Product, Product.id == Order.product_id)
        .join(User, User.id == Order.buyer_id)
        .where(Order.stream_id == stream.id)
        .order_by(Order.created_at, Order.id)
    )
    sheet = io.StringIO()
    writer = csv.writer(sheet)
    writer.writerow(COLUMNS)
    writer.writerows(_row(*row) for row in rows)
    return web.Response(
        text=sheet.getvalue(),
        content_type=CSV,
        charset="utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{_filename(stream.title)}"',
            "Cache-Control": "no-store",
        },
    )
