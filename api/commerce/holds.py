"""Holds: a reserved order keeps its units for a while; when the hold runs out they go back."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.commerce import stock
from api.commerce.models import Order, OrderStatus
from api.commerce.orders import order_data
from api.db import utcnow
from api.web.context import Rooms
from api.webhooks import webhooks
from twins.periodic import Periodic


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
        events: list[tuple[str, dict[str, object]]] = []
        buyers: list[tuple[str, dict[str, object]]] = []
        async with self._sessions.begin() as session:
            due = list(
                await session.scalars(
                    select(Order.id)
                    .where(Order.status == OrderStatus.RESERVED, Order.hold_expires_at <= now)
                    .limit(self._batch)
                )
            )
            if not due:
                return 0
            expired = list(
                await session.scalars(
                    update(Order)
                    .where(Order.id.in_(due), Order.status == OrderStatus.RESERVED)
                    .values(status=OrderStatus.EXPIRED, updated_at=now)
                    .returning(Order)
                )
            )
            for order in expired:
                as_now = order_data(order)
                buyers.append((order.buyer_id, as_now))
                data = {**as_now, "reason": "hold_expired"}
                await webhooks.enqueue(session, order.seller_id, "order.cancelled", data)
                units, row = await stock.give_back(session, order)
                if row is not None:
                    events.append((order.stream_id, stock.event(row, units)))
        for stream_id, data in events:
            await self._rooms.to_stream(stream_id, "product:stock", data)
        for buyer_id, order_out in buyers:
            await self._rooms.to_user(buyer_id, "order:status", order_out)
        return len(expired)
