"""Request and response bodies of shows: streams, settings, products, going live, the summary."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated

from pydantic import (
    BaseModel,
    Field,
)

from api.accounts.schemas import PublicUserOut
from api.catalog.schemas import ProductOut
from api.identity.models import Checkout
from api.shows.models import Audience
from api.web.schemas import Description, Input, Minutes, Output, Patch, ProductIds, Title, Unit
from live.states import StreamStatus


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
    shoppable_replay: bool | None = None
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
    shoppable_replay: bool = Field(
        True, description="Viewers of the replay may buy the products at their regular price"
    )
    scheduled_at: datetime | None = None
    product_ids: ProductIds = []


class Section(enum.StrEnum):
    """What the home and seller pages list: live now, planned with a date, or to replay."""

    LIVE = "live"
    UPCOMING = "upcoming"
    REPLAYS = "replays"


class StreamsQuery(Input):
    status: StreamStatus | None = None
    mine: bool = False
    section: Section | None = Field(
        None,
        description="live: live now, latest started first; upcoming: planned with a date, "
        "soonest first; replays: ended with a replay, latest first",
    )
    seller: Annotated[str | None, Field(max_length=40, description="A seller's handle")] = None
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
    shoppable_replay: bool
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
    poster_url: str | None = Field(
        description="A picture of the show: the live recording's poster, the replay's thumbnail"
    )
    viewers: int | None = Field(
        None, description="Watching now (live shows, in lists and search results)"
    )
    checkout: Checkout = Field(
        description="How the seller takes payment: pay_later (an invoice), shop (the product's "
        "checkout_url) or stripe (Stripe Checkout)"
    )


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


class IceServersOut(BaseModel):
    ice_servers: list[IceServerOut]
    expires_in: int = Field(description="Seconds the TURN credentials stay valid: ask again before")


class GoLiveOut(BaseModel):
    stream: StreamOut
    whip_url: str
    publish_token: str = Field(description="Bearer token for WHIP; shown once, rotated per call")
    ice_servers: list[IceServerOut]
    ice_expires_in: int = Field(
        description="Seconds the TURN credentials stay valid; fresh ones: GET .../ice-servers"
    )


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


class SourceTotalsOut(BaseModel):
    orders: int = Field(description="Orders placed (any status)")
    paid: int
    revenue_cents: int = Field(description="Paid revenue, in minor units")


class OrdersBySourceOut(BaseModel):
    live: SourceTotalsOut = Field(description="Orders placed while the show was on")
    replay: SourceTotalsOut = Field(description="Orders placed from the replay")


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
    bids: int = Field(description="Bids accepted in the show's auctions")


class AuctionAnalyticsOut(BaseModel):
    auction_id: str
    product_id: str
    state: str = Field(description="open, sold or unsold")
    currency: str
    bids: int = Field(description="Bids accepted")
    bidders: int = Field(description="Different accounts among them")
    late_bids: int = Field(description="Accepted after the close, on their bidder's delay")
    extensions: int = Field(description="Times the soft close moved the end")
    start_price_cents: int
    hammer_cents: int | None = Field(description="The winning bid, once sold")
    hammer_to_start: float | None = Field(description="hammer_cents / start_price_cents")


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
    orders_by_source: OrdersBySourceOut
    pin_intervals: list[PinIntervalOut]
    auctions: list[AuctionAnalyticsOut] = Field(description="The show's auctions, oldest first")
    series: list[MinuteOut]


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


class SearchQuery(Input):
    q: Annotated[str, Field(max_length=200, description="Words, each matched as a prefix")]
    limit: Annotated[int, Field(ge=1, le=50)] = 20
    offset: Annotated[int, Field(ge=0)] = 0


class SearchOut(Output):
    shows: list[StreamOut]
    products: list[ProductOut]
