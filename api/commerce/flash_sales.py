"""Flash sales: a pinned product at a lower price, for a few units and a few minutes.

A sale lives on the show's product row (``StreamProduct.sale_*``): ``start`` sets it when the
seller pins the product, ``take`` spends its units for one order. Its units are taken with a
conditional UPDATE, so a sale never sells more than it offers, whatever the number of buyers.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from api.commerce.models import Order, OrderStatus
from api.commerce.schemas import SaleIn
from api.shows.models import StreamProduct
from api.web.errors import ApiError


def start(row: StreamProduct, sale: SaleIn | None, now: datetime) -> None:
    """Set (or, with None, clear) the sale of a product being pinned."""
    if sale is not None and sale.quantity > row.product.stock:
        raise ApiError(
            422,
            "not_enough_stock",
            "The sale offers more units than are in stock",
            {"stock": row.product.stock},
        )
    row.sale_price_cents = sale.price_cents if sale else None
    row.sale_remaining = sale.quantity if sale else None
    row.sale_limit = sale.per_buyer_limit if sale else None
    row.sale_ends_at = now + timedelta(seconds=sale.duration_seconds) if sale else None


async def take(
    session: AsyncSession, row: StreamProduct, buyer_id: str, quantity: int, now: datetime
) -> None:
    """Take ``quantity`` of the sale's units for ``buyer_id``, or raise 409 (ended, sold out,
    over the per-buyer limit)."""
    # What we just read may be stale, so it can only refuse early: a sold-out or finished
    # sale never queues on the row lock. The conditional UPDATE below decides the rest.
    if row.sale_ends_at is not None and row.sale_ends_at <= now:
        raise ApiError(409, "sale_ended", "The flash sale is over")
    if (row.sale_remaining or 0) < quantity:
        raise ApiError(409, "out_of_stock", "Sold out", {"remaining": row.sale_remaining})
    if await _take_units(session, row.id, quantity, now) is None:
        await session.refresh(row)
        if row.sale_ends_at is not None and row.sale_ends_at <= now:
            raise ApiError(409, "sale_ended", "The flash sale is over")
        raise ApiError(409, "out_of_stock", "Sold out", {"remaining": row.sale_remaining})
    # The sale's row is now locked by our UPDATE: this buyer's other orders are settled.
    bought = await _bought(session, buyer_id, row)
    if bought + quantity > (row.sale_limit or 1):
        raise ApiError(
            409,
            "limit_reached",
            f"At most {row.sale_limit} per buyer in this sale",
            {"limit": row.sale_limit, "bought": bought},
        )


async def _take_units(session: AsyncSession, row_id: int, n: int, now: datetime) -> int | None:
    """Sale units left after taking ``n``, or None when the sale is over or short."""
    return await session.scalar(
        update(StreamProduct)
        .where(
            StreamProduct.id == row_id,
            StreamProduct.sale_remaining >= n,
            StreamProduct.sale_ends_at > now,
        )
        .values(sale_remaining=StreamProduct.sale_remaining - n)
        .returning(StreamProduct.sale_remaining)
    )


async def _bought(session: AsyncSession, buyer_id: str, row: StreamProduct) -> int:
    total = await session.scalar(
        select(func.coalesce(func.sum(Order.quantity), 0)).where(
            Order.buyer_id == buyer_id,
            Order.stream_id == row.stream_id,
            Order.product_id == row.product_id,
            Order.in_sale.is_(True),
            Order.status.in_((OrderStatus.RESERVED, OrderStatus.PAID, OrderStatus.SHIPPED)),
        )
    )
    return int(total or 0)
