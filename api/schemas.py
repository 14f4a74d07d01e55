"""Request and response bodies of the REST API (pydantic): validated in, documented out."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    HttpUrl,
    StrictInt,
    StringConstraints,
    TypeAdapter,
    model_validator,
)

from api.models import Audience, Role, StreamStatus
from sfu.stats import RoomStats

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=5000)]
DisplayName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=80)]
Neighborhood = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)
]
Password = Annotated[str, StringConstraints(min_length=8, max_length=256)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
PriceCents = Annotated[
    StrictInt, Field(gt=0, le=100_000_000, description="Minor units, e.g. cents")
]
Stock = Annotated[StrictInt, Field(ge=0, le=1_000_000_000)]
Unit = Annotated[float, Field(ge=0, le=1, description="Normalised 0-1 position on the video")]
ResourceId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
ProductIds = Annotated[list[ResourceId], Field(max_length=100)]
_HTTP_URL = TypeAdapter(HttpUrl)


def _http_url(value: str) -> str:
    return str(_HTTP_URL.validate_python(value))


ImageUrl = Annotated[
    str,
    StringConstraints(max_length=2048),
    AfterValidator(_http_url),
    Field(json_schema_extra={"format": "uri"}),
]
ImageUrls = Annotated[list[ImageUrl], Field(max_length=10)]
Minutes = Annotated[StrictInt, Field(gt=0, le=24 * 60)]


class Input(BaseModel):
    """Bodies we accept: unknown fields and non-finite numbers are refused, not ignored."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Patch(Input):
    """A partial update: fields left out stay; ``null`` only clears what may be empty."""

    nullable: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _no_null_for_required(self) -> Self:
        for name in self.model_fields_set - self.nullable:
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        if not self.model_fields_set:
            raise ValueError("nothing to change: send at least one field")
        return self

    def changes(self) -> dict[str, object]:
        return self.model_dump(exclude_unset=True, mode="python")


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Error(BaseModel):
    error: str = Field(description="Stable machine-readable code")
    message: str = Field(description="What went wrong, for people")
    details: dict[str, object] = Field(default_factory=dict)


# Accounts


class RegisterIn(Input):
    email: EmailStr
    password: Password
    display_name: DisplayName
    role: Literal[Role.VIEWER, Role.SELLER] = Role.VIEWER
    neighborhood: Neighborhood | None = None


class LoginIn(Input):
    email: EmailStr
    password: Annotated[str, StringConstraints(min_length=1, max_length=256)]


class UserOut(Output):
    id: str
    email: str
    display_name: str
    role: Role
    neighborhood: str | None
    created_at: datetime


class PublicUserOut(Output):
    id: str
    display_name: str
    role: Role


class ProfileOut(PublicUserOut):
    followers: int
    following: bool = Field(description="Whether the caller follows this user")


class AuthOut(BaseModel):
    user: UserOut
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105
    expires_in: int = Field(description="Seconds until the access token expires")


class UserPatch(Input):
    role: Role


class UsersQuery(Input):
    limit: Annotated[int, Field(ge=1, le=200)] = 50
    offset: Annotated[int, Field(ge=0)] = 0


# Catalogue


class ProductIn(Input):
    title: Title
    description: Description = ""
    price_cents: PriceCents
    currency: Currency = "USD"
    stock: Stock
    image_urls: ImageUrls = []
    checkout_url: ImageUrl | None = Field(None, description="Buy on the seller's own shop")


class ProductPatch(Patch):
    nullable = frozenset({"checkout_url"})

    title: Title | None = None
    description: Description | None = None
    price_cents: PriceCents | None = None
    currency: Currency | None = None
    stock: Stock | None = None
    image_urls: ImageUrls | None = None
    checkout_url: ImageUrl | None = None


class MediaOut(Output):
    """A product photo, or a video: `url` is its HLS master playlist once `ready`."""

    id: str
    kind: Literal["image", "video"]
    state: Literal["processing", "ready", "failed"]
    url: str | None
    thumbnail_url: str | None
    details: dict[str, Any]


class ProductOut(Output):
    id: str
    owner_id: str
    title: str
    description: str
    price_cents: int
    currency: str
    stock: int
    image_urls: list[str]
    checkout_url: str | None
    media: list[MediaOut]
    created_at: datetime
    updated_at: datetime


# Streams


class StreamSettings(Patch):
    """What a seller may change before and during a show."""

    nullable = frozenset({"estimated_duration", "scheduled_at"})

    title: Title | None = None
    description: Description | None = None
    audience: Audience | None = None
    estimated_duration: Minutes | None = None
    notify_followers: bool | None = None
    notify_neighborhood: bool | None = None
    enable_chat: bool | None = None
    enable_comments: bool | None = None
    record_stream: bool | None = None
    scheduled_at: datetime | None = None


class StreamIn(Input):
    title: Title
    description: Description = ""
    audience: Audience = Audience.EVERYONE
    estimated_duration: Minutes | None = None
    notify_followers: bool = True
    notify_neighborhood: bool = False
    enable_chat: bool = True
    enable_comments: bool = True
    record_stream: bool = True
    scheduled_at: datetime | None = None
    product_ids: ProductIds = []


class StreamsQuery(Input):
    status: StreamStatus | None = None
    mine: bool = False
    limit: Annotated[int, Field(ge=1, le=100)] = 50
    offset: Annotated[int, Field(ge=0)] = 0


class AttachProductsIn(Input):
    product_ids: Annotated[ProductIds, Field(min_length=1)]


class TagIn(Input):
    x: Unit
    y: Unit
    timestamp: Annotated[float, Field(ge=0, le=7 * 24 * 3600, description="Seconds into the show")]


class StreamOut(Output):
    id: str
    owner: PublicUserOut
    title: str
    description: str
    status: StreamStatus
    audience: Audience
    estimated_duration: int | None
    notify_followers: bool
    notify_neighborhood: bool
    enable_chat: bool
    enable_comments: bool
    record_stream: bool
    scheduled_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    created_at: datetime
    vod_url: str | None
    thumbnail_url: str | None
    recording_truncated: bool = Field(
        description="The recording stopped early (the node's disk filled up): the replay, if "
        "any, ends before the show did"
    )
    whep_url: str
    hls_url: str


class StreamProductOut(Output):
    product: ProductOut
    sort_order: int
    x: float | None
    y: float | None
    timestamp: float | None
    clicks: int
    views: int
    inquiries: int
    purchases: int


class IceServerOut(Output):
    urls: str
    username: str | None = None
    credential: str | None = None


class GoLiveOut(BaseModel):
    stream: StreamOut
    whip_url: str
    publish_token: str = Field(description="Bearer token for WHIP; shown once, rotated per call")
    ice_servers: list[IceServerOut]


class ProductAnalyticsOut(Output):
    product_id: str
    title: str
    impressions: int = Field(
        description="Viewers watching while it was pinned, once per viewer per pin"
    )
    views: int = Field(description="Distinct viewers who saw it pinned during the show")
    clicks: int
    inquiries: int = Field(description="'Ask' taps and chat lines naming the product")
    orders: int = Field(description="Orders placed (reserved), whatever became of them")
    paid: int = Field(description="Orders paid")
    purchases: int = Field(description="Units of paid orders")
    revenue_cents: int = Field(description="Paid revenue, in minor units")


class ViewersByPlaybackOut(BaseModel):
    webrtc: int
    hls: int


class PinIntervalOut(BaseModel):
    product_id: str
    pinned_at: datetime
    unpinned_at: datetime | None


class MinuteOut(BaseModel):
    minute: datetime = Field(description="Start of the UTC minute")
    viewers: int = Field(description="Peak concurrent viewers in the minute")
    webrtc_viewers: int
    hls_viewers: int
    likes: int
    chat_messages: int
    clicks: int
    orders: int


class AnalyticsOut(BaseModel):
    stream_id: str
    status: StreamStatus
    duration_seconds: float | None
    peak_viewers: int
    unique_viewers: int
    total_likes: int
    chat_messages_count: int
    average_watch_time: float
    products: list[ProductAnalyticsOut]
    viewers_by_playback: ViewersByPlaybackOut
    pin_intervals: list[PinIntervalOut]
    series: list[MinuteOut]


class Health(BaseModel):
    status: Literal["ok"]


# Rooms: chat and moderation


class ChatAuthorOut(BaseModel):
    id: str
    display_name: str
    role: Role


class ChatMessageOut(BaseModel):
    id: str
    stream_id: str
    user: ChatAuthorOut
    text: str
    created_at: datetime


class ChatQuery(Input):
    limit: Annotated[int, Field(ge=1, le=200)] = 50


class SanctionOut(Output):
    user_id: str
    kind: Literal["mute", "ban"]
    created_by: str | None
    created_at: datetime


class SlowModeIn(Input):
    seconds: Annotated[StrictInt, Field(ge=0, le=300, description="0 turns slow mode off")]


class SlowModeOut(BaseModel):
    slow_mode_seconds: int


class StreamHealthOut(BaseModel):
    """A show's media as this node sees it: ingest tracks and each viewer's delivery."""

    stream_id: str
    status: StreamStatus
    media: RoomStats | None = Field(description="null when this node carries no media for it")


# Commerce: pins, flash sales, orders


class SaleIn(Input):
    price_cents: PriceCents
    quantity: Annotated[StrictInt, Field(gt=0, le=1_000_000, description="Units in the sale")]
    per_buyer_limit: Annotated[StrictInt, Field(gt=0, le=1000)] = 1
    duration_seconds: Annotated[StrictInt, Field(ge=10, le=300, description="Countdown")]


class PinIn(Input):
    product_id: ResourceId
    x: Unit | None = None
    y: Unit | None = None
    sale: SaleIn | None = None

    @model_validator(mode="after")
    def _both_coordinates(self) -> Self:
        if (self.x is None) != (self.y is None):
            raise ValueError("give both x and y, or neither")
        return self


class SaleOut(BaseModel):
    price_cents: int
    remaining: int
    per_buyer_limit: int
    ends_at: datetime


class PinOut(BaseModel):
    stream_id: str
    product: ProductOut
    x: float | None
    y: float | None
    pinned_at: datetime
    sale: SaleOut | None


class PinEventOut(Output):
    id: int
    product_id: str
    action: Literal["pin", "unpin", "tag"]
    x: float | None
    y: float | None
    offset_seconds: float | None
    price_cents: int
    sale_price_cents: int | None
    sale_quantity: int | None
    sale_ends_at: datetime | None
    created_at: datetime


class PinsOut(BaseModel):
    pinned: list[PinOut]
    timeline: list[PinEventOut]


class OrderIn(Input):
    product_id: ResourceId
    quantity: Annotated[StrictInt, Field(gt=0, le=100)] = 1


class OrderOut(Output):
    id: str
    stream_id: str
    product_id: str
    buyer_id: str
    quantity: int
    unit_price_cents: int
    currency: str
    in_sale: bool
    status: Literal["reserved", "paid", "cancelled", "expired"]
    hold_expires_at: datetime
    created_at: datetime


# Webhooks


def _web_url(value: str) -> str:
    if not value.startswith(("https://", "http://")):
        raise ValueError("must be an http(s) URL")
    return value


WebUrl = Annotated[
    str,
    StringConstraints(max_length=2048),
    AfterValidator(_http_url),
    AfterValidator(_web_url),
    Field(json_schema_extra={"format": "uri"}),
]


class WebhookIn(Input):
    url: WebUrl


class WebhookOut(Output):
    id: str
    url: str
    created_at: datetime


class WebhookCreatedOut(WebhookOut):
    secret: str = Field(description="Signs every delivery (HMAC-SHA256); shown only now")


class SettleIn(Input):
    status: Literal["paid", "cancelled"]
