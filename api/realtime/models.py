"""A show's room as stored: chat lines and sanctions."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from api.db import ID_LENGTH, Base, check_in, new_id, utcnow
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
