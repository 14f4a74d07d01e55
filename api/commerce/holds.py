"""Holds: a reserved order keeps its units for a while; when the hold runs out they go back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.commerce import stock
from api.commerce.models import Order, OrderStatus
from api.commerce.orders import order_data
from api.db import utcnow
from api.web.context import Rooms
from api.webhooks import webhooks
from twins.periodic import Periodic

# A hold in a Stripe Checkout Session ends with the session, and Stripe's expired event gives
# its units back; the sweeper waits this much longer, in case that event never comes.
SESSION_GRACE = timedelta(minutes=10)


def due(now: datetime) -> ColumnElement[bool]:
    """Reserved orders whose hold has run out, by ``now``, for the sweeper."""
    return (Order.status == OrderStatus.RESERVED) & or_(
        Order.checkout_session_id.is_(None) & (Order.hold_expires_at <= now),
        Order.hold_expires_at <= now - SESSION_GRACE,
    )


@dataclass
class Expired:
    """Orders an expiry moved, and what to tell once its transaction has committed."""

    orders: list[Order] = field(default_factory=list)
    stock: list[tuple[str, dict[str, object]]] = field(default_factory=list)
    buyers: list[tuple[str, dict[str, object]]] = field(default_factory=list)

    async def announce(self, rooms: Rooms) -> None:
        for stream_id, data in self.stock:
            await rooms.to_stream(stream_id, "product:stock", data)
        for buyer_id, order_out in self.buyers:
            await rooms.to_user(buyer_id, "order:status", order_out)


async def expire(session: AsyncSession, ids: Sequence[str], now: datetime) -> Expired:
    """Reserved -> expired for those of ``ids`` still reserved, in one conditional UPDATE, so
    that of several nodes (or a sweep and a Stripe event) exactly one expires each; their
    units go back and ``order.cancelled`` (reason ``hold_expired``) is queued."""
    expired = Expired()
    if not ids:
        return expired
    expired.orders = list(
        await session.scalars(
            update(Order)
            .where(Order.id.in_(ids), Order.status == OrderStatus.RESERVED)
            .values(status=OrderStatus.EXPIRED, updated_at=now)
            .returning(Order)
        )
    )
    for order in expired.orders:
        as_now = order_data(order)
        expired.buyers.append((order.buyer_id, as_now))
        data = {**as_now, "reason": "hold_expired"}
        await webhooks.enqueue(session, order.seller_id, "order.cancelled", data)
        units, row = await stock.give_back(session, order)
        if row is not None:
            expired.stock.append((order.stream_id, stock.event(row, units)))
    return expired


class HoldExpiry:
    """Gives back the units of reserved orders whose hold ran out.

    States: new -> running (a sweep every few seconds) -> closed. Several nodes may sweep at
    once: each order moves from reserved to expired in one conditional UPDATE, so exactly one
    node gives its units back.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        rooms: Rooms,
        every: float = 2.0,
        batch: int = 200,
    ) -> None:
        self._sessions = sessions
        self._rooms = rooms
        self._batch = batch
        self._periodic = Periodic(self.sweep, every)

    async def start(self) -> None:
        self._periodic.start()

    async def close(self) -> None:
        await self._periodic.stop()

    async def sweep(self, now: datetime | None = None) -> int:
        """Expire due holds; return how many orders expired."""
        now = now or utcnow()
        async with self._sessions.begin() as session:
            ids = list(await session.scalars(select(Order.id).where(due(now)).limit(self._batch)))
            expired = await expire(session, ids, now)
        await expired.announce(self._rooms)
        return len(expired.orders)
