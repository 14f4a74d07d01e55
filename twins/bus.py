"""The node bus: small control messages every node must see (moderation, room changes).

``LocalBus`` delivers within this process; ``RedisBus`` also reaches the other nodes through a
Redis Stream, replays what a node missed while it was cut off, and keeps delivering locally while
Redis is away. (Room events, the ephemeral traffic, go through Socket.IO's Redis manager instead.)
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Protocol, TypeVar, cast

from twins.redislink import RedisLink

log = logging.getLogger(__name__)

STREAM = "sc:bus"
# Entries the stream keeps (trimmed approximately): a node cut off for longer than this many
# messages takes to arrive misses the oldest. At a few messages per show-minute, that is days.
RETENTION = 10_000
# Messages this node could not add while Redis was away, sent in order once it is back.
PENDING_LIMIT = 1_000
READ_BLOCK_MS = 500  # under the link's 1 s socket timeout
READ_COUNT = 100

Entry = list[tuple[str, dict[str, str]]]  # (id, fields) as XRANGE answers, decoded
Entries = list[tuple[str, Entry]]  # per stream, as XREAD answers


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
    """Delivers every message to this node's subscribers at once, then to the other nodes through
    the Redis Stream ``STREAM``. Each node reads the stream from the last id it has seen (kept in
    memory), so after a reconnect it gets what was added meanwhile, each entry once, in order.

    States: new -> following (``start``: a task reads the stream, reconnecting) -> closed.
    """

    def __init__(
        self, link: RedisLink, node: str, *, stream: str = STREAM, retention: int = RETENTION
    ) -> None:
        self._link = link
        self._node = node
        self._stream = stream
        self._retention = retention
        self._local = LocalBus()
        self._last_id: str | None = None
        self._pending: deque[str] = deque(maxlen=PENDING_LIMIT)
        self._sending = asyncio.Lock()  # one sender at a time, so none is added twice
        self._task: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()

    def subscribe(self, kind: type[M], handler: Handler[M]) -> None:
        self._local.subscribe(kind, handler)

    async def publish(self, message: Message) -> None:
        await self._local.publish(message)
        self._pending.append(json.dumps({"node": self._node, "message": message.to_wire()}))
        await self._link.run(self._send_pending, _nothing)

    async def start(self) -> None:
        # Where this node joins the stream: what others add from now on is for it.
        self._last_id = await self._link.run(self._tail, _unknown)
        self._closing.clear()
        self._task = asyncio.create_task(self._follow(), name="redis-bus")

    async def close(self) -> None:
        # The reader stops between reads (each blocks READ_BLOCK_MS at most): a blocking XREAD
        # cancelled inside redis-py could leave close waiting on its connection.
        if self._task is not None:
            self._closing.set()
            await self._task
            self._task = None

    async def _tail(self) -> str:
        newest = cast(Entry, await self._link.client.xrevrange(self._stream, count=1))
        return newest[0][0] if newest else "0-0"

    async def _send_pending(self) -> None:
        async with self._sending:
            while self._pending:
                await self._link.client.xadd(
                    self._stream,
                    {"envelope": self._pending[0]},
                    maxlen=self._retention,
                    approximate=True,
                )
                self._pending.popleft()

    async def _follow(self) -> None:
        delay = 0.5
        while not self._closing.is_set():
            try:
                await self._send_pending()
                await self._read()
                delay = 0.5
            except Exception as exc:
                log.warning("bus lost Redis (%s); retrying in %.1f s", exc, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), delay)
                delay = min(delay * 2, 5.0)

    async def _read(self) -> None:
        after = self._last_id if self._last_id is not None else await self._tail()
        self._last_id = after
        replies = cast(
            Entries,
            await self._link.client.xread(
                {self._stream: after}, count=READ_COUNT, block=READ_BLOCK_MS
            ),
        )
        for _stream, entries in replies:
            for entry_id, fields in entries:
                self._last_id = entry_id
                await self._deliver(fields.get("envelope"))

    async def _deliver(self, raw: str | None) -> None:
        try:
            envelope = json.loads(raw or "")
        except (TypeError, ValueError):
            return
        if not isinstance(envelope, dict) or envelope.get("node") == self._node:
            return
        message = Message.from_wire(envelope.get("message"))
        if message is not None:
            await self._local.publish(message)


async def _nothing() -> None:
    return None


async def _unknown() -> str | None:
    return None
