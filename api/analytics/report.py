"""A show's funnel as the seller reads it: totals, per-product counters, pins, auctions and
minutes.

The room counters are written by ``api.realtime.rooms`` in batches; orders, payments and pin
intervals are read from their own rows, so they are exact the moment they commit.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from api.accounts.users import STAFF, require_user
from api.analytics.models import StreamMinute
from api.commerce.models import Auction, AuctionState, Bid, Order, OrderStatus
from api.db import utcnow
from api.shows.access import load_stream
from api.shows.models import PinAction, PinEvent, Stream, StreamProduct
from api.shows.schemas import (
    AnalyticsOut,
    AuctionAnalyticsOut,
    MinuteOut,
    OrdersBySourceOut,
    PinIntervalOut,
    ProductAnalyticsOut,
    SourceTotalsOut,
    ViewersByPlaybackOut,
)
from api.web.context import Audience, Context
from api.web.errors import forbidden
from api.web.routing import Api
from live.states import FINISHED, StreamStatus

api = Api()

MINUTE = timedelta(minutes=1)


def minute_of(moment: datetime) -> datetime:
    """The start of ``moment``'s UTC minute."""
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


async def show_analytics(session: AsyncSession, stream: Stream) -> AnalyticsOut:
    duration = None
    if stream.started_at is not None:
        duration = ((stream.ended_at or utcnow()) - stream.started_at).total_seconds()
    return AnalyticsOut(
        stream_id=stream.id,
        status=StreamStatus(stream.status),
        duration_seconds=duration,
        peak_viewers=stream.peak_viewers,
        unique_viewers=stream.unique_viewers,
        total_likes=stream.total_likes,
        chat_messages_count=stream.chat_messages_count,
        average_watch_time=stream.average_watch_time,
        products=await _products(session, stream.id),
        viewers_by_playback=ViewersByPlaybackOut(
            webrtc=stream.unique_webrtc_viewers, hls=stream.unique_hls_viewers
        ),
        orders_by_source=await _orders_by_source(session, stream.id),
        pin_intervals=await pin_intervals(session, stream.id),
        auctions=await _auctions(session, stream.id),
        series=await _series(session, stream),
    )


async def _products(session: AsyncSession, stream_id: str) -> list[ProductAnalyticsOut]:
    rows = await session.scalars(
        select(StreamProduct)
        .options(selectinload(StreamProduct.product))
        .where(StreamProduct.stream_id == stream_id)
        .order_by(StreamProduct.sort_order, StreamProduct.id)
    )
    totals = await _order_totals(session, stream_id, Order.product_id)
    out = []
    for row in rows:
        placed, settled, revenue = totals.get(row.product_id, (0, 0, 0))
        out.append(
            ProductAnalyticsOut(
                product_id=row.product_id,
                title=row.product.title,
                impressions=row.impressions,
                views=row.views,
                clicks=row.clicks,
                inquiries=row.inquiries,
                orders=placed,
                paid=settled,
                purchases=row.purchases,
                revenue_cents=revenue,
            )
        )
    return out


async def _order_totals(
    session: AsyncSession, stream_id: str, key: Any
) -> dict[Any, tuple[int, int, int]]:
    """The show's orders grouped by ``key`` (a column of ``orders``): how many were placed, how
    many are paid (shipped ones too), and the paid revenue."""
    paid = Order.status.in_((OrderStatus.PAID, OrderStatus.SHIPPED))  # shipped was paid
    rows = await session.execute(
        select(
            key,
            func.count(),
            func.sum(case((paid, 1), else_=0)),
            func.sum(case((paid, Order.quantity * Order.unit_price_cents), else_=0)),
        )
        .where(Order.stream_id == stream_id)
        .group_by(key)
    )
    return {
        group: (int(placed), int(settled or 0), int(revenue or 0))
        for group, placed, settled, revenue in rows
    }


async def _orders_by_source(session: AsyncSession, stream_id: str) -> OrdersBySourceOut:
    """Orders placed during the show and from its replay, with what each brought in."""
    totals = await _order_totals(session, stream_id, Order.from_replay)

    def source(from_replay: bool) -> SourceTotalsOut:
        placed, settled, revenue = totals.get(from_replay, (0, 0, 0))
        return SourceTotalsOut(orders=placed, paid=settled, revenue_cents=revenue)

    return OrdersBySourceOut(live=source(False), replay=source(True))


async def _auctions(session: AsyncSession, stream_id: str) -> list[AuctionAnalyticsOut]:
    """Each auction with its bids, bidders and late bids counted from the bids themselves."""
    counts = {
        auction_id: (int(bidders), int(late or 0))
        for auction_id, bidders, late in await session.execute(
            select(
                Bid.auction_id,
                func.count(func.distinct(Bid.bidder_id)),
                func.sum(case((Bid.late, 1), else_=0)),
            )
            .join(Auction, Auction.id == Bid.auction_id)
            .where(Auction.stream_id == stream_id)
            .group_by(Bid.auction_id)
        )
    }
    out = []
    for auction in await session.scalars(
        select(Auction).where(Auction.stream_id == stream_id).order_by(Auction.started_at)
    ):
        bidders, late = counts.get(auction.id, (0, 0))
        hammer = auction.high_cents if auction.state == AuctionState.SOLD else None
        out.append(
            AuctionAnalyticsOut(
                auction_id=auction.id,
                product_id=auction.product_id,
                state=auction.state,
                currency=auction.currency,
                bids=auction.bids,
                bidders=bidders,
                late_bids=late,
                extensions=auction.extensions,
                start_price_cents=auction.start_price_cents,
                hammer_cents=hammer,
                hammer_to_start=round(hammer / auction.start_price_cents, 3) if hammer else None,
            )
        )
    return out


async def pin_intervals(session: AsyncSession, stream_id: str) -> list[PinIntervalOut]:
    """From the stored cues: a pin opens an interval, its unpin closes it; pinning a product
    that is pinned already (to move it or change its sale) continues the same interval."""
    events = await session.execute(
        select(PinEvent.product_id, PinEvent.action, PinEvent.created_at)
        .where(
            PinEvent.stream_id == stream_id,
            PinEvent.action.in_((PinAction.PIN, PinAction.UNPIN)),
        )
        .order_by(PinEvent.id)
    )
    intervals: list[PinIntervalOut] = []
    open_: dict[str, PinIntervalOut] = {}
    for product_id, action, at in events:
        if action == PinAction.PIN and product_id not in open_:
            open_[product_id] = PinIntervalOut(
                product_id=product_id, pinned_at=at, unpinned_at=None
            )
            intervals.append(open_[product_id])
        elif action == PinAction.UNPIN and product_id in open_:
            open_.pop(product_id).unpinned_at = at
    return intervals


async def _series(session: AsyncSession, stream: Stream) -> list[MinuteOut]:
    """One point per minute from the start to the end (or now), zeros where nothing happened."""
    stored = {
        minute_of(m.minute): m
        for m in await session.scalars(
            select(StreamMinute).where(StreamMinute.stream_id == stream.id)
        )
    }
    orders = Counter(
        minute_of(at)
        for at in await session.scalars(
            select(Order.created_at).where(Order.stream_id == stream.id)
        )
    )
    bids = Counter(
        minute_of(at)
        for at in await session.scalars(
            select(Bid.placed_at)
            .join(Auction, Auction.id == Bid.auction_id)
            .where(Auction.stream_id == stream.id)
        )
    )
    marks = [*stored, *orders, *bids]
    if stream.started_at is not None:
        marks += [minute_of(stream.started_at), minute_of(stream.ended_at or utcnow())]
    if not marks:
        return []
    points = []
    minute, last = min(marks), max(marks)
    while minute <= last:
        row = stored.get(minute)
        points.append(
            MinuteOut(
                minute=minute,
                viewers=row.viewers if row else 0,
                webrtc_viewers=row.webrtc_viewers if row else 0,
                hls_viewers=row.hls_viewers if row else 0,
                likes=row.likes if row else 0,
                chat_messages=row.chat_messages if row else 0,
                clicks=row.clicks if row else 0,
                orders=orders[minute],
                bids=bids[minute],
            )
        )
        minute += MINUTE
    return points


@api.route(
    "GET",
    "/api/v1/streams/{stream_id}/analytics",
    summary="A show's analytics",
    tag="streams",
    response=AnalyticsOut,
    errors=(401, 403, 404),
)
async def analytics(ctx: Context, stream_id: str) -> AnalyticsOut:
    user = require_user(ctx)
    stream = await load_stream(ctx, stream_id)
    if stream.owner_id != user.id and user.role not in STAFF:
        raise forbidden("Only the stream's seller and staff see its analytics")
    report = await show_analytics(ctx.session, stream)
    if stream.status not in FINISHED:
        watching_now(report, await ctx.services.rooms.audience(stream.id))
    return report


def watching_now(report: AnalyticsOut, audience: Audience) -> None:
    """A running show's peak and current minute count who watches now: the rooms write their
    figures every 5 s, so the minute would read 0 for its first seconds."""
    report.peak_viewers = max(report.peak_viewers, audience.viewers)
    current = report.series[-1] if report.series else None
    if current is None or current.minute != minute_of(utcnow()):
        return
    current.viewers = max(current.viewers, audience.viewers)
    current.webrtc_viewers = max(current.webrtc_viewers, audience.webrtc)
    current.hls_viewers = max(current.hls_viewers, audience.hls)
