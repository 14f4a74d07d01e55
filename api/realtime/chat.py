"""Chat lines: what we accept as text, how a message is stored and how it is sent."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from api.identity.models import User
from api.realtime.models import ChatMessage

MAX_CHARS = 500
HISTORY = 50

# Bidirectional controls can make a line read differently from what was typed.
_BIDI = dict.fromkeys(map(ord, "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"), None) | (
    dict.fromkeys(range(0x2066, 0x206A), None)
)
_SPACES = re.compile(r"\s+")


def clean_text(text: str) -> str:
    """Plain one-line text: controls become spaces, bidi overrides go, spaces collapse."""
    text = text.translate(_BIDI)
    text = "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in text)
    return _SPACES.sub(" ", text).strip()


class Mentions:
    """Which of a show's products a chat line names: a title in any case, as whole words."""

    def __init__(self, titles: Mapping[str, str]) -> None:
        self._patterns = [
            (product_id, re.compile(rf"(?<!\w){re.escape(title)}(?!\w)", re.IGNORECASE))
            for product_id, title in titles.items()
        ]

    def __call__(self, text: str) -> list[str]:
        return [product_id for product_id, pattern in self._patterns if pattern.search(text)]


def message_out(message: ChatMessage, author: User) -> dict[str, Any]:
    return {
        "id": message.id,
        "stream_id": message.stream_id,
        "user": {"id": author.id, "display_name": author.display_name, "role": author.role},
        "text": message.text,
        "created_at": message.created_at.isoformat(),
    }


async def store(session: AsyncSession, stream_id: str, author: User, text: str) -> dict[str, Any]:
    message = ChatMessage(stream_id=stream_id, user_id=author.id, text=text)
    session.add(message)
    await session.flush()
    return message_out(message, author)


async def history(
    session: AsyncSession, stream_id: str, limit: int = HISTORY
) -> list[dict[str, Any]]:
    """The latest visible messages, oldest first."""
    rows = await session.scalars(
        select(ChatMessage)
        .options(joinedload(ChatMessage.user))
        .where(ChatMessage.stream_id == stream_id, ChatMessage.deleted_at.is_(None))
        .order_by(ChatMessage.created_at.desc(), ChatMessage.id.desc())
        .limit(limit)
    )
    return [message_out(m, m.user) for m in reversed(list(rows))]
