"""A seller's followers by the thousand, written straight into the database (the API would take
minutes): accounts that follow the seller and asked for go-live emails."""

from __future__ import annotations

import secrets

from sqlalchemy import insert

from api.db import new_id, utcnow
from api.identity.models import Follow, User
from api.notifications.models import NotificationSettings
from server.database import create_engine

CHUNK = 1000


async def add_followers(database_url: str, seller_id: str, count: int) -> list[str]:
    """``count`` new accounts following ``seller_id`` with email on; their ids."""
    now = utcnow()
    tag = secrets.token_hex(3)
    users = [
        {
            "id": new_id(),
            "email": f"fan-{i}-{tag}@example.com",
            "display_name": f"Fan {i}",
            "password_hash": "-",
            "created_at": now,
        }
        for i in range(count)
    ]
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            for start in range(0, count, CHUNK):
                chunk = users[start : start + CHUNK]
                await conn.execute(insert(User), chunk)
                follows = [{"follower_id": u["id"], "seller_id": seller_id} for u in chunk]
                await conn.execute(insert(Follow), [{**f, "created_at": now} for f in follows])
                settings = [{"user_id": u["id"], "push": True, "email": True} for u in chunk]
                await conn.execute(insert(NotificationSettings), settings)
    finally:
        await engine.dispose()
    return [str(u["id"]) for u in users]
