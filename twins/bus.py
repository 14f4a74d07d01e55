"""The node bus: small control messages every node must see (moderation, room changes).

``LocalBus`` delivers within this process; ``RedisBus`` also reaches the other nodes and keeps
delivering locally while Redis is away.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Protocol, TypeVar

from twins.redislink import RedisLink

log = logging.getLogger(__name__)

CHANNEL = "sc:bus"


class Message:
    """A control message every node must hear: a dataclass whose ``kind`` is its ``type`` on
    the wire (``class StatusChanged(Message, kind="stream.status")``)."""

    kind: ClassVar[str]
    _kinds: ClassVar[dict[str, type[Message]]] = {}

    def __init_subclass__(cls, *, kind: str, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.kind = kind
        Message._kinds[kind] = cls

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.kind, **dataclasses.asdict(self)}  # type: ignore[call-overload]

    @staticmethod
    def from_wire(data: object) -> Message | None:
        """The message ``data`` carries; None for an unknown kind or missing fields."""
        if not isinstance(data, dict):
            return None
        cls = Message._kinds.get(str(data.get("type")))
        if cls is None:
            return None
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        try:
            return cls(**{k: v for k, v in data.items() if k in names})
        except TypeError:
            return None


M = TypeVar("M", bound=Message)
Handler = Callable[[M], Awaitable[None]]


class Bus(Protocol):
    def subscribe(self, kind: type[M], handler: Handler[M]) -> None: ...

    async def publish(self, message: Message) -> None:
        """Deliver ``message`` to its kind's subscribers on every node, this one first."""
        ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class LocalBus:
    def __init__(self) -> None:
        self._handlers: dict[type[Message], list[Handler[Any]]] = defaultdict(list)

    def subscribe(self, kind: type[M], handler: Handler[M]) -> None:
        self._handlers[kind].append(handler)

    async def publish(self, message: Message) -> None:
        for handler in self._handlers.get(type(message), ()):
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

    def subscribe(self, kind: type[M], handler: Handler[M]) -> None:
        self._local.subscribe(kind, handler)

    async def publish(self, message: Message) -> None:
        await self._local.publish(message)
        payload = json.dumps({"node": self._node, "message": message.to_wire()})

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
        if not isinstance(envelope, dict) or envelope.get("node") == self._node:
            return
        message = Message.from_wire(envelope.get("message"))
        if message is not None:
            await self._local.publish(message)


async def _nothing() -> None:
    return None
