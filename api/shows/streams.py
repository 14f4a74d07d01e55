"""Shows: preparing one, its settings, going live and ending it with its summary."""

from __future__ import annotations

from typing import Protocol

from aiohttp import web
from sqlalchemy import Select, and_, delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from api.accounts.schemas import PublicUserOut
from api.accounts.users import STAFF, require_role, require_user
from api.catalog.products import SELLERS
from api.identity.auth import new_publish_token
from api.identity.models import Checkout, User
from api.notifications.models import Notice
from api.shows import announcements
from api.shows.access import locate_neighbourhood, owned_stream, viewable_stream, visible_to
from api.shows.announcements import RoomChange
from api.shows.lifecycle import (
    announce_status,
    ensure_not_finished,
    stream_webhook,
    tell,
    transition,
)
from api.shows.lineup import attach
from api.shows.models import Stream
from api.shows.schemas import (
    AnalyticsOut,
    GoLiveOut,
    IceServerOut,
    IceServersOut,
    Section,
    StreamIn,
    StreamOut,
    StreamSettings,
    StreamsQuery,
)
from api.web.context import Context
from api.web.errors import ApiError, within_limit
from api.web.routing import Api, Auth
from live.states import StreamStatus
from recorder.files import POSTER
from twins.ratelimit import Limit

api = Api()
# A page asks once per playback and again before its credentials expire.
ICE_SERVERS_LIMIT = Limit(rate=0.5, burst=10)


class Summary(Protocol):
    """What ending a show answers with: its analytics (``api.analytics.report``)."""

    async def __call__(self, session: AsyncSession, stream: Stream) -> AnalyticsOut: ...


SUMMARY = web.AppKey("show_summary", Summary)

_DERIVED = frozenset({"owner", "whep_url", "hls_url", "poster_url", "viewers", "checkout"})
ON_AIR = (StreamStatus.LIVE, StreamStatus.RECONNECTING)


def stream_out(ctx: Context, stream: Stream, viewers: int | None = None) -> StreamOut:
    base = ctx.services.public_url
    columns = {name: getattr(stream, name) for name in StreamOut.model_fields.keys() - _DERIVED}
    on_air = stream.status in ON_AIR
    return StreamOut(
        **columns,
        owner=PublicUserOut.model_validate(stream.owner),
        whep_url=f"{base}/whep/{stream.id}",
        hls_url=f"{base}/hls/{stream.id}/master.m3u8",
        poster_url=f"{base}/hls/{stream.id}/{POSTER}" if on_air else stream.thumbnail_url,
        viewers=viewers,
        checkout=Checkout(stream.owner.checkout),
    )


async def streams_out(ctx: Context, streams: list[Stream]) -> list[StreamOut]:
    """``streams`` as a list shows them: each live one with who watches it now."""
    rooms = ctx.services.rooms
    return [
        stream_out(ctx, s, (await rooms.audience(s.id)).viewers if s.status in ON_AIR else None)
        for s in streams
    ]


@api.route(
    "POST",
    "/api/v1/streams",
    summary="Prepare a show",
    tag="streams",
    status=201,
    body=StreamIn,
    response=StreamOut,
    errors=(401, 403, 409, 413, 415, 422),
)
async def create_stream(ctx: Context, body: StreamIn) -> StreamOut:
    seller = require_role(ctx, SELLERS, "Only sellers can go live")
    locate_neighbourhood(body.audience, seller)
    stream = Stream(owner_id=seller.id, **body.model_dump(exclude={"product_ids"}))
    stream.owner = seller
    ctx.session.add(stream)
    await ctx.session.flush()
    await attach(ctx, stream, body.product_ids)
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
    if query.seller is not None:
        statement = statement.join(Stream.owner).where(User.handle == query.seller)
    statement = in_section(statement, query.section)
    streams = await ctx.session.scalars(statement.limit(query.limit).offset(query.offset))
    return await streams_out(ctx, list(streams))


def in_section(statement: Select[Stream], section: Section | None) -> Select[Stream]:
    """``statement`` narrowed to one section of the home page, in its order."""
    if section is Section.LIVE:
        return statement.where(Stream.status.in_(ON_AIR)).order_by(
            Stream.started_at.desc(), Stream.id
        )
    if section is Section.UPCOMING:
        planned = and_(Stream.status == StreamStatus.CREATED, Stream.scheduled_at.is_not(None))
        return statement.where(planned).order_by(Stream.scheduled_at, Stream.id)
    if section is Section.REPLAYS:
        replayable = and_(Stream.status == StreamStatus.ENDED, Stream.vod_url.is_not(None))
        return statement.where(replayable).order_by(Stream.ended_at.desc(), Stream.id)
    return statement.order_by(Stream.created_at.desc(), Stream.id)


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
    "GET",
    "/api/v1/streams/{stream_id}/ice-servers",
    summary="STUN and TURN servers to watch or publish a show through",
    tag="streams",
    auth=Auth.OPTIONAL,
    response=IceServersOut,
    errors=(401, 403, 404, 429),
    description="Time-limited TURN credentials for whoever may watch the show (anonymous "
    "viewers of a public one too), so a viewer whose network blocks UDP still plays over "
    "WebRTC. Ask again before `expires_in` runs out.",
)
async def ice_servers(ctx: Context, stream_id: str) -> IceServersOut:
    stream = await viewable_stream(ctx, stream_id)
    await within_limit(
        ctx.services.limiter,
        f"ice:{ctx.client_ip()}",
        ICE_SERVERS_LIMIT,
        "Too many requests for ICE servers",
    )
    ice = ctx.services.ice
    servers = ice.servers_for(ctx.user.id if ctx.user else f"viewer-{stream.id}")
    return IceServersOut(
        ice_servers=[IceServerOut.model_validate(s) for s in servers],
        expires_in=ice.turn_ttl_seconds,
    )


# What a seller may still change once the show is over: whether its replay sells.
AFTER_THE_SHOW = frozenset({"shoppable_replay"})


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
    changes = body.changes()
    if changes.keys() - AFTER_THE_SHOW:
        ensure_not_finished(stream)
    locate_neighbourhood(body.audience, stream.owner)
    planned_for = stream.scheduled_at
    for name, value in changes.items():
        setattr(stream, name, value)
    await ctx.session.flush()
    moved = planned_for is not None and stream.scheduled_at not in (None, planned_for)
    if moved and stream.status == StreamStatus.CREATED:
        await tell(ctx.session, Notice.RESCHEDULED, stream)
    change = RoomChange(stream.id)
    if "enable_chat" in changes:
        change.events.append(
            ("stream:settings", {"stream_id": stream.id, "enable_chat": stream.enable_chat})
        )
    services = ctx.services

    async def announce() -> None:
        await announcements.announce(services.rooms, services.bus, change)

    ctx.after_commit(announce)
    return stream_out(ctx, stream)


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
        ice_expires_in=ctx.services.ice.turn_ttl_seconds,
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
    return await ctx.request.app[SUMMARY](ctx.session, stream)


@api.route(
    "DELETE",
    "/api/v1/streams/{stream_id}",
    summary="Delete a planned show",
    tag="streams",
    status=204,
    errors=(401, 403, 404, 409),
    description="Only a show that never went live (`created`), by its seller or staff; its "
    "lineup, tags, pins and chat go with it, the products stay in the catalogue. A show that "
    "went live keeps its history: `409 stream_started` (end it instead).",
)
async def delete_stream(ctx: Context, stream_id: str) -> None:
    stream = await owned_stream(ctx, stream_id, staff=STAFF)
    if stream.status != StreamStatus.CREATED:
        raise ApiError(
            409,
            "stream_started",
            f"The stream is {stream.status}: only a show that never went live can be deleted",
            {"status": stream.status},
        )
    await ctx.session.execute(delete(Stream).where(Stream.id == stream.id))
