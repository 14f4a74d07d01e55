"""What a show's analytics are made of: reaction totals and per-minute audience."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from api.db import Base


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
