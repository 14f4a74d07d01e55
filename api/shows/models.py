"""Shows: streams, the products they carry, the pin, tag and unpin events of their timeline, and
who is muted or banned in them."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from api.catalog.models import Product
from api.db import ID_LENGTH, Base, check_in, new_id, utcnow
from api.identity.models import User
from live.states import StreamStatus


class Audience(enum.StrEnum):
    EVERYONE = "everyone"
    FOLLOWERS = "followers"
    NEIGHBORHOOD = "neighborhood"


class Stream(Base):
    __tablename__ = "streams"
    __table_args__ = (
        CheckConstraint(check_in("status", StreamStatus), name="status"),
        CheckConstraint(check_in("audience", Audience), name="audience"),
    )

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default=StreamStatus.CREATED, index=True)
    audience: Mapped[str] = mapped_column(String(16), default=Audience.EVERYONE)
    estimated_duration: Mapped[int | None] = mapped_column(Integer)
    notify_followers: Mapped[bool] = mapped_column(Boolean, default=True)
    notify_neighborhood: Mapped[bool] = mapped_column(Boolean, default=False)
    enable_chat: Mapped[bool] = mapped_column(Boolean, default=True)
    enable_comments: Mapped[bool] = mapped_column(Boolean, default=True)
    record_stream: Mapped[bool] = mapped_column(Boolean, default=True)
    # Viewers of the replay may buy the show's products at their regular price.
    shoppable_replay: Mapped[bool] = mapped_column(Boolean, default=True)
    vod_url: Mapped[str | None] = mapped_column(String(1024))
    thumbnail_url: Mapped[str | None] = mapped_column(String(1024))
    # The recording stopped early (the node's disk filled up): the replay ends before the show.
    recording_truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    scheduled_at: Mapped[datetime | None] = mapped_column()
    started_at: Mapped[datetime | None] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column()
    # The replay's time 0: when its first media arrived (its playlists' program date time).
    recording_started_at: Mapped[datetime | None] = mapped_column()
    publish_token_hash: Mapped[str | None] = mapped_column(String(64))
    peak_viewers: Mapped[int] = mapped_column(Integer, default=0)
    unique_viewers: Mapped[int] = mapped_column(Integer, default=0)
    unique_webrtc_viewers: Mapped[int] = mapped_column(Integer, default=0)
    unique_hls_viewers: Mapped[int] = mapped_column(Integer, default=0)
    total_likes: Mapped[int] = mapped_column(Integer, default=0)
    chat_messages_count: Mapped[int] = mapped_column(Integer, default=0)
    average_watch_time: Mapped[float] = mapped_column(Float, default=0.0)
    total_watch_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    watch_sessions: Mapped[int] = mapped_column(Integer, default=0)
    slow_mode_seconds: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    owner: Mapped[User] = relationship(lazy="raise")
    products: Mapped[list[StreamProduct]] = relationship(
        lazy="raise",
        order_by="StreamProduct.sort_order",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )


class StreamProduct(Base):
    __tablename__ = "stream_products"
    __table_args__ = (
        UniqueConstraint("stream_id", "product_id"),
        CheckConstraint("x IS NULL OR (x >= 0 AND x <= 1)", name="x_in_frame"),
        CheckConstraint("y IS NULL OR (y >= 0 AND y <= 1)", name="y_in_frame"),
        CheckConstraint("sale_remaining IS NULL OR sale_remaining >= 0", name="sale_not_negative"),
        CheckConstraint("sale_price_cents IS NULL OR sale_price_cents > 0", name="sale_price"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    stream_id: Mapped[str] = mapped_column(ForeignKey("streams.id", ondelete="CASCADE"))
    product_id: Mapped[str] = mapped_column(
        ForeignKey("products.id", ondelete="CASCADE"), index=True
    )
    sort_order: Mapped[int] = mapped_column(Integer, default=0)
    x: Mapped[float | None] = mapped_column(Float)
    y: Mapped[float | None] = mapped_column(Float)
    timestamp: Mapped[float | None] = mapped_column(Float)
    clicks: Mapped[int] = mapped_column(Integer, default=0)
    # Viewers watching while it was pinned: once per viewer per pin, and once per show.
    impressions: Mapped[int] = mapped_column(Integer, default=0)
    views: Mapped[int] = mapped_column(Integer, default=0)
    inquiries: Mapped[int] = mapped_column(Integer, default=0)
    purchases: Mapped[int] = mapped_column(Integer, default=0)
    revenue_cents: Mapped[int] = mapped_column(Integer, default=0)
    pinned_at: Mapped[datetime | None] = mapped_column()
    # A flash sale on the current pin: price, units left, per-buyer limit, end.
    sale_price_cents: Mapped[int | None] = mapped_column(Integer)
    sale_remaining: Mapped[int | None] = mapped_column(Integer)
    sale_limit: Mapped[int | None] = mapped_column(Integer)
    sale_ends_at: Mapped[datetime | None] = mapped_column()

    product: Mapped[Product] = relationship(lazy="raise")


class PinAction(enum.StrEnum):
    PIN = "pin"
    UNPIN = "unpin"
    TAG = "tag"


class PinEvent(Base):
    """One product cue of a show: pinned, unpinned or tagged, at the show's clock time."""

    __tablename__ = "pin_events"
    __table_args__ = (
        CheckConstraint(check_in("action", PinAction), name="action"),
        Index("ix_pin_events_stream_at", "stream_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    stream_id: Mapped[str] = mapped_column(ForeignKey("streams.id", ondelete="CASCADE"))
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(8))
    x: Mapped[float | None] = mapped_column(Float)
    y: Mapped[float | None] = mapped_column(Float)
    offset_seconds: Mapped[float | None] = mapped_column(Float)
    price_cents: Mapped[int] = mapped_column(Integer)
    sale_price_cents: Mapped[int | None] = mapped_column(Integer)
    sale_quantity: Mapped[int | None] = mapped_column(Integer)
    sale_ends_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SanctionKind(enum.StrEnum):
    MUTE = "mute"
    BAN = "ban"


class Sanction(Base):
    """A user muted (cannot chat) or banned (cannot watch or chat) in one stream."""

    __tablename__ = "sanctions"
    __table_args__ = (CheckConstraint(check_in("kind", SanctionKind), name="kind"),)

    stream_id: Mapped[str] = mapped_column(
        ForeignKey("streams.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    user: Mapped[User] = relationship(lazy="raise", foreign_keys=[user_id])
