"""Streams: the seed's Go-Live model, from preparing a show to its final analytics."""

from __future__ import annotations

from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload, selectinload
from sqlalchemy.sql import ColumnElement

from api.accounts.schemas import PublicUserOut
from api.accounts.users import STAFF, require_role, require_user
from api.analytics.report import show_analytics
from api.catalog.models import Product
from api.catalog.products import SELLERS
from api.identity.auth import new_publish_token
from api.identity.models import Follow, Role, User
from api.realtime import moderation
from api.realtime.moderation import RoomChange
from api.shows import cues
from api.shows.lifecycle import announce_status, ensure_not_finished, stream_webhook, transition
from api.shows.models import Audience, PinAction, Stream, StreamProduct
from api.shows.schemas import (
    AnalyticsOut,
    AttachProductsIn,
    GoLiveOut,
    IceServerOut,
    StreamIn,
    StreamOut,
    StreamProductOut,
    StreamSettings,
    StreamsQuery,
    TagIn,
)
from api.web.context import Context
from api.web.errors import ApiError, forbidden, not_found
from api.web.routing import Api, Auth
from live.states import StreamStatus

api = Api()

_DERIVED = frozenset({"owner", "whep_url", "hls_url"})


def stream_out(ctx: Context, stream: Stream) -> StreamOut:
    base = ctx.services.public_url
    columns = {name: getattr(stream, name) for name in StreamOut.model_fields.keys() - _DERIVED}
    return StreamOut(
        **columns,
        owner=PublicUserOut.model_validate(stream.owner),
        whep_url=f"{base}/whep/{stream.id}",
        hls_url=f"{base}/hls/{stream.id}/index.m3u8",
    )


def visible_to(user: User | None) -> ColumnElement[bool]:
    """SQL condition: the streams ``user`` may see under each stream's audience."""
    if user is None:
        return Stream.audience == Audience.EVERYONE
    if user.role in STAFF:
        return Stream.id.is_not(None)
    follows = exists().where(Follow.follower_id == user.id, Follow.seller_id == Stream.owner_id)
    conditions = [
        Stream.audience == Audience.EVERYONE,
        Stream.owner_id == user.id,
        and_(Stream.audience == Audience.FOLLOWERS, follows),
    ]
    if user.neighborhood:
        same_area = exists().where(
            User.id == Stream.owner_id, User.neighborhood == user.neighborhood
        )
        conditions.append(and_(Stream.audience == Audience.NEIGHBORHOOD, same_area))
    return or_(*conditions)


async def load_stream(ctx: Context, stream_id: str, *, for_update: bool = False) -> Stream:
    query = select(Stream).options(joinedload(Stream.owner)).where(Stream.id == stream_id)
    if for_update:
        query = query.with_for_update(of=Stream)
    stream = await ctx.session.scalar(query)
    if stream is None:
        raise not_found("Stream")
    return stream


async def can_watch(session: AsyncSession, user: User | None, stream_id: str) -> bool:
    """Whether the stream's audience includes ``user`` (None: anonymous)."""
    allowed = await session.scalar(select(visible_to(user)).where(Stream.id == stream_id))
    return bool(allowed)


async def viewable_stream(ctx: Context, stream_id: str) -> Stream:
    """The stream, if its audience includes the caller (401 to sign in, 403 when not)."""
    stream = await load_stream(ctx, stream_id)
    if not await can_watch(ctx.session, ctx.user, stream.id):
        if ctx.user is None:
            raise ApiError(
                401,
                "unauthorized",
                "Sign in to watch this stream",
                {"audience": stream.audience},
                {"WWW-Authenticate": "Bearer"},
            )
        raise ApiError(
            403,
            "audience_restricted",
            f"This stream is for {stream.audience} only",
            {"audience": stream.audience},
        )
    return stream


async def owned_stream(
    ctx: Context, stream_id: str, staff: frozenset[Role] = frozenset({Role.ADMIN})
) -> Stream:
    """The stream, locked for change, if the caller is its seller or one of ``staff``."""
    user = require_user(ctx)
    stream = await load_stream(ctx, stream_id, for_update=True)
    if stream.owner_id != user.id and user.role not in staff:
        raise forbidden("Only the stream's seller can change it")
    return stream


async def _attach(ctx: Context, stream: Stream, product_ids: list[str]) -> None:
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
    "/api/v1/streams",
    summary="Prepare a show",
    tag="streams",
    status=201,
    body=StreamIn,
    response=StreamOut,
    errors=(401, 403, 413, 415, 422),
)
async def create_stream(ctx: Context, body: StreamIn) -> StreamOut:
    seller = require_role(ctx, SELLERS, "Only sellers can go live")
    stream = Stream(owner_id=seller.id, **body.model_dump(exclude={"product_ids"}))
    stream.owner = seller
    ctx.session.add(stream)
    await ctx.session.flush()
    await _attach(ctx, stream, body.product_ids)
    return stream_out(ctx, stream)


@api.route(
    "GET",
    "/api/v1/streams",
    summary="Shows you may watch",
    tag="streams",
    auth=Auth.OPTIONAL,
    query=StreamsQuery,
    response=list[StreamOut],
    errors=(401, 422),
)
async def list_streams(ctx: Context, query: StreamsQuery) -> list[StreamOut]:
    statement = select(Stream).options(joinedload(Stream.owner)).where(visible_to(ctx.user))
    if query.status is not None:
        statement = statement.where(Stream.status == query.status)
    if query.mine:
        statement = statement.where(Stream.owner_id == require_user(ctx).id)
    statement = statement.order_by(Stream.created_at.desc(), Stream.id)
    streams = await ctx.session.scalars(statement.limit(query.limit).offset(query.offset))
    return [stream_out(ctx, s) for s in streams]


@api.route(
    "GET",
    "/api/v1/streams/{stream_id}",
    summary="One show",
    tag="streams",
    auth=Auth.OPTIONAL,
    response=StreamOut,
    errors=(401, 403, 404),
)
async def get_stream(ctx: Context, stream_id: str) -> StreamOut:
    return stream_out(ctx, await viewable_stream(ctx, stream_id))


@api.route(
    "PATCH",
    "/api/v1/streams/{stream_id}/settings",
    summary="Change a show's settings",
    tag="streams",
    body=StreamSettings,
    response=StreamOut,
    errors=(401, 403, 404, 409, 413, 415, 422),
)
async def update_settings(ctx: Context, stream_id: str, body: StreamSettings) -> StreamOut:
    stream = await owned_stream(ctx, stream_id)
    ensure_not_finished(stream)
    changes = body.changes()
    for name, value in changes.items():
        setattr(stream, name, value)
    await ctx.session.flush()
    change = RoomChange(stream.id)
    if "enable_chat" in changes:
        change.events.append(
            ("stream:settings", {"stream_id": stream.id, "enable_chat": stream.enable_chat})
        )
    services = ctx.services

    async def announce() -> None:
        await moderation.announce(services.rooms, services.bus, change)

    ctx.after_commit(announce)
    return stream_out(ctx, stream)


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
    await _attach(ctx, stream, body.product_ids)
    bus = ctx.services.bus

    async def announce() -> None:
        # Rooms reload the show's products: clicks, asks and chat mentions may name them now.
        await bus.publish({"type": "products.changed", "stream_id": stream.id})

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


@api.route(
    "POST",
    "/api/v1/streams/{stream_id}/go-live",
    summary="Get the WebRTC credentials",
    tag="streams",
    response=GoLiveOut,
    errors=(401, 403, 404, 409),
    description="Returns the WHIP URL and a new publish token (older tokens stop working). "
    "The stream turns live when the publisher's media arrives.",
)
async def go_live(ctx: Context, stream_id: str) -> GoLiveOut:
    stream = await owned_stream(ctx, stream_id)
    ensure_not_finished(stream)
    token, stream.publish_token_hash = new_publish_token()
    await ctx.session.flush()
    servers = ctx.services.ice.servers_for(stream.owner_id)
    return GoLiveOut(
        stream=stream_out(ctx, stream),
        whip_url=f"{ctx.services.public_url}/whip/{stream.id}",
        publish_token=token,
        ice_servers=[IceServerOut.model_validate(s) for s in servers],
    )


@api.route(
    "POST",
    "/api/v1/streams/{stream_id}/end",
    summary="End the show",
    tag="streams",
    response=AnalyticsOut,
    errors=(401, 403, 404, 409),
)
async def end_stream(ctx: Context, stream_id: str) -> AnalyticsOut:
    stream = await owned_stream(ctx, stream_id, staff=STAFF)
    source = stream.status
    transition(stream, StreamStatus.ENDED)
    await stream_webhook(ctx.session, stream, source)
    stream.publish_token_hash = None
    await ctx.session.flush()
    # The summary includes what this node's rooms gathered but had not written yet.
    await ctx.services.rooms.flush(stream_id, ctx.session)
    await ctx.session.refresh(stream)
    services = ctx.services

    async def announce() -> None:
        await announce_status(services.rooms, services.bus, stream_id, StreamStatus.ENDED)

    ctx.after_commit(announce)
    return await show_analytics(ctx.session, stream)


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
    return await show_analytics(ctx.session, stream)
