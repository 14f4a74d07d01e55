"""One Redis connection with short timeouts and a breaker, so an outage degrades, not blocks."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)
T = TypeVar("T")

TIMEOUT_SECONDS = 1.0
RETRY_AFTER_SECONDS = 2.0


class RedisLink:
    """Runs Redis operations, falling back to a local answer while Redis is unreachable.

    States: up -> down (after a failure; calls go straight to the fallback) -> up (first
    success after ``RETRY_AFTER_SECONDS``).
    """

    def __init__(self, url: str) -> None:
        self.client: redis.Redis = redis.Redis.from_url(
            url,
            socket_timeout=TIMEOUT_SECONDS,
            socket_connect_timeout=TIMEOUT_SECONDS,
            decode_responses=True,
        )
        self._down_until = 0.0

    @property
    def up(self) -> bool:
        return time.monotonic() >= self._down_until

    async def run(
        self, operation: Callable[[], Awaitable[T]], fallback: Callable[[], Awaitable[T]]
    ) -> T:
        if not self.up:
            return await fallback()
        try:
            return await operation()
        except (RedisError, OSError) as exc:
            if self._down_until == 0.0 or self.up:
                log.warning("Redis unreachable (%s): using this node's state only", exc)
            self._down_until = time.monotonic() + RETRY_AFTER_SECONDS
            return await fallback()

    async def close(self) -> None:
        await self.client.aclose()
