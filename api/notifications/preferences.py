"""What a user chose: devices subscribed to Web Push, channels for all sellers and for one,
and the unsubscribe link that needs no sign-in."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.accounts.schemas import PublicUserOut
from api.accounts.users import require_user
from api.identity.models import Role, User
from api.notifications.links import InvalidLink, UnsubscribeLinks
from api.notifications.models import (
    Channel,
    NotificationMute,
    NotificationSettings,
    PushSubscription,
)
from api.notifications.schemas import (
    MuteOut,
    NotificationSettingsOut,
    NotificationSettingsPatch,
    PushSubscriptionIn,
    PushSubscriptionOut,
    SellerChannelsIn,
    UnsubscribedOut,
    UnsubscribeQuery,
    VapidKeyOut,
)
from api.web.context import Context
from api.web.errors import ApiError, not_found
from api.web.routing import Api, Auth

api = Api()


@dataclass(frozen=True)
class Notifications:
    """What the routes need of the node: the VAPID public key and the unsubscribe links."""

    vapid_public_key: str
    links: UnsubscribeLinks


NOTIFICATIONS = web.AppKey("notifications", Notifications)


@api.route(
    "GET",
    "/api/v1/push/vapid-key",
    summary="The Web Push application server key",
    tag="notifications",
    auth=Auth.NONE,
    response=VapidKeyOut,
)
async def vapid_key(ctx: Context) -> VapidKeyOut:
    return VapidKeyOut(public_key=ctx.request.app[NOTIFICATIONS].vapid_public_key)


@api.route(
    "POST",
    "/api/v1/me/push-subscriptions",
    summary="Subscribe this device to Web Push",
    tag="notifications",
    status=201,
    body=PushSubscriptionIn,
    response=PushSubscriptionOut,
    errors=(401, 415, 422),
    description="One row per device (its endpoint): subscribing again updates its keys, and a "
    "browser now signed in to another account moves to that account.",
)
async def subscribe(ctx: Context, body: PushSubscriptionIn) -> PushSubscriptionOut:
    user = require_user(ctx)
    device = await ctx.session.scalar(
        select(PushSubscription).where(PushSubscription.endpoint == body.endpoint)
    )
    if device is None:
        device = PushSubscription(endpoint=body.endpoint)
        ctx.session.add(device)
    device.user_id, device.p256dh, device.auth = user.id, body.keys.p256dh, body.keys.auth
    await ctx.session.flush()
    return PushSubscriptionOut.model_validate(device)


@api.route(
    "DELETE",
    "/api/v1/me/push-subscriptions/{subscription_id}",
    summary="Unsubscribe a device from Web Push",
    tag="notifications",
    status=204,
    errors=(401, 404),
)
async def unsubscribe_device(ctx: Context, subscription_id: str) -> None:
    user = require_user(ctx)
    device = await ctx.session.get(PushSubscription, subscription_id)
    if device is None or device.user_id != user.id:
        raise not_found("Push subscription")
    await ctx.session.delete(device)


async def settings_out(session: AsyncSession, user_id: str) -> NotificationSettingsOut:
    chosen = await session.get(NotificationSettings, user_id)
    mutes = await session.scalars(
        select(NotificationMute)
        .where(NotificationMute.user_id == user_id)
        .order_by(NotificationMute.seller_id, NotificationMute.channel)
    )
    devices = await session.scalar(
        select(func.count())
        .select_from(PushSubscription)
        .where(PushSubscription.user_id == user_id)
    )
    return NotificationSettingsOut(
        push=chosen.push if chosen else True,
        email=chosen.email if chosen else False,
        muted=[MuteOut.model_validate(m) for m in mutes],
        devices=devices or 0,
    )


@api.route(
    "GET",
    "/api/v1/me/notifications",
    summary="Your go-live notification settings",
    tag="notifications",
    response=NotificationSettingsOut,
    errors=(401,),
)
async def my_settings(ctx: Context) -> NotificationSettingsOut:
    return await settings_out(ctx.session, require_user(ctx).id)


@api.route(
    "PATCH",
    "/api/v1/me/notifications",
    summary="Turn a channel on or off for every seller",
    tag="notifications",
    body=NotificationSettingsPatch,
    response=NotificationSettingsOut,
    errors=(401, 415, 422),
    description="Push is on by default (it needs a subscribed device), email off.",
)
async def change_settings(ctx: Context, body: NotificationSettingsPatch) -> NotificationSettingsOut:
    user = require_user(ctx)
    chosen = await ctx.session.get(NotificationSettings, user.id)
    if chosen is None:
        chosen = NotificationSettings(user_id=user.id, push=True, email=False)
        ctx.session.add(chosen)
    for name, value in body.changes().items():
        setattr(chosen, name, value)
    await ctx.session.flush()
    return await settings_out(ctx.session, user.id)


async def _seller(session: AsyncSession, seller_id: str) -> User:
    seller = await session.get(User, seller_id)
    if seller is None or seller.role != Role.SELLER:
        raise not_found("Seller")
    return seller


async def set_channel(
    session: AsyncSession, user_id: str, seller_id: str, channel: Channel, on: bool
) -> None:
    key = (user_id, seller_id, channel.value)
    mute = await session.get(NotificationMute, key)
    if on and mute is not None:
        await session.delete(mute)
    elif not on and mute is None:
        session.add(NotificationMute(user_id=user_id, seller_id=seller_id, channel=channel.value))
    await session.flush()


@api.route(
    "PUT",
    "/api/v1/me/notifications/sellers/{seller_id}",
    summary="Turn a channel on or off for one seller",
    tag="notifications",
    body=SellerChannelsIn,
    response=NotificationSettingsOut,
    errors=(401, 404, 415, 422),
)
async def seller_channels(
    ctx: Context, seller_id: str, body: SellerChannelsIn
) -> NotificationSettingsOut:
    user = require_user(ctx)
    await _seller(ctx.session, seller_id)
    for name, value in body.changes().items():
        await set_channel(ctx.session, user.id, seller_id, Channel(name), bool(value))
    return await settings_out(ctx.session, user.id)


@api.route(
    "POST",
    "/api/v1/unsubscribe",
    summary="One-click unsubscribe (the link of a notification)",
    tag="notifications",
    auth=Auth.NONE,
    query=UnsubscribeQuery,
    response=UnsubscribedOut,
    errors=(400, 404, 422),
    description="No sign-in: the signed token names the account, the seller and the channel, "
    "which is turned off for that seller. Mail clients POST here with the body "
    "List-Unsubscribe=One-Click (RFC 8058); the body is not read. Doing it twice is not an "
    "error.",
)
async def unsubscribe(ctx: Context, query: UnsubscribeQuery) -> UnsubscribedOut:
    try:
        link = ctx.request.app[NOTIFICATIONS].links.read(query.token)
    except InvalidLink:
        raise ApiError(400, "invalid_token", "This unsubscribe link is not valid") from None
    if await ctx.session.get(User, link.user_id) is None:
        raise not_found("Account")
    seller = await _seller(ctx.session, link.seller_id)
    await set_channel(ctx.session, link.user_id, seller.id, link.channel, False)
    return UnsubscribedOut(channel=link.channel, seller=PublicUserOut.model_validate(seller))
