"""A show's room as stored: chat lines (sanctions are the show's: ``api.shows.models``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from api.db import ID_LENGTH, Base, new_id, utcnow
from api.identity.models import User


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


class ReplayComment(Base):
    """A viewer's comment on a show's replay, at a moment of the video (distinct from chat).
    Deleting keeps the row (for moderation) and hides it, as for chat."""

    __tablename__ = "replay_comments"
    __table_args__ = (
        CheckConstraint("at_seconds >= 0", name="at_not_negative"),
        Index("ix_replay_comments_stream_at", "stream_id", "at_seconds"),
    )

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    stream_id: Mapped[str] = mapped_column(ForeignKey("streams.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    at_seconds: Mapped[float] = mapped_column(Float)  # where in the replay it points
    text: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column()

    user: Mapped[User] = relationship(lazy="raise")
