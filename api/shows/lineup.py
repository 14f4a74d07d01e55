"""A show's lineup: the products it carries, in order, and where they sit on the video."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from api.catalog.models import Product
from api.shows import cues
from api.shows.access import owned_stream, viewable_stream
from api.shows.announcements import ProductsChanged
from api.shows.lifecycle import ensure_not_finished
from api.shows.models import PinAction, Stream, StreamProduct
from api.shows.schemas import AttachProductsIn, StreamProductOut, TagIn
from api.web.context import Context
from api.web.errors import ApiError, not_found
from api.web.routing import Api, Auth

api = Api()


async def attach(ctx: Context, stream: Stream, product_ids: list[str]) -> None:
    wanted = list(dict.fromkeys(product_ids))
    found = set(
        await ctx.session.scalars(
            select(Product.id).where(Product.id.in_(wanted), Product.owner_id == stream.owner_id)
        )
    )
    missing = [pid for pid in wanted if pid not in found]
    if missing:
        raise ApiError(
            422,
            "unknown_products",
            "Some products are not in the seller's catalogue",
            {"product_ids": missing},
        )
    attached = set(
        await ctx.session.scalars(
            select(StreamProduct.product_id).where(StreamProduct.stream_id == stream.id)
        )
    )
    last = await ctx.session.scalar(
        select(func.coalesce(func.max(StreamProduct.sort_order), -1)).where(
            StreamProduct.stream_id == stream.id
        )
    )
    order = (last if last is not None else -1) + 1
    for pid in wanted:
        if pid not in attached:
            ctx.session.add(StreamProduct(stream_id=stream.id, product_id=pid, sort_order=order))
            order += 1
    await ctx.session.flush()


async def stream_products(session: AsyncSession, stream_id: str) -> list[StreamProductOut]:
    rows = await session.scalars(
        select(StreamProduct)
        .options(selectinload(StreamProduct.product))
        .where(StreamProduct.stream_id == stream_id)
        .order_by(StreamProduct.sort_order, StreamProduct.id)
    )
    return [StreamProductOut.model_validate(r) for r in rows]


@api.route(
    "POST",
    "/api/v1/streams/{stream_id}/products",
    summary="Add products to a show",
    tag="streams",
    body=AttachProductsIn,
    response=list[StreamProductOut],
    errors=(401, 403, 404, 409, 413, 415, 422),
)
async def attach_products(
    ctx: Context, stream_id: str, body: AttachProductsIn
) -> list[StreamProductOut]:
    stream = await owned_stream(ctx, stream_id)
    ensure_not_finished(stream)
    await attach(ctx, stream, body.product_ids)
    bus = ctx.services.bus

    async def announce() -> None:
        await bus.publish(ProductsChanged(stream.id))

    ctx.after_commit(announce)
    return await stream_products(ctx.session, stream.id)


@api.route(
    "GET",
    "/api/v1/streams/{stream_id}/products",
    summary="A show's products",
    tag="streams",
    auth=Auth.OPTIONAL,
    response=list[StreamProductOut],
    errors=(401, 403, 404),
)
async def list_stream_products(ctx: Context, stream_id: str) -> list[StreamProductOut]:
    stream = await viewable_stream(ctx, stream_id)
    return await stream_products(ctx.session, stream.id)


@api.route(
    "POST",
    "/api/v1/streams/{stream_id}/products/{product_id}/tag",
    summary="Place a product on the video",
    tag="streams",
    body=TagIn,
    response=StreamProductOut,
    errors=(401, 403, 404, 409, 413, 415, 422),
)
async def tag_product(
    ctx: Context, stream_id: str, product_id: str, body: TagIn
) -> StreamProductOut:
    stream = await owned_stream(ctx, stream_id)
    ensure_not_finished(stream)
    row = await ctx.session.scalar(
        select(StreamProduct)
        .options(selectinload(StreamProduct.product))
        .where(StreamProduct.stream_id == stream.id, StreamProduct.product_id == product_id)
    )
    if row is None:
        raise not_found("Product in this stream")
    row.x, row.y, row.timestamp = body.x, body.y, body.timestamp
    cues.to_recording(ctx, await cues.record(ctx.session, stream, row, PinAction.TAG))
    tagged = {
        "stream_id": stream.id,
        "product_id": product_id,
        "x": body.x,
        "y": body.y,
        "timestamp": body.timestamp,
        "stock": row.product.stock,
    }
    cues.announce(ctx, stream.id, "product:tagged", tagged)
    return StreamProductOut.model_validate(row)
