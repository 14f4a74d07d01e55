"""Auctions: one unit of a pinned product to the highest bidder, fair to every viewer's delay.

A bid is accepted by one conditional UPDATE of the auction's high bid (it must still be open
and the bid a full increment above the high bid as it is in the database), so concurrent bids
on any number of nodes form one strictly increasing sequence. A bid counts at the moment its
bidder saw: the server's ``now`` less the bidder's delay behind live, as its own evidence grants
it (``api.commerce.delays``, at most ``delays.CAP``). A bid whose moment falls within the soft
close moves the close to ``soft_close_seconds`` after that moment; a bid arriving after the
close is accepted only if its moment is before it and it does not bid on a high bid placed
after that moment. The close itself (``api.commerce.hammer``) waits ``CAP`` past the end for
such bids. See docs/commerce.md#auctions.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import and_, case, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from api.accounts.users import require_user
from api.commerce.delays import ViewerDelays
from api.commerce.models import Auction, AuctionState, Bid
from api.commerce.orders import SELLABLE
from api.commerce.pins import product_row
from api.commerce.schemas import AuctionIn, AuctionOut, BidIn, BidOut
from api.db import utcnow
from api.identity.models import User
from api.shows import cues
from api.shows.access import admit, owned_stream, viewable_stream
from api.shows.models import Stream
from api.web.context import Context, Rooms
from api.web.errors import ApiError, forbidden, not_found, within_limit
from api.web.metrics import Metrics, refusals
from api.web.routing import Api, Auth
from twins.ratelimit import Limit, RateLimiter

api = Api()

BID_LIMIT = Limit(rate=2, burst=5)
ANONYMOUS = "a bidder"
Clock = Callable[[], datetime]
Event = tuple[str, str, dict[str, Any]]  # (stream id, event, data) for the stream's room


def auction_out(auction: Auction, now: datetime) -> AuctionOut:
    high = auction.high_cents
    return AuctionOut(
        id=auction.id,
        stream_id=auction.stream_id,
        product_id=auction.product_id,
        currency=auction.currency,
        state=AuctionState(auction.state),
        start_price_cents=auction.start_price_cents,
        increment_cents=auction.increment_cents,
        soft_close_seconds=auction.soft_close_seconds,
        reserve_met=auction.reserve_cents is None or (high or 0) >= auction.reserve_cents,
        started_at=auction.started_at,
        ends_at=auction.ends_at,
        high_cents=high,
        high_bidder=auction.high_bidder_name,
        next_min_cents=high + auction.increment_cents if high else auction.start_price_cents,
        bids=auction.bids,
        extensions=auction.extensions,
        closed_at=auction.closed_at,
        order_id=auction.order_id,
        now=now,
    )


async def announce(rooms: Rooms, events: list[Event]) -> None:
    for stream_id, event, data in events:
        await rooms.to_stream(stream_id, event, data)


@dataclass
class Placed:
    """An accepted bid, and what the stream's room hears once it has committed."""

    out: BidOut
    events: list[Event] = field(default_factory=list)


def _refused(code: str, message: str, out: AuctionOut) -> ApiError:
    details = {
        "high_cents": out.high_cents,
        "next_min_cents": out.next_min_cents,
        "ends_at": out.ends_at.isoformat(),
    }
    return ApiError(409, code, message, details)


def _too_low(out: AuctionOut, body: BidIn) -> ApiError:
    """``outbid`` when someone bid over what the bidder saw; else ``too_low``."""
    high = out.high_cents
    if high is not None and body.seen_cents is not None and body.seen_cents < high:
        return _refused("outbid", "Someone bid higher first", out)
    return _refused("too_low", "Bid at least the next minimum", out)


def _closed(out: AuctionOut) -> ApiError:
    return _refused("closed", "The auction is over", out)


@dataclass
class _Turns:
    """One auction's bids on this node: one at the database (``busy``), the others waiting,
    highest first: (minus the amount, arrival, the bid, its go)."""

    busy: bool = False
    waiting: list[tuple[int, int, BidIn, asyncio.Future[None]]] = field(default_factory=list)


class Auctions:
    """This node's side of auctions: the clock every rule reads (tests set their own), the
    viewers' delays, and each open auction as the database last told this node, committed.

    A node sends the bids of one auction to the database one at a time (``turn``), each first
    checked against what the last one learnt: of a thousand bids at once, those under the new
    next minimum are refused from memory (the high bid only rises, so a refusal from a figure
    that was committed is still right) and only bids that can win wait on the database.
    """

    def __init__(
        self,
        limiter: RateLimiter,
        delays: ViewerDelays,
        clock: Clock = utcnow,
        *,
        metrics: Metrics | None = None,
    ) -> None:
        self.clock = clock
        self.delays = delays
        self._limiter = limiter
        self._metrics = metrics or Metrics()
        self._known: dict[str, AuctionOut] = {}
        self._turns: dict[str, _Turns] = {}
        self._arrivals = itertools.count()

    def learn(self, out: AuctionOut) -> None:
        """The auction as a committed transaction left it."""
        if out.state == AuctionState.OPEN:
            self._known[out.id] = out
        else:
            self._known.pop(out.id, None)

    def show_finished(self, stream_id: str) -> None:
        """The show ended: its auctions are forgotten, wherever they were closed."""
        for auction_id in [a for a, out in self._known.items() if out.stream_id == stream_id]:
            del self._known[auction_id]

    def held(self) -> int:
        """Auctions this node remembers."""
        return len(self._known)

    def placed(self, placed: Placed) -> None:
        """A bid was placed and committed."""
        self.learn(placed.out.auction)
        self._metrics.bids.labels("placed").inc()

    def _refuse_early(self, auction_id: str, body: BidIn) -> None:
        known = self._known.get(auction_id)
        if known is not None and body.amount_cents < known.next_min_cents:
            raise _too_low(known, body)

    @asynccontextmanager
    async def turn(self, auction_id: str, body: BidIn) -> AsyncIterator[None]:
        """Hold a bid until it is this node's only one of the auction at the database (the
        highest waiting goes first), and refuse it from memory as soon as what the bids before
        it learnt says it cannot win."""
        with refusals(self._metrics.bids):
            turns = await self._take_turn(auction_id, body)
        try:
            yield
        finally:
            self._hand_over(auction_id, turns)

    async def _take_turn(self, auction_id: str, body: BidIn) -> _Turns:
        self._refuse_early(auction_id, body)
        turns = self._turns.setdefault(auction_id, _Turns())
        if turns.busy:
            ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            heapq.heappush(turns.waiting, (-body.amount_cents, next(self._arrivals), body, ready))
            try:
                await ready
            except asyncio.CancelledError:
                if ready.done() and not ready.cancelled() and ready.exception() is None:
                    self._hand_over(auction_id, turns)  # it was ours: pass it on
                raise
        turns.busy = True
        try:
            self._refuse_early(auction_id, body)
        except ApiError:
            self._hand_over(auction_id, turns)
            raise
        return turns

    def _hand_over(self, auction_id: str, turns: _Turns) -> None:
        """The turn ends: refuse every waiting bid now under the next minimum at once, then
        give the turn to the highest of the others."""
        known = self._known.get(auction_id)
        if known is not None:
            keep = []
            for entry in turns.waiting:
                _, _, body, ready = entry
                if ready.done():
                    continue
                if body.amount_cents < known.next_min_cents:
                    ready.set_exception(_too_low(known, body))
                else:
                    keep.append(entry)
            heapq.heapify(keep)
            turns.waiting = keep
        while turns.waiting:
            ready = heapq.heappop(turns.waiting)[3]
            if not ready.done():
                ready.set_result(None)  # still busy: the turn is theirs
                return
        turns.busy = False
        if known is None or known.state != AuctionState.OPEN:
            self._turns.pop(auction_id, None)

    async def bid(
        self,
        session: AsyncSession,
        bidder: User,
        auction_id: str,
        body: BidIn,
        stream_id: str | None = None,
    ) -> Placed:
        """Place ``bidder``'s bid, or raise the ApiError that refuses it (nothing changed). Call
        it in its ``turn``, and tell ``placed`` once it has committed."""
        with refusals(self._metrics.bids):
            return await self._bid(session, bidder, auction_id, body, stream_id)

    async def _bid(
        self,
        session: AsyncSession,
        bidder: User,
        auction_id: str,
        body: BidIn,
        stream_id: str | None,
    ) -> Placed:
        await within_limit(self._limiter, f"bid:{bidder.id}", BID_LIMIT, "Too many bids at once")
        auction = await session.get(Auction, auction_id)
        if auction is None or stream_id not in (None, auction.stream_id):
            raise not_found("Auction")
        stream = await session.get(Stream, auction.stream_id)
        assert stream is not None  # the auction's stream: deleted with it
        await admit(session, bidder, stream)
        if bidder.id == auction.seller_id:
            raise forbidden("A seller does not bid in their own auction")
        now = self.clock()
        if auction.state != AuctionState.OPEN:
            raise _closed(auction_out(auction, now))
        delay = self.delays.granted(auction.stream_id, bidder.id, body.playback, now)
        moment = now - delay
        if auction.ends_at <= moment:
            raise _closed(auction_out(auction, now))
        late = auction.ends_at <= now
        if late and body.seen_cents is not None:
            shown = await _high_at(session, auction.id, moment)
            if body.seen_cents > (shown or 0):
                raise _refused(
                    "unseen",
                    "That high bid came after the close as you saw it",
                    auction_out(auction, now),
                )
        placed = await _raise_high(session, auction, bidder, body, now, moment)
        if placed is None:
            await session.refresh(auction)
            out = auction_out(auction, now)
            self.learn(out)  # what the database holds, committed by others
            if auction.state != AuctionState.OPEN or auction.ends_at <= moment:
                raise _closed(out)
            raise _too_low(out, body)
        extended = placed.ends_at == moment + timedelta(seconds=placed.soft_close_seconds)
        delay_ms = round(delay.total_seconds() * 1000)
        session.add(
            Bid(
                auction_id=placed.id,
                bidder_id=bidder.id,
                amount_cents=body.amount_cents,
                placed_at=now,
                delay_ms=delay_ms,
                late=late,
                extended=extended,
            )
        )
        await session.flush()
        out = auction_out(placed, now)
        data = {**out.model_dump(mode="json"), "extended": extended, "late": late}
        return Placed(
            BidOut(amount_cents=body.amount_cents, late=late, delay_ms=delay_ms, auction=out),
            [(placed.stream_id, "auction:bid", data)],
        )


async def _raise_high(
    session: AsyncSession,
    auction: Auction,
    bidder: User,
    body: BidIn,
    now: datetime,
    moment: datetime,
) -> Auction | None:
    """The one write that accepts a bid: the auction as it is after it, or None when the
    database's high bid (or end) refuses it."""
    extend_to = moment + timedelta(seconds=auction.soft_close_seconds)
    amount = body.amount_cents
    extends = Auction.ends_at < extend_to
    return await session.scalar(
        update(Auction)
        .where(
            Auction.id == auction.id,
            Auction.state == AuctionState.OPEN,
            Auction.ends_at > moment,
            or_(
                and_(Auction.high_cents.is_(None), Auction.start_price_cents <= amount),
                Auction.high_cents + Auction.increment_cents <= amount,
            ),
        )
        .values(
            high_cents=amount,
            high_bidder_id=bidder.id,
            high_bidder_name=ANONYMOUS if body.anonymous else bidder.display_name,
            high_at=now,
            bids=Auction.bids + 1,
            ends_at=case((extends, extend_to), else_=Auction.ends_at),
            extensions=Auction.extensions + case((extends, 1), else_=0),
        )
        .returning(Auction),
        execution_options={"populate_existing": True},
    )


async def _high_at(session: AsyncSession, auction_id: str, moment: datetime) -> int | None:
    """The high bid everyone could see at ``moment``: the last accepted by then."""
    return await session.scalar(
        select(Bid.amount_cents)
        .where(Bid.auction_id == auction_id, Bid.placed_at <= moment)
        .order_by(Bid.id.desc())
        .limit(1)
    )


AUCTIONS = web.AppKey("auctions", Auctions)


@asynccontextmanager
async def _early(
    request: web.Request, _user_id: str | None, params: dict[str, Any]
) -> AsyncIterator[None]:
    """Around the transaction: the bid's turn at the database (``Auctions.turn``)."""
    async with request.app[AUCTIONS].turn(params["auction_id"], params["body"]):
        yield


@api.route(
    "POST",
    "/api/v1/streams/{stream_id}/auctions",
    summary="Start an auction of a pinned product",
    tag="commerce",
    status=201,
    body=AuctionIn,
    response=AuctionOut,
    errors=(401, 403, 404, 409, 413, 415, 422),
    description="One unit of the product goes to the highest bidder when the countdown ends, "
    "if the high bid meets the reserve: they get a reserved order at that price. A bid within "
    "`soft_close_seconds` of the end moves the end that far on. 409 codes: not_live, "
    "not_pinned, out_of_stock, auction_running (one auction at a time per show).",
)
async def start_auction(ctx: Context, stream_id: str, body: AuctionIn) -> AuctionOut:
    stream = await owned_stream(ctx, stream_id)
    if stream.status not in SELLABLE:
        raise ApiError(409, "not_live", f"The stream is {stream.status}", {"status": stream.status})
    row = await product_row(ctx, stream.id, body.product_id)
    if row.pinned_at is None:
        raise ApiError(409, "not_pinned", "Pin the product before auctioning it")
    if row.product.stock < 1:
        raise ApiError(409, "out_of_stock", "The product is out of stock", {"stock": 0})
    running = await ctx.session.scalar(
        select(Auction.id).where(Auction.stream_id == stream.id, Auction.state == AuctionState.OPEN)
    )
    if running is not None:
        raise ApiError(
            409, "auction_running", "An auction is running in this show", {"auction_id": running}
        )
    now = ctx.request.app[AUCTIONS].clock()
    auction = Auction(
        stream_id=stream.id,
        product_id=row.product_id,
        seller_id=stream.owner_id,
        currency=row.product.currency,
        start_price_cents=body.start_price_cents,
        increment_cents=body.increment_cents,
        reserve_cents=body.reserve_cents,
        soft_close_seconds=body.soft_close_seconds,
        state=AuctionState.OPEN,
        started_at=now,
        ends_at=now + timedelta(seconds=body.duration_seconds),
        bids=0,
        extensions=0,
    )
    ctx.session.add(auction)
    await ctx.session.flush()
    out = auction_out(auction, now)
    cues.announce(ctx, stream.id, "auction:started", out.model_dump(mode="json"))
    auctions = ctx.request.app[AUCTIONS]

    async def learn() -> None:
        auctions.learn(out)

    ctx.after_commit(learn)
    return out


@api.route(
    "GET",
    "/api/v1/streams/{stream_id}/auctions",
    summary="A show's auctions",
    tag="commerce",
    auth=Auth.OPTIONAL,
    response=list[AuctionOut],
    errors=(401, 403, 404),
    description="Newest first: the running one, if any, then those closed.",
)
async def stream_auctions(ctx: Context, stream_id: str) -> list[AuctionOut]:
    stream = await viewable_stream(ctx, stream_id)
    now = ctx.request.app[AUCTIONS].clock()
    rows = await ctx.session.scalars(
        select(Auction)
        .where(Auction.stream_id == stream.id)
        .order_by(Auction.started_at.desc(), Auction.id)
    )
    return [auction_out(a, now) for a in rows]


@api.route(
    "POST",
    "/api/v1/auctions/{auction_id}/bids",
    summary="Bid in an auction",
    tag="commerce",
    status=201,
    body=BidIn,
    response=BidOut,
    errors=(401, 403, 404, 409, 413, 415, 422, 429),
    precheck=_early,
    description="409 codes (with `details`: high_cents, next_min_cents, ends_at): too_low (below "
    "the next minimum), outbid (another bid came over the high bid you saw, `seen_cents`), "
    "closed, unseen (after the close, a bid on a high bid placed after the close as you saw "
    "it). A bid after the end is accepted when the bidder's delay behind live, as the server's "
    "own evidence shows it for `playback` (at most 5 s), puts it before the end.",
)
async def place_bid(ctx: Context, auction_id: str, body: BidIn) -> BidOut:
    bidder = require_user(ctx)
    auctions = ctx.request.app[AUCTIONS]
    placed = await auctions.bid(ctx.session, bidder, auction_id, body)
    rooms = ctx.services.rooms

    async def send() -> None:
        auctions.placed(placed)
        await announce(rooms, placed.events)

    ctx.after_commit(send)
    return placed.out
