"""A product's units going out with an order and coming back when it is cancelled or expires.

Each change is one conditional UPDATE, so concurrent buyers never drive stock below zero.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from api.catalog.models import Product
from api.commerce.models import Order
from api.db import utcnow
from api.shows.models import StreamProduct


async def take(session: AsyncSession, product_id: str, n: int) -> int | None:
    """Stock left after taking ``n`` units, or None when fewer than ``n`` are left."""
    return await session.scalar(
        update(Product)
        .where(Product.id == product_id, Product.stock >= n)
        .values(stock=Product.stock - n)
        .returning(Product.stock)
    )


async def give_back(session: AsyncSession, order: Order) -> tuple[int, StreamProduct | None]:
    """Return an order's units to the product, and to the flash sale it came from."""
    stock = await session.scalar(
        update(Product)
        .where(Product.id == order.product_id)
        .values(stock=Product.stock + order.quantity)
        .returning(Product.stock)
    )
    same = (
        StreamProduct.stream_id == order.stream_id,
        StreamProduct.product_id == order.product_id,
    )
    if order.in_sale:
        # Only a sale still running gets its units back; one increment, no read-modify-write.
        await session.execute(
            update(StreamProduct)
            .where(
                *same,
                StreamProduct.sale_remaining.is_not(None),
                StreamProduct.sale_ends_at > utcnow(),
            )
            .values(sale_remaining=StreamProduct.sale_remaining + order.quantity)
        )
    row = await session.scalar(select(StreamProduct).where(*same))
    if row is not None:
        await session.refresh(row)
    return int(stock or 0), row


def event(row: StreamProduct, stock: int) -> dict[str, object]:
    return {
        "stream_id": row.stream_id,
        "product_id": row.product_id,
        "stock": stock,
        "sale_remaining": row.sale_remaining,
    }
