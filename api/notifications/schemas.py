"""Request and response bodies of push subscriptions, notification settings and unsubscribe."""

from __future__ import annotations

import binascii
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints

from api.accounts.schemas import PublicUserOut
from api.notifications.models import Channel
from api.notifications.push import unb64url
from api.web.schemas import Input, Output, Patch, http_url


def _key_of(length: int, first: int | None = None) -> AfterValidator:
    def check(value: str) -> str:
        try:
            raw = unb64url(value)
        except (binascii.Error, ValueError):
            raise ValueError("must be base64url") from None
        if len(raw) != length or (first is not None and raw[0] != first):
            raise ValueError(f"must be {length} bytes, base64url")
        return value

    return AfterValidator(check)


Base64Url = StringConstraints(max_length=128, pattern=r"^[A-Za-z0-9_-]+={0,2}$")


class PushKeysIn(Input):
    p256dh: Annotated[
        str, Base64Url, _key_of(65, 0x04), Field(description="The device's P-256 public key")
    ]
    auth: Annotated[str, Base64Url, _key_of(16), Field(description="Its 16-byte auth secret")]


class PushSubscriptionIn(Input):
    """The browser's ``PushSubscription.toJSON()``."""

    endpoint: Annotated[
        str,
        StringConstraints(max_length=2048),
        AfterValidator(http_url),
        Field(json_schema_extra={"format": "uri"}),
    ]
    keys: PushKeysIn
    expirationTime: float | None = None  # the browser's own name


class PushSubscriptionOut(Output):
    id: str
    created_at: datetime


class VapidKeyOut(Output):
    public_key: str = Field(description="applicationServerKey for pushManager.subscribe()")


class MuteOut(Output):
    seller_id: str
    channel: Channel


class NotificationSettingsOut(Output):
    push: bool = Field(description="Web Push when sellers you follow go live")
    email: bool = Field(description="Email when sellers you follow go live")
    muted: list[MuteOut] = Field(description="Channels turned off for one seller")
    devices: int = Field(description="Devices subscribed to Web Push")


class NotificationSettingsPatch(Patch):
    push: bool | None = None
    email: bool | None = None


class SellerChannelsIn(Patch):
    """Channels for one seller: false turns it off for them, true back on."""

    push: bool | None = None
    email: bool | None = None


class UnsubscribeQuery(Input):
    token: Annotated[str, StringConstraints(min_length=1, max_length=2048)]


class UnsubscribedOut(Output):
    channel: Channel
    seller: PublicUserOut
