"""Request and response bodies of commerce: pins, flash sales, orders and settlement."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    StrictInt,
    StringConstraints,
    model_validator,
)

from api.accounts.schemas import Delivery, PublicUserOut
from api.commerce.models import AuctionState, OrderStatus
from api.identity.models import Checkout
from api.shows.schemas import PinOut
from api.web.schemas import Input, Output, PriceCents, ResourceId, Unit, http_url


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


class PinEventOut(Output):
    id: int
    product_id: str
    action: Literal["pin", "unpin", "tag"]
    x: float | None
    y: float | None
    offset_seconds: float | None = Field(
        description="Seconds into the replay once the recording is published (its first media "
        "is time 0), before that since the show went live; null before the show"
    )
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
    from_replay: bool = Field(description="Placed from the show's replay, at the regular price")
    status: OrderStatus
    hold_expires_at: datetime = Field(description="A reserved order's units go back after this")
    delivery: Delivery | None = Field(description="The buyer's details, copied onto the order")
    payment_method: Checkout | None = Field(description="How it was paid (None: not yet)")
    paid_at: datetime | None
    shipped_at: datetime | None
    tracking_url: str | None
    created_at: datetime


class BuyerOut(PublicUserOut):
    """The buyer as their seller sees them: the public name, and the email to write to."""

    email: str


class SellerOrderOut(OrderOut):
    """An order as its seller lists it: with who bought it."""

    buyer: BuyerOut


def _https(value: str) -> str:
    if not value.startswith("https://"):
        raise ValueError("must be an https:// URL")
    if len(value) > 2048:  # normalised (an IDN host in punycode) it may have grown
        raise ValueError("must be at most 2048 characters")
    return value


TrackingUrl = Annotated[
    str,
    StringConstraints(max_length=2048),
    AfterValidator(http_url),
    AfterValidator(_https),
    Field(json_schema_extra={"format": "uri"}),
]


class ShipIn(Input):
    tracking_url: TrackingUrl | None = Field(
        None, description="The carrier's tracking page for the buyer (https, at most 2048)"
    )


class SalesFigureOut(BaseModel):
    orders: int
    units: int
    amount_cents: int


class SalesFiguresOut(BaseModel):
    """One currency's orders by where they stand. gross = paid + pending; paid includes
    shipped; refunded orders were paid, then cancelled; the rest of cancelled never were."""

    gross: SalesFigureOut
    paid: SalesFigureOut
    shipped: SalesFigureOut
    pending: SalesFigureOut = Field(description="Reserved: not paid yet")
    cancelled: SalesFigureOut = Field(description="Cancelled before being paid")
    refunded: SalesFigureOut = Field(description="Paid, then cancelled (refunded)")
    expired: SalesFigureOut = Field(description="The hold ran out unpaid")


class ProductSalesOut(BaseModel):
    product_id: str
    name: str
    units: int = Field(description="Units in gross orders (paid, shipped or reserved)")
    gross_cents: int
    paid_cents: int
    pending_cents: int


class SourceSalesOut(BaseModel):
    live: SalesFiguresOut = Field(description="Orders placed while the show was on")
    replay: SalesFiguresOut = Field(description="Orders placed from its replay")


class CurrencySalesOut(SalesFiguresOut):
    currency: str
    by_product: list[ProductSalesOut] = Field(description="Highest gross first")
    by_source: SourceSalesOut


class SalesOut(BaseModel):
    """A show's sales. Amounts are never added across currencies: ``currencies`` holds one
    summary per currency its orders were placed in (the one with the most orders first), and
    is empty before the first order."""

    stream_id: str
    currencies: list[CurrencySalesOut]


class PurchasesQuery(Input):
    limit: Annotated[int, Field(ge=1, le=100)] = 50
    offset: Annotated[int, Field(ge=0)] = 0


class PurchasedProductOut(BaseModel):
    id: str
    title: str
    image_url: str | None = Field(
        description="Its photo: the first uploaded one, else the first of its image_urls"
    )
    checkout_url: str | None = Field(description="The product on the seller's own shop")


class StreamTitleOut(BaseModel):
    id: str
    title: str


class PurchaseOut(OrderOut):
    """An order as its buyer lists it: what it is, from which show and seller, how to pay."""

    product: PurchasedProductOut
    stream: StreamTitleOut
    seller: PublicUserOut
    checkout: Checkout = Field(description="How the seller takes payment now")
    checkout_session_id: str | None = Field(
        description="The Stripe Checkout session paying for it, once one was started"
    )


class SettleIn(Input):
    order_id: str = Field(description="The order being settled: the signature covers it")
    status: Literal["paid", "cancelled"]


class CheckoutChoiceIn(Input):
    checkout: Checkout = Field(description="How buyers pay this seller")


class CheckoutIn(Input):
    order_ids: Annotated[
        list[ResourceId],
        Field(min_length=1, max_length=20, description="Reserved orders of one seller, each once"),
    ]

    @model_validator(mode="after")
    def _each_once(self) -> Self:
        if len(set(self.order_ids)) != len(self.order_ids):
            raise ValueError("name each order once")
        return self


class CheckoutOut(BaseModel):
    session_id: str = Field(description="Stripe's Checkout Session")
    url: str = Field(description="Stripe's payment page: send the buyer there")
    expires_at: datetime = Field(
        description="The session's own end at Stripe, at least 30 minutes away (Stripe's rule)"
    )
    hold_expires_at: datetime = Field(
        description="When the first of the orders' holds runs out: pay before it, as the "
        "session is closed then"
    )


class StripeReceiptOut(BaseModel):
    received: bool = True
    duplicate: bool = Field(False, description="This event was handled before: nothing changed")


class AuctionIn(Input):
    product_id: ResourceId = Field(description="A product pinned on the video")
    start_price_cents: PriceCents
    increment_cents: Annotated[
        StrictInt, Field(gt=0, le=10_000_000, description="The least a bid must add")
    ] = 100
    duration_seconds: Annotated[StrictInt, Field(ge=10, le=300, description="Countdown")]
    reserve_cents: PriceCents | None = Field(
        None, description="No sale below this (kept from viewers; they see whether it is met)"
    )
    soft_close_seconds: Annotated[
        StrictInt,
        Field(ge=0, le=60, description="A bid this close to the end moves the end this far on"),
    ] = 10


class BidIn(Input):
    amount_cents: PriceCents
    seen_cents: PriceCents | None = Field(
        None, description="The high bid the page showed when the bidder tapped"
    )
    anonymous: bool = Field(False, description='Shown to others as "a bidder", not by name')
    playback: Literal["webrtc", "hls"] = Field(
        "webrtc", description="What the bidder watches: whose delay evidence applies"
    )


class AuctionOut(BaseModel):
    id: str
    stream_id: str
    product_id: str
    currency: str
    state: AuctionState
    start_price_cents: int
    increment_cents: int
    soft_close_seconds: int
    reserve_met: bool = Field(description="The high bid is at or above the reserve (or none)")
    started_at: datetime
    ends_at: datetime = Field(description="Moves later with bids in the soft close")
    high_cents: int | None
    high_bidder: str | None = Field(description='The high bidder\'s display name, or "a bidder"')
    next_min_cents: int = Field(description="The least the next bid may be")
    bids: int
    extensions: int
    closed_at: datetime | None
    order_id: str | None = Field(description="The winner's order, once sold")
    now: datetime = Field(description="The server's clock, for the countdown")


class BidOut(BaseModel):
    status: Literal["accepted"] = "accepted"
    amount_cents: int
    late: bool = Field(description="After the close, accepted on the bidder's own delay")
    delay_ms: int = Field(description="The bidder's delay behind live, as the server grants it")
    auction: AuctionOut
