"""Request and response bodies of commerce: pins, flash sales, orders and settlement."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import (
    BaseModel,
    Field,
    StrictInt,
    model_validator,
)

from api.accounts.schemas import Delivery, PublicUserOut
from api.commerce.models import OrderStatus
from api.identity.models import Checkout
from api.shows.schemas import PinOut
from api.web.schemas import Input, Output, PriceCents, ResourceId, Unit


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
    from_replay: bool = Field(description="Placed from the show's replay, at the regular price")
    status: OrderStatus
    hold_expires_at: datetime = Field(description="A reserved order's units go back after this")
    delivery: Delivery | None = Field(description="The buyer's details, copied onto the order")
    payment_method: Checkout | None = Field(description="How it was paid (None: not yet)")
    paid_at: datetime | None
    shipped_at: datetime | None
    tracking_url: str | None
    created_at: datetime


class SellerOrderOut(OrderOut):
    """An order as its seller lists it: with who bought it."""

    buyer: PublicUserOut


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
