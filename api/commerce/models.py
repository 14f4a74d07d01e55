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


class AuctionState(enum.StrEnum):
    """open -> sold (the high bid met the reserve: its bidder has an order) | unsold."""

    OPEN = "open"
    SOLD = "sold"
    UNSOLD = "unsold"


class Auction(Base):
    """One unit of a pinned product sold to the highest bidder (``api.commerce.auctions``).

    ``high_*`` is the current high bid: each accepted bid moves it with one conditional UPDATE,
    so the bids accepted form one strictly increasing sequence whatever the number of nodes.
    """

    __tablename__ = "auctions"
    __table_args__ = (
        CheckConstraint(check_in("state", AuctionState), name="state"),
        CheckConstraint("start_price_cents > 0", name="start_positive"),
        CheckConstraint("increment_cents > 0", name="increment_positive"),
        CheckConstraint("high_cents IS NULL OR high_cents >= start_price_cents", name="high"),
        Index("ix_auctions_state_ends_at", "state", "ends_at"),
    )

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    stream_id: Mapped[str] = mapped_column(ForeignKey("streams.id", ondelete="CASCADE"), index=True)
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    seller_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    currency: Mapped[str] = mapped_column(String(3))
    start_price_cents: Mapped[int] = mapped_column(Integer)
    increment_cents: Mapped[int] = mapped_column(Integer)
    reserve_cents: Mapped[int | None] = mapped_column(Integer)
    soft_close_seconds: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(8), default=AuctionState.OPEN)
    started_at: Mapped[datetime] = mapped_column()
    ends_at: Mapped[datetime] = mapped_column()  # moved later by bids in the soft close
    high_cents: Mapped[int | None] = mapped_column(Integer)
    high_bidder_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    high_bidder_name: Mapped[str | None] = mapped_column(String(80))  # as shown: name or "a bidder"
    high_at: Mapped[datetime | None] = mapped_column()
    bids: Mapped[int] = mapped_column(Integer, default=0)
    extensions: Mapped[int] = mapped_column(Integer, default=0)
    closed_at: Mapped[datetime | None] = mapped_column()
    order_id: Mapped[str | None] = mapped_column(ForeignKey("orders.id", ondelete="SET NULL"))


class Bid(Base):
    """An accepted bid. Amounts are unique per auction and only ever rise with the id."""

    __tablename__ = "bids"
    __table_args__ = (UniqueConstraint("auction_id", "amount_cents"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    auction_id: Mapped[str] = mapped_column(ForeignKey("auctions.id", ondelete="CASCADE"))
    bidder_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    amount_cents: Mapped[int] = mapped_column(Integer)
    placed_at: Mapped[datetime] = mapped_column()  # when it reached the server
    delay_ms: Mapped[int] = mapped_column(Integer, default=0)  # the bidder's delay, as granted
    late: Mapped[bool] = mapped_column(Boolean, default=False)  # after the close, fair by delay
    extended: Mapped[bool] = mapped_column(Boolean, default=False)  # it moved the close
