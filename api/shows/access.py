"""Who may see a show, and who may change it: the audience rules, as SQL and as checks."""

from __future__ import annotations

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload
from sqlalchemy.sql import ColumnElement

from api.accounts.users import STAFF, require_user
from api.accounts.whereabouts import neighbourhood
from api.identity.models import Follow, Role, User
from api.shows.models import Audience, Sanction, SanctionKind, Stream
from api.web.context import Context
from api.web.errors import ApiError, forbidden, not_found

_BEARER = {"WWW-Authenticate": "Bearer"}


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
    if user.home_cell:
        near = exists().where(
            User.id == Stream.owner_id, User.home_cell.in_(neighbourhood(user.home_cell))
        )
        conditions.append(and_(Stream.audience == Audience.NEIGHBORHOOD, near))
    return or_(*conditions)


def locate_neighbourhood(audience: Audience | None, seller: User) -> None:
    """A neighbourhood show is around its seller: refuse one whose seller has no location."""
    if audience == Audience.NEIGHBORHOOD and not seller.home_cell:
        raise ApiError(
            409,
            "no_location",
            "Say roughly where you are (PUT /me/location) to hold a neighbourhood show",
        )


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


async def admit(session: AsyncSession, user: User | None, stream: Stream) -> None:
    """The one check of every path that acts on a show for a caller (WHEP, orders): the show's
    audience includes ``user`` (None: anonymous) and ``user`` is not banned from it. Raises 401
    to sign in, 403 ``audience_restricted`` or 403 ``banned``."""
    await _in_audience(session, user, stream)
    if user is None:
        return
    ban = await session.get(Sanction, (stream.id, user.id, SanctionKind.BAN))
    if ban is not None:
        raise ApiError(403, "banned", "You are banned from this stream")


async def viewable_stream(ctx: Context, stream_id: str) -> Stream:
    """The stream, if its audience includes the caller (401 to sign in, 403 when not)."""
    stream = await load_stream(ctx, stream_id)
    await _in_audience(ctx.session, ctx.user, stream)
    return stream


async def _in_audience(session: AsyncSession, user: User | None, stream: Stream) -> None:
    if await can_watch(session, user, stream.id):
        return
    # The seller: a page refusing a followers-only show offers to follow them.
    details: dict[str, object] = {"audience": stream.audience, "seller_id": stream.owner_id}
    if stream.audience == Audience.NEIGHBORHOOD and user is not None and not user.home_cell:
        details["needs_location"] = True  # the page offers to share an approximate location
    if user is None:
        raise ApiError(401, "unauthorized", "Sign in to watch this stream", details, _BEARER)
    raise ApiError(
        403, "audience_restricted", f"This stream is for {stream.audience} only", details
    )


async def sellers_view(ctx: Context, stream_id: str, refusal: str) -> Stream:
    """The stream, to read, if the caller is its seller or staff; else 403 ``refusal``."""
    user = require_user(ctx)
    stream = await load_stream(ctx, stream_id)
    if stream.owner_id != user.id and user.role not in STAFF:
        raise forbidden(refusal)
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
