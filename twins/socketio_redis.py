"""python-socketio's Redis manager with a breaker: while Redis is away, emits stay local at once."""

from __future__ import annotations

import time
from typing import Any

import socketio

from twins.redislink import RETRY_AFTER_SECONDS, TIMEOUT_SECONDS


class BreakerRedisManager(socketio.AsyncRedisManager):  # type: ignore[misc]
    """Emits reach this node's clients first (the base class does that); publishing to the
    other nodes is skipped for a moment after Redis fails, instead of retrying every emit."""

    def __init__(self, url: str) -> None:
        super().__init__(
            url,
            redis_options={
                "socket_timeout": TIMEOUT_SECONDS,
                "socket_connect_timeout": TIMEOUT_SECONDS,
            },
        )
        self._down_until = 0.0

    async def _publish(self, data: Any) -> Any:
        if time.monotonic() < self._down_until:
            return None
        try:
            if not self.connected:  # type: ignore[has-type]
                self._redis_connect()
            return await self.redis.publish(self.channel, self.json.dumps(data))
        except Exception:
            self.connected = False
            self._down_until = time.monotonic() + RETRY_AFTER_SECONDS
            return None
