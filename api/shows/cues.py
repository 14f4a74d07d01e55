"""Product cues: every pin, unpin and tag of a show is one stored, timed, announced event."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from api.catalog.schemas import ProductOut
from api.db import utcnow
from api.shows.models import PinAction, PinEvent, Stream, StreamProduct
from api.shows.schemas import PinOut, SaleOut
from api.web.context import Context
from live.messages import CueAdded


def sale_of(row: StreamProduct) -> SaleOut | None:
    if row.sale_price_cents is None or row.sale_ends_at is None:
        return None
    return SaleOut(
        price_cents=row.sale_price_cents,
        remaining=row.sale_remaining or 0,
        per_buyer_limit=row.sale_limit or 1,
        ends_at=row.sale_ends_at,
    )


def pin_out(row: StreamProduct) -> PinOut:
    assert row.pinned_at is not None
    return PinOut(
        stream_id=row.stream_id,
        product=ProductOut.model_validate(row.product),
        x=row.x,
        y=row.y,
        pinned_at=row.pinned_at,
        sale=sale_of(row),
    )


async def record(
    session: AsyncSession,
    stream: Stream,
    row: StreamProduct,
    action: PinAction,
    now: datetime | None = None,
) -> PinEvent:
    """Store the cue with the show's clock (seconds since it went live, if it has)."""
    now = now or utcnow()
    offset = (now - stream.started_at).total_seconds() if stream.started_at else None
    event = PinEvent(
        stream_id=stream.id,
        product_id=row.product_id,
        action=action,
        x=row.x,
        y=row.y,
        offset_seconds=offset,
        price_cents=row.product.price_cents,
        sale_price_cents=row.sale_price_cents if action is PinAction.PIN else None,
        sale_quantity=row.sale_remaining if action is PinAction.PIN else None,
        sale_ends_at=row.sale_ends_at if action is PinAction.PIN else None,
        created_at=now,
    )
    session.add(event)
    await session.flush()
    return event


def to_recording(ctx: Context, event: PinEvent) -> None:
    """Hand the cue, after commit, to whichever node records the show (as EXT-X-DATERANGE)."""
    bus = ctx.services.bus
    message = CueAdded(
        stream_id=event.stream_id,
        id=event.id,
        action=event.action,
        product_id=event.product_id,
        at=event.created_at.isoformat(),
        x=event.x,
        y=event.y,
        price_cents=event.sale_price_cents or event.price_cents,
    )

    async def send() -> None:
        await bus.publish(message)

    ctx.after_commit(send)


def announce(ctx: Context, stream_id: str, event: str, data: dict[str, Any]) -> None:
    """Send ``event`` to the stream's room once the transaction has committed."""
    rooms = ctx.services.rooms

    async def send() -> None:
        await rooms.to_stream(stream_id, event, data)

    ctx.after_commit(send)
