"""Pinning products on the video, with optional flash sales (at most three pins at once)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from api.commerce import flash_sales
from api.commerce.gate import GATE
from api.commerce.schemas import PinEventOut, PinIn, PinsOut
from api.db import utcnow
from api.shows import cues
from api.shows.access import owned_stream, viewable_stream
from api.shows.lifecycle import ensure_not_finished
from api.shows.models import PinAction, PinEvent, StreamProduct
from api.shows.schemas import PinOut
from api.web.context import Context
from api.web.errors import ApiError, not_found
from api.web.routing import Api, Auth

api = Api()
MAX_PINS = 3


async def product_row(ctx: Context, stream_id: str, product_id: str) -> StreamProduct:
    """A product of the show, with its catalogue row, locked for change."""
    row = await ctx.session.scalar(
        select(StreamProduct)
        .options(selectinload(StreamProduct.product))
        .where(StreamProduct.stream_id == stream_id, StreamProduct.product_id == product_id)
        .with_for_update()
    )
    if row is None:
        raise not_found("Product in this stream")
    return row


@api.route(
    "POST",
    "/api/v1/streams/{stream_id}/pins",
    summary="Pin a product on the video",
    tag="commerce",
    status=201,
    body=PinIn,
    response=PinOut,
    errors=(401, 403, 404, 409, 413, 415, 422),
    description="At most three products are pinned at once. Pinning a pinned product "
    "again moves it or changes its flash sale.",
)
async def pin(ctx: Context, stream_id: str, body: PinIn) -> PinOut:
    stream = await owned_stream(ctx, stream_id)
    ensure_not_finished(stream)
    row = await product_row(ctx, stream.id, body.product_id)
    if row.pinned_at is None:
        pinned = await ctx.session.scalar(
            select(func.count()).where(
                StreamProduct.stream_id == stream.id, StreamProduct.pinned_at.is_not(None)
            )
        )
        if (pinned or 0) >= MAX_PINS:
            raise ApiError(
                409,
                "too_many_pins",
                f"At most {MAX_PINS} products are pinned at once",
                {"max": MAX_PINS},
            )
    now = utcnow()
    flash_sales.start(row, body.sale, now)
    row.pinned_at = now
    if body.x is not None and body.y is not None:
        row.x, row.y = body.x, body.y
    cues.to_recording(ctx, await cues.record(ctx.session, stream, row, PinAction.PIN, now))
    out = cues.pin_out(row)
    # A new offer: what it has is what the sale offers, or the product's stock.
    left = out.sale.remaining if out.sale else out.product.stock
    ctx.request.app[GATE].learn(stream.id, row.product_id, left)
    cues.announce(ctx, stream.id, "product:pinned", out.model_dump(mode="json"))
    return out


@api.route(
    "DELETE",
    "/api/v1/streams/{stream_id}/pins/{product_id}",
    summary="Unpin a product",
    tag="commerce",
    status=204,
    errors=(401, 403, 404, 409),
)
async def unpin(ctx: Context, stream_id: str, product_id: str) -> None:
    stream = await owned_stream(ctx, stream_id)
    row = await product_row(ctx, stream.id, product_id)
    if row.pinned_at is None:
        raise ApiError(409, "not_pinned", "The product is not pinned")
    row.pinned_at = None
    row.sale_price_cents = row.sale_remaining = row.sale_limit = row.sale_ends_at = None
    ctx.request.app[GATE].forget(stream.id, product_id)  # the sale is gone: back to the stock
    cues.to_recording(ctx, await cues.record(ctx.session, stream, row, PinAction.UNPIN))
    cues.announce(
        ctx, stream.id, "product:unpinned", {"stream_id": stream.id, "product_id": product_id}
    )


@api.route(
    "GET",
    "/api/v1/streams/{stream_id}/pins",
    summary="Pinned products and the timeline",
    tag="commerce",
    auth=Auth.OPTIONAL,
    response=PinsOut,
    errors=(401, 403, 404),
)
async def pins(ctx: Context, stream_id: str) -> PinsOut:
    stream = await viewable_stream(ctx, stream_id)
    rows = await ctx.session.scalars(
        select(StreamProduct)
        .options(selectinload(StreamProduct.product))
        .where(StreamProduct.stream_id == stream.id, StreamProduct.pinned_at.is_not(None))
        .order_by(StreamProduct.pinned_at)
    )
    events = await ctx.session.scalars(
        select(PinEvent).where(PinEvent.stream_id == stream.id).order_by(PinEvent.id)
    )
    return PinsOut(
        pinned=[cues.pin_out(r) for r in rows],
        timeline=[_on_the_replay(e, stream.recording_started_at) for e in events],
    )


def _on_the_replay(event: PinEvent, replay_start: datetime | None) -> PinEventOut:
    """The cue, timed on the replay's clock once there is one (its time 0 is the recording's
    first media, which comes after the show went live: the keyframe wait, the recorder's start)."""
    out = PinEventOut.model_validate(event)
    if replay_start is None:
        return out
    return out.model_copy(
        update={"offset_seconds": (event.created_at - replay_start).total_seconds()}
    )
