"""The node bus: small control messages every node must see (moderation, room changes).

``LocalBus`` delivers within this process; ``RedisBus`` also reaches the other nodes and keeps
delivering locally while Redis is away.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from twins.redislink import RedisLink

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[None]]
CHANNEL = "sc:bus"


class Bus(Protocol):
    def subscribe(self, handler: Handler) -> None: ...

    async def publish(self, message: dict[str, Any]) -> None:
        """Deliver ``message`` (JSON-able) to every subscriber on every node, this one first."""
        ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class LocalBus:
    def __init__(self) -> None:
        self._handlers: list[Handler] = []

    def subscribe(self, handler: Handler) -> None:
        self._handlers.append(handler)

    async def publish(self, message: dict[str, Any]) -> None:
        for handler in self._handlers:
            try:
                await handler(message)
            except Exception:
                log.exception("bus handler failed for %s", message)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


class RedisBus:
    """States: new -> listening (a task follows the Redis channel, reconnecting) -> closed."""

    def __init__(self, link: RedisLink, node: str) -> None:
        self._link = link
        self._node = node
        self._local = LocalBus()
        self._task: asyncio.Task[None] | None = None

    def subscribe(self, handler: Handler) -> None:
        self._local.subscribe(handler)

    async def publish(self, message: dict[str, Any]) -> None:
        await self._local.publish(message)
        payload = json.dumps({"node": self._node, "message": message})

        async def send() -> None:
            await self._link.client.publish(CHANNEL, payload)

        await self._link.run(send, _nothing)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._follow(), name="redis-bus")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _follow(self) -> None:
        delay = 0.5
        while True:
            try:
                async with self._link.client.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    delay = 0.5
                    while True:
                        item = await pubsub.get_message(timeout=1.0)
                        if item is not None:
                            await self._deliver(item["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("bus lost Redis (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _deliver(self, raw: str) -> None:
        try:
            envelope = json.loads(raw)
        except (TypeError, ValueError):
            return
        if isinstance(envelope, dict) and envelope.get("node") != self._node:
            await self._local.publish(envelope.get("message") or {})


async def _nothing() -> None:
    return None
