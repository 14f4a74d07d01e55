"""Holds: a reserved order keeps its units for a while; when the hold runs out they go back.

An order being paid on Stripe Checkout keeps its own hold, though Stripe's session lasts at least
30 minutes: when the hold runs out the sweeper first closes the session at Stripe, so no one pays
for units that go back, and only then expires the order. See docs/commerce.md#stripe-checkout.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.commerce import payments, stock
from api.commerce.gate import SalesGate
from api.commerce.models import Order, OrderStatus
from api.commerce.orders import order_data
from api.db import utcnow
from api.web.context import Rooms, StripeAccount
from api.webhooks import webhooks
from twins.periodic import Periodic

log = logging.getLogger(__name__)

# A hold whose Checkout Session Stripe says is paid, or cannot be asked about, lasts this much
# longer: Stripe's paid event settles its order meanwhile. After it the order expires anyway,
# and a payment that still comes is refunded (api.commerce.checkout).
SESSION_GRACE = timedelta(minutes=10)
STRIPE_AT_ONCE = 8  # sessions closed at Stripe at a time
STRIPE_WAIT = 15.0  # seconds a sweep waits on Stripe; the sessions not answered wait for the next


def due(now: datetime) -> ColumnElement[bool]:
    """Reserved orders outside Checkout whose hold has run out by ``now``."""
    return (
        (Order.status == OrderStatus.RESERVED)
        & Order.checkout_session_id.is_(None)
        & (Order.hold_expires_at <= now)
    )


def due_in_checkout(now: datetime) -> ColumnElement[bool]:
    """Reserved orders in a Checkout Session whose hold has run out by ``now``."""
    return (
        (Order.status == OrderStatus.RESERVED)
        & Order.checkout_session_id.is_not(None)
        & (Order.hold_expires_at <= now)
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

    def release(self, gate: SalesGate) -> None:
        """Units came back: this node's sales gate asks the database again about their offers."""
        for order in self.orders:
            gate.forget(order.stream_id, order.product_id)


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

    States: new -> running -> closed. Two sweeps run every few seconds: one expires holds outside
    Checkout (the database only), the other closes the Checkout Sessions of run-out holds at
    Stripe and then expires their orders, so that a slow Stripe never delays the first. Several
    nodes may sweep at once: each order moves from reserved to expired in one conditional
    UPDATE, so exactly one node gives its units back; a session closed twice stays expired.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        rooms: Rooms,
        *,
        reads: async_sessionmaker[AsyncSession] | None = None,
        stripe: StripeAccount | None = None,
        gate: SalesGate | None = None,
        every: float = 2.0,
        batch: int = 200,
    ) -> None:
        self._sessions = sessions
        self._reads = reads or sessions
        self._rooms = rooms
        self._stripe = stripe  # None: sessions are never closed, their orders wait the grace
        self._gate = gate
        self._batch = batch
        self._paid: set[str] = set()  # sessions Stripe said are complete: not asked again
        self._sweeps = (Periodic(self.expire_holds, every), Periodic(self.close_checkouts, every))

    async def start(self) -> None:
        for sweep in self._sweeps:
            sweep.start()

    async def close(self) -> None:
        for sweep in self._sweeps:
            await sweep.stop()

    async def _told(self, expired: Expired) -> None:
        await expired.announce(self._rooms)
        if self._gate is not None:
            expired.release(self._gate)

    async def sweep(self, now: datetime | None = None) -> int:
        """Both sweeps, one after the other; return how many orders expired."""
        now = now or utcnow()
        return await self.expire_holds(now) + await self.close_checkouts(now)

    async def expire_holds(self, now: datetime | None = None) -> int:
        """Expire run-out holds outside Checkout; return how many orders expired."""
        now = now or utcnow()
        async with self._sessions.begin() as session:
            ids = list(await session.scalars(select(Order.id).where(due(now)).limit(self._batch)))
            expired = await expire(session, ids, now)
        await self._told(expired)
        return len(expired.orders)

    async def close_checkouts(self, now: datetime | None = None) -> int:
        """Close at Stripe the sessions of run-out holds, then expire the orders of those
        closed, and of any past the grace; return how many orders expired.

        Stripe is asked between two transactions, never inside one: on SQLite a write
        transaction holds the node's one write lock, which no purchase should wait on."""
        now = now or utcnow()
        async with self._reads.begin() as session:
            query = select(Order.id, Order.checkout_session_id, Order.hold_expires_at)
            rows = (
                await session.execute(
                    query.where(due_in_checkout(now))
                    .order_by(Order.hold_expires_at)
                    .limit(self._batch)
                )
            ).all()
        waiting = {session_id for _, session_id, _ in rows if session_id is not None}
        self._paid &= waiting  # the others were settled or expired meanwhile
        standing = await self._close(sorted(waiting - self._paid))
        self._paid |= {s for s, status in standing.items() if status == "complete"}
        late = now - SESSION_GRACE
        ids = [
            order_id
            for order_id, session_id, hold in rows
            if hold <= late or (session_id is not None and standing.get(session_id) == "expired")
        ]
        if not ids:
            return 0
        async with self._sessions.begin() as session:
            expired = await expire(session, ids, now)
        await self._told(expired)
        return len(expired.orders)

    async def _close(self, session_ids: Sequence[str]) -> dict[str, str | None]:
        """Each session's status at Stripe once asked to expire it (see
        ``payments.close_session``); a session Stripe did not answer in time is left out."""
        standing: dict[str, str | None] = {}
        account = self._stripe
        if account is None or not session_ids:
            return standing
        turns = asyncio.Semaphore(STRIPE_AT_ONCE)

        async def close(session_id: str) -> None:
            async with turns:
                standing[session_id] = await payments.close_session(account, session_id)

        try:
            async with asyncio.timeout(STRIPE_WAIT), asyncio.TaskGroup() as group:
                for session_id in session_ids:
                    group.create_task(close(session_id))
        except TimeoutError:
            log.warning(
                "Stripe answered for %d of %d checkouts in %.0f s; the rest wait for the next "
                "sweep",
                len(standing),
                len(session_ids),
                STRIPE_WAIT,
            )
        return standing
