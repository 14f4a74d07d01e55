"""Orders: what a buyer reserved, at which price, and where it stands."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from api.db import ID_LENGTH, Base, check_in, new_id, utcnow


class OrderStatus(enum.StrEnum):
    """reserved -> paid | cancelled | expired (the hold ran out); paid -> shipped | cancelled
    (refunded)."""

    RESERVED = "reserved"
    PAID = "paid"
    SHIPPED = "shipped"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class Order(Base):
    """A buyer's claim on units of a product during a show; stock is taken when reserved."""

    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint(check_in("status", OrderStatus), name="status"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("unit_price_cents > 0", name="price_positive"),
        UniqueConstraint("buyer_id", "idempotency_key"),
        Index("ix_orders_status_hold", "status", "hold_expires_at"),
        Index("ix_orders_buyer_id", "buyer_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    stream_id: Mapped[str] = mapped_column(ForeignKey("streams.id", ondelete="CASCADE"), index=True)
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    buyer_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    seller_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price_cents: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    in_sale: Mapped[bool] = mapped_column(Boolean, default=False)
    from_replay: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default=OrderStatus.RESERVED)
    idempotency_key: Mapped[str] = mapped_column(String(128))
    hold_expires_at: Mapped[datetime] = mapped_column()
    # Copied from the buyer's; None is SQL NULL (not JSON null), so IS NULL finds orders without.
    delivery: Mapped[dict[str, str] | None] = mapped_column(JSON(none_as_null=True))
    payment_method: Mapped[str | None] = mapped_column(String(16))  # a Checkout value
    payment_ref: Mapped[str | None] = mapped_column(String(255))  # e.g. Stripe's PaymentIntent
    checkout_session_id: Mapped[str | None] = mapped_column(String(255), index=True)
    paid_at: Mapped[datetime | None] = mapped_column()
    shipped_at: Mapped[datetime | None] = mapped_column()
    tracking_url: Mapped[str | None] = mapped_column(String(2048))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class StripeEvent(Base):
    """A Stripe webhook event already handled: Stripe delivers at least once."""

    __tablename__ = "stripe_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
