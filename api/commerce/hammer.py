"""The hammer: an auction closes once, and its winner gets a reserved order at the high bid.

An auction closes ``delays.CAP`` after its end, so that a bid from a viewer who saw the end
later (``api.commerce.auctions``) can still arrive. One conditional UPDATE moves it from open to
sold or unsold, so of several nodes sweeping at once exactly one closes it and makes the order,
in the same transaction. The order is an ordinary one (``api.commerce.orders``): it holds its
unit for ``HOLD`` and is paid, cancelled or expired through checkout like any other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.commerce import stock
from api.commerce.auctions import Auctions, auction_out
from api.commerce.delays import CAP
from api.commerce.models import Auction, AuctionState, Order
from api.commerce.orders import HOLD, order_data
from api.identity.models import User
from api.web.context import Rooms
from api.web.metrics import Metrics
from api.webhooks import webhooks
from twins.periodic import Periodic

EVERY = 0.5  # seconds between sweeps: how late after its grace an auction may close


@dataclass(frozen=True)
class Hammered:
    """A closed auction, as its show's room hears it, and the winner's order, if sold (with
    the product's stock it left)."""

    stream_id: str
    closed: dict[str, Any]
    order: dict[str, Any] | None = None
    stock: dict[str, Any] | None = None

    async def announce(self, rooms: Rooms) -> None:
        await rooms.to_stream(self.stream_id, "auction:closed", self.closed)
        if self.stock is not None:
            await rooms.to_stream(self.stream_id, "product:stock", self.stock)
        if self.order is not None:
            await rooms.to_user(str(self.order["buyer_id"]), "order:status", self.order)


async def hammer(session: AsyncSession, auction_id: str, now: datetime) -> Hammered | None:
    """Close the auction if it is due and still open, or None when another sweep (or node)
    closed it, or it is not due."""
    met = or_(Auction.reserve_cents.is_(None), Auction.high_cents >= Auction.reserve_cents)
    auction = await session.scalar(
        update(Auction)
        .where(
            Auction.id == auction_id,
            Auction.state == AuctionState.OPEN,
            Auction.ends_at <= now - CAP,
        )
        .values(
            state=case(
                (and_(Auction.high_cents.is_not(None), met), AuctionState.SOLD),
                else_=AuctionState.UNSOLD,
            ),
            closed_at=now,
        )
        .returning(Auction),
        execution_options={"populate_existing": True},
    )
    if auction is None:
        return None
    sold = await _order(session, auction, now) if auction.state == AuctionState.SOLD else None
    if sold is None:
        auction.state = AuctionState.UNSOLD  # unsold, or the last unit went elsewhere meanwhile
        await session.flush()
        return Hammered(auction.stream_id, auction_out(auction, now).model_dump(mode="json"))
    order, left = sold
    auction.order_id = order.id
    data = order_data(order)
    await webhooks.enqueue(session, order.seller_id, "order.reserved", data)
    await session.flush()
    closed = auction_out(auction, now).model_dump(mode="json")
    stock = {"stream_id": auction.stream_id, "product_id": auction.product_id, "stock": left}
    return Hammered(auction.stream_id, closed, data, {**stock, "sale_remaining": None})


async def _order(
    session: AsyncSession, auction: Auction, now: datetime
) -> tuple[Order, int] | None:
    """The winner's reserved order for one unit at the hammer price, and the stock left (None:
    no unit left)."""
    assert auction.high_bidder_id is not None and auction.high_cents is not None
    left = await stock.take(session, auction.product_id, 1)
    if left is None:
        return None
    winner = await session.get(User, auction.high_bidder_id)
    order = Order(
        stream_id=auction.stream_id,
        product_id=auction.product_id,
        buyer_id=auction.high_bidder_id,
        seller_id=auction.seller_id,
        quantity=1,
        unit_price_cents=auction.high_cents,
        currency=auction.currency,
        in_sale=False,
        from_replay=False,
        idempotency_key=f"auction:{auction.id}",
        hold_expires_at=now + HOLD,
        delivery=winner.delivery if winner else None,
    )
    session.add(order)
    await session.flush()
    return order, left


class Hammer:
    """Closes the auctions that are due.

    States: new -> running -> closed. Every node may run one: each auction is closed by the
    one conditional UPDATE that wins (``hammer``). The winner hears ``order:status`` on their
    own sockets; the show's room hears ``auction:closed``.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        rooms: Rooms,
        auctions: Auctions,
        every: float = EVERY,
        *,
        metrics: Metrics | None = None,
    ) -> None:
        self._sessions = sessions
        self._metrics = metrics or Metrics()
        self._rooms = rooms
        self._auctions = auctions
        self._sweep = Periodic(self.close_due, every)

    async def start(self) -> None:
        self._sweep.start()

    async def close(self) -> None:
        await self._sweep.stop()

    async def close_due(self) -> int:
        """Close every auction due by the auctions' clock; return how many this call closed."""
        now = self._auctions.clock()
        async with self._sessions.begin() as session:
            due = list(
                await session.scalars(
                    select(Auction.id).where(
                        Auction.state == AuctionState.OPEN, Auction.ends_at <= now - CAP
                    )
                )
            )
        closed = 0
        for auction_id in due:
            async with self._sessions.begin() as session:
                hammered = await hammer(session, auction_id, now)
            if hammered is not None:
                closed += 1
                outcome = "unsold" if hammered.order is None else "sold"
                self._metrics.auction_closes.labels(outcome).inc()
                await hammered.announce(self._rooms)
        return closed
