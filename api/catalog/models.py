"""The catalogue: products, their photos and videos, and the jobs that process the videos."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from api.db import ID_LENGTH, Base, check_in, new_id, utcnow


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
        CheckConstraint(check_in("kind", MediaKind), name="kind"),
        CheckConstraint(check_in("state", MediaState), name="state"),
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
        CheckConstraint(check_in("state", JobState), name="state"),
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
