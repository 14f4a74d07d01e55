"""Accounts: sign-up, sign-in, profiles, follows, and roles for admins."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web
from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from api.accounts.handles import new_handle
from api.accounts.schemas import (
    AuthOut,
    LocationIn,
    LoginIn,
    ProfileOut,
    RegisterIn,
    UserOut,
    UserPatch,
    UsersQuery,
)
from api.accounts.whereabouts import home_cell
from api.identity.auth import DUMMY_HASH
from api.identity.models import Follow, Role, User
from api.web.context import SERVICES, Context
from api.web.errors import ApiError, forbidden, not_found, within_limit
from api.web.routing import Api, Auth
from twins.ratelimit import Limit

api = Api()

STAFF = frozenset({Role.ADMIN, Role.MODERATOR})


def require_user(ctx: Context) -> User:
    if ctx.user is None:
        raise ApiError(401, "unauthorized", "Sign in first", headers={"WWW-Authenticate": "Bearer"})
    return ctx.user


def require_role(ctx: Context, roles: frozenset[Role], why: str) -> User:
    user = require_user(ctx)
    if user.role not in roles:
        raise forbidden(why)
    return user


# Passwords are hashed and checked before the write transaction (each route's precheck), so a
# sign-in waiting for its turn at argon2 holds no database connection: SQLite has one writer.
PASSWORD_HASH = web.RequestKey("password_hash", str)
SIGNED_IN = web.RequestKey("signed_in", str)


async def _limit_auth(request: web.Request, action: str) -> None:
    services = request.app[SERVICES]
    await within_limit(
        services.limiter,
        f"auth:{action}:{request.remote or 'unknown'}",
        services.auth_limit,
        "Too many attempts; wait before trying again",
    )


@asynccontextmanager
async def _hashed_first(
    request: web.Request, _user_id: str | None, params: dict[str, Any]
) -> AsyncIterator[None]:
    await _limit_auth(request, "register")
    request[PASSWORD_HASH] = await request.app[SERVICES].passwords.hash(params["body"].password)
    yield


@asynccontextmanager
async def _checked_first(
    request: web.Request, _user_id: str | None, params: dict[str, Any]
) -> AsyncIterator[None]:
    """The account whose password this is, if any: an unknown email is checked against a dummy
    hash, as slow as a wrong password."""
    await _limit_auth(request, "login")
    services = request.app[SERVICES]
    body = params["body"]
    async with services.reads.begin() as session:
        user = await session.scalar(select(User).where(User.email == body.email.lower()))
    valid = await services.passwords.verify(
        user.password_hash if user else DUMMY_HASH, body.password
    )
    if user is not None and valid:
        request[SIGNED_IN] = user.id
    yield


def _signed_in(ctx: Context, user: User) -> AuthOut:
    return AuthOut(
        user=UserOut.model_validate(user),
        access_token=ctx.services.tokens.issue(user.id),
        expires_in=ctx.services.tokens.ttl_seconds,
    )


@api.route(
    "POST",
    "/api/v1/auth/register",
    summary="Create an account",
    tag="accounts",
    auth=Auth.NONE,
    status=201,
    body=RegisterIn,
    response=AuthOut,
    errors=(409, 422, 429),
    description="Anyone may sign up as a viewer or a seller; staff roles are granted by admins.",
    precheck=_hashed_first,
)
async def register(ctx: Context, body: RegisterIn) -> AuthOut:
    email = body.email.lower()
    if await ctx.session.scalar(select(User.id).where(User.email == email)):
        raise ApiError(409, "email_taken", "An account with this email already exists")
    user = User(
        email=email,
        display_name=body.display_name,
        handle=await new_handle(ctx.session, body.display_name),
        password_hash=ctx.request[PASSWORD_HASH],
        role=body.role,
        neighborhood=body.neighborhood,
    )
    ctx.session.add(user)
    try:
        await ctx.session.flush()
    except IntegrityError:
        raise ApiError(409, "email_taken", "An account with this email already exists") from None
    return _signed_in(ctx, user)


@api.route(
    "POST",
    "/api/v1/auth/login",
    summary="Sign in",
    tag="accounts",
    auth=Auth.NONE,
    body=LoginIn,
    response=AuthOut,
    errors=(401, 422, 429),
    precheck=_checked_first,
)
async def login(ctx: Context, body: LoginIn) -> AuthOut:
    user_id = ctx.request.get(SIGNED_IN)
    user = await ctx.session.get(User, user_id) if user_id else None
    if user is None:
        raise ApiError(401, "invalid_credentials", "Wrong email or password")
    return _signed_in(ctx, user)


@api.route(
    "GET",
    "/api/v1/me",
    summary="The signed-in account",
    tag="accounts",
    response=UserOut,
    errors=(401,),
)
async def me(ctx: Context) -> UserOut:
    return UserOut.model_validate(require_user(ctx))


# Moving is rare: a few changes an hour allow a correction, not a tour of the neighbourhoods.
LOCATION_LIMIT = Limit(rate=3 / 3600, burst=3)


@api.route(
    "PUT",
    "/api/v1/me/location",
    summary="Say roughly where you are (for neighbourhood shows)",
    tag="accounts",
    body=LocationIn,
    response=UserOut,
    errors=(400, 401, 413, 415, 422, 429),
    description="The point (e.g. the browser's geolocation) becomes an H3 cell of about 36 km² "
    "(`home_cell`); the point itself is not kept. Neighbourhood shows admit the accounts in "
    "their seller's cell and the six around it. At most 3 changes an hour.",
)
async def set_location(ctx: Context, body: LocationIn) -> UserOut:
    user = require_user(ctx)
    limit = "Your location changed too often; try again later"
    await within_limit(ctx.services.limiter, f"location:{user.id}", LOCATION_LIMIT, limit)
    user.home_cell = home_cell(body.latitude, body.longitude)
    return UserOut.model_validate(user)


@api.route(
    "DELETE",
    "/api/v1/me/location",
    summary="Forget where you are",
    tag="accounts",
    status=204,
    errors=(401,),
)
async def forget_location(ctx: Context) -> None:
    require_user(ctx).home_cell = None


async def _user(ctx: Context, user_id: str) -> User:
    user = await ctx.session.get(User, user_id)
    if user is None:
        raise not_found("User")
    return user


@api.route(
    "GET",
    "/api/v1/users/{user_id}",
    summary="A public profile",
    tag="accounts",
    auth=Auth.OPTIONAL,
    response=ProfileOut,
    errors=(404,),
)
async def profile(ctx: Context, user_id: str) -> ProfileOut:
    return await _profile_out(ctx, await _user(ctx, user_id))


@api.route(
    "GET",
    "/api/v1/sellers/{handle}",
    summary="A public profile by handle (the seller page's)",
    tag="accounts",
    auth=Auth.OPTIONAL,
    response=ProfileOut,
    errors=(404,),
)
async def profile_by_handle(ctx: Context, handle: str) -> ProfileOut:
    user = await ctx.session.scalar(select(User).where(User.handle == handle))
    if user is None:
        raise not_found("User")
    return await _profile_out(ctx, user)


async def _profile_out(ctx: Context, user: User) -> ProfileOut:
    followers = await ctx.session.scalar(
        select(func.count()).select_from(Follow).where(Follow.seller_id == user.id)
    )
    following = ctx.user is not None and bool(await ctx.session.get(Follow, (ctx.user.id, user.id)))
    return ProfileOut(
        id=user.id,
        display_name=user.display_name,
        handle=user.handle,
        role=Role(user.role),
        followers=followers or 0,
        following=following,
    )


@api.route(
    "POST",
    "/api/v1/users/{user_id}/follow",
    summary="Follow a seller",
    tag="accounts",
    status=204,
    errors=(401, 404, 422),
)
async def follow(ctx: Context, user_id: str) -> None:
    me = require_user(ctx)
    seller = await _user(ctx, user_id)
    if seller.id == me.id:
        raise ApiError(422, "cannot_follow_self", "You cannot follow yourself")
    if seller.role != Role.SELLER:
        raise ApiError(422, "not_a_seller", "Only sellers can be followed")
    # Following twice is not an error: the second call finds the row and changes nothing.
    insert = (
        postgresql.insert if ctx.session.get_bind().dialect.name == "postgresql" else sqlite.insert
    )
    await ctx.session.execute(
        insert(Follow).values(follower_id=me.id, seller_id=seller.id).on_conflict_do_nothing()
    )


@api.route(
    "DELETE",
    "/api/v1/users/{user_id}/follow",
    summary="Stop following a seller",
    tag="accounts",
    status=204,
    errors=(401, 404),
)
async def unfollow(ctx: Context, user_id: str) -> None:
    me = require_user(ctx)
    seller = await _user(ctx, user_id)
    await ctx.session.execute(
        delete(Follow).where(Follow.follower_id == me.id, Follow.seller_id == seller.id)
    )


@api.route(
    "GET",
    "/api/v1/users",
    summary="List accounts (staff)",
    tag="accounts",
    query=UsersQuery,
    response=list[UserOut],
    errors=(401, 403),
)
async def list_users(ctx: Context, query: UsersQuery) -> list[UserOut]:
    require_role(ctx, STAFF, "Only admins and moderators can list accounts")
    users = await ctx.session.scalars(
        select(User).order_by(User.created_at, User.id).limit(query.limit).offset(query.offset)
    )
    return [UserOut.model_validate(u) for u in users]


@api.route(
    "PATCH",
    "/api/v1/users/{user_id}",
    summary="Change an account's role (admin)",
    tag="accounts",
    body=UserPatch,
    response=UserOut,
    errors=(401, 403, 404, 409, 422),
)
async def change_role(ctx: Context, user_id: str, body: UserPatch) -> UserOut:
    admin = require_role(ctx, frozenset({Role.ADMIN}), "Only admins can change roles")
    user = await _user(ctx, user_id)
    if user.id == admin.id:
        raise ApiError(409, "own_role", "Admins cannot change their own role")
    user.role = body.role
    await ctx.session.flush()
    return UserOut.model_validate(user)
