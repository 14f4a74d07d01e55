"""Database tables: accounts, the product catalogue and streams with their products."""

from __future__ import annotations

import enum
import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

ID_LENGTH = 22

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_id() -> str:
    """An unguessable id for URLs (128 bits, URL-safe)."""
    return secrets.token_urlsafe(16)


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that comes back timezone-aware (UTC) on every engine, SQLite included."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime()}  # noqa: RUF012 (SQLAlchemy's hook)


class Role(enum.StrEnum):
    VIEWER = "viewer"
    SELLER = "seller"
    MODERATOR = "moderator"
    ADMIN = "admin"


class Audience(enum.StrEnum):
    EVERYONE = "everyone"
    FOLLOWERS = "followers"
    NEIGHBORHOOD = "neighborhood"


class StreamStatus(enum.StrEnum):
    """created -> live -> (reconnecting -> live)* -> ended; interrupted after a crash."""

    CREATED = "created"
    LIVE = "live"
    RECONNECTING = "reconnecting"
    ENDED = "ended"
    INTERRUPTED = "interrupted"


def _check_in(column: str, values: type[enum.StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


class User(Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint(_check_in("role", Role), name="role"),)

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    display_name: Mapped[str] = mapped_column(String(80))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default=Role.VIEWER)
    neighborhood: Mapped[str | None] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Follow(Base):
    __tablename__ = "follows"
    __table_args__ = (CheckConstraint("follower_id <> seller_id", name="not_self"),)

    follower_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    seller_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Product(Base):
    __tablename__ = "products"
    __table_args__ = (
        CheckConstraint("price_cents > 0", name="price_positive"),
        CheckConstraint("stock >= 0", name="stock_not_negative"),
    )

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    price_cents: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    stock: Mapped[int] = mapped_column(Integer)
    image_urls: Mapped[list[str]] = mapped_column(JSON, default=list)
    checkout_url: Mapped[str | None] = mapped_column(String(2048))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # Loaded with every product (ProductOut shows them); rows go with their product.
    media: Mapped[list[ProductMedia]] = relationship(
        lazy="selectin",
        order_by="ProductMedia.created_at, ProductMedia.id",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )


class Stream(Base):
    __tablename__ = "streams"
    __table_args__ = (
        CheckConstraint(_check_in("status", StreamStatus), name="status"),
        CheckConstraint(_check_in("audience", Audience), name="audience"),
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
    vod_url: Mapped[str | None] = mapped_column(String(1024))
    thumbnail_url: Mapped[str | None] = mapped_column(String(1024))
    # The recording stopped early (the node's disk filled up): the replay ends before the show.
    recording_truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    scheduled_at: Mapped[datetime | None] = mapped_column()
    started_at: Mapped[datetime | None] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column()
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


class ChatMessage(Base):
    """A viewer's chat line. Deleting keeps the row (for moderation) and hides it."""

    __tablename__ = "chat_messages"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    stream_id: Mapped[str] = mapped_column(ForeignKey("streams.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    text: Mapped[str] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column()

    user: Mapped[User] = relationship(lazy="raise")

    __table_args__ = (Index("ix_chat_messages_stream_created", "stream_id", "created_at"),)


class SanctionKind(enum.StrEnum):
    MUTE = "mute"
    BAN = "ban"


class Sanction(Base):
    """A user muted (cannot chat) or banned (cannot watch or chat) in one stream."""

    __tablename__ = "sanctions"
    __table_args__ = (CheckConstraint(_check_in("kind", SanctionKind), name="kind"),)

    stream_id: Mapped[str] = mapped_column(
        ForeignKey("streams.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StreamReaction(Base):
    """Running total of one emoji in one stream, incremented in batches."""

    __tablename__ = "stream_reactions"
    __table_args__ = (CheckConstraint("count >= 0", name="count_not_negative"),)

    stream_id: Mapped[str] = mapped_column(
        ForeignKey("streams.id", ondelete="CASCADE"), primary_key=True
    )
    emoji: Mapped[str] = mapped_column(String(16), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)


class StreamMinute(Base):
    """One UTC minute of a show: peak viewers (by playback) and what happened, added in batches."""

    __tablename__ = "stream_minutes"

    stream_id: Mapped[str] = mapped_column(
        ForeignKey("streams.id", ondelete="CASCADE"), primary_key=True
    )
    minute: Mapped[datetime] = mapped_column(primary_key=True)
    viewers: Mapped[int] = mapped_column(Integer, default=0)
    webrtc_viewers: Mapped[int] = mapped_column(Integer, default=0)
    hls_viewers: Mapped[int] = mapped_column(Integer, default=0)
    likes: Mapped[int] = mapped_column(Integer, default=0)
    chat_messages: Mapped[int] = mapped_column(Integer, default=0)
    clicks: Mapped[int] = mapped_column(Integer, default=0)


class PinAction(enum.StrEnum):
    PIN = "pin"
    UNPIN = "unpin"
    TAG = "tag"


class PinEvent(Base):
    """One product cue of a show: pinned, unpinned or tagged, at the show's clock time."""

    __tablename__ = "pin_events"
    __table_args__ = (
        CheckConstraint(_check_in("action", PinAction), name="action"),
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


class OrderStatus(enum.StrEnum):
    """reserved -> paid | cancelled | expired (the hold ran out); paid -> cancelled."""

    RESERVED = "reserved"
    PAID = "paid"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class Order(Base):
    """A buyer's claim on units of a product during a show; stock is taken when reserved."""

    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint(_check_in("status", OrderStatus), name="status"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("unit_price_cents > 0", name="price_positive"),
        UniqueConstraint("buyer_id", "idempotency_key"),
        Index("ix_orders_status_hold", "status", "hold_expires_at"),
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
    status: Mapped[str] = mapped_column(String(16), default=OrderStatus.RESERVED)
    idempotency_key: Mapped[str] = mapped_column(String(128))
    hold_expires_at: Mapped[datetime] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class WebhookEndpoint(Base):
    """A seller's URL that receives signed order and stream events."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    secret: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookDelivery(Base):
    """One event for one endpoint (the outbox): written in the transaction that caused it,
    sent with retries until acknowledged. Its id is the event id the receiver dedupes on."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_due", "delivered_at", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    endpoint_id: Mapped[str] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), index=True
    )
    event: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MediaKind(enum.StrEnum):
    IMAGE = "image"
    VIDEO = "video"


class MediaState(enum.StrEnum):
    """An image is ready once its bytes are checked; a video is processing until its job ends."""

    PROCESSING = "processing"
    READY = "ready"
    FAILED = "failed"


class ProductMedia(Base):
    """A photo or video a seller uploaded for a product (at most 10 images and 1 video)."""

    __tablename__ = "product_media"
    __table_args__ = (
        CheckConstraint(_check_in("kind", MediaKind), name="kind"),
        CheckConstraint(_check_in("state", MediaState), name="state"),
    )

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    product_id: Mapped[str] = mapped_column(
        ForeignKey("products.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(8))
    state: Mapped[str] = mapped_column(String(16))
    upload_key: Mapped[str] = mapped_column(String(1024), unique=True)
    url: Mapped[str | None] = mapped_column(String(2048))
    thumbnail_url: Mapped[str | None] = mapped_column(String(2048))
    # Duration, size, bitrate, codecs and renditions of a processed video.
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class JobState(enum.StrEnum):
    """queued -> running -> done | failed; running -> queued again when a try fails for a
    reason worth retrying (timeout, crash, storage) or its worker stops renewing its lease."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class MediaJob(Base):
    """Processing of one uploaded video, claimed by one worker at a time under a lease."""

    __tablename__ = "media_jobs"
    __table_args__ = (
        CheckConstraint(_check_in("state", JobState), name="state"),
        CheckConstraint("progress BETWEEN 0 AND 100", name="progress"),
        Index("ix_media_jobs_claim", "state", "lease_expires_at"),
    )

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    media_id: Mapped[str] = mapped_column(
        ForeignKey("product_media.id", ondelete="CASCADE"), index=True
    )
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    upload_key: Mapped[str] = mapped_column(String(1024))
    thumbnail_at: Mapped[float | None] = mapped_column(Float)
    state: Mapped[str] = mapped_column(String(16), default=JobState.QUEUED)
    progress: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    worker: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column()
    error: Mapped[str | None] = mapped_column(String(500))
    outputs: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
