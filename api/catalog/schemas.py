"""Request and response bodies of the catalogue: products and their media."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import (
    Field,
)

from api.web.schemas import (
    Currency,
    Description,
    ImageUrl,
    ImageUrls,
    Input,
    Output,
    Patch,
    PriceCents,
    Stock,
    Title,
)


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
