"""Public handles: the seller page's ``/s/<handle>``, made from the display name at sign-up."""

from __future__ import annotations

import re
import secrets

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.identity.models import User

HANDLE_LENGTH = 24  # of the name part; a suffix of up to five more tells namesakes apart
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def slug(text: str, length: int = HANDLE_LENGTH) -> str:
    """Lower-case ASCII letters and digits, words joined by hyphens, at most ``length``
    characters ("Sam's Shop" -> "sam-s-shop"); empty when ``text`` has none."""
    return _NOT_SLUG.sub("-", text.lower()).strip("-")[:length].strip("-")


async def new_handle(session: AsyncSession, display_name: str) -> str:
    """A free handle for ``display_name``: its slug, or the slug and a number when taken."""
    base = slug(display_name) or "seller"
    handle = base
    for _ in range(20):
        if await session.scalar(select(User.id).where(User.handle == handle)) is None:
            return handle
        handle = f"{base}-{secrets.randbelow(10_000)}"
    return f"{base}-{secrets.token_hex(3)}"
