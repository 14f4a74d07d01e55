"""Shared counters for live rooms: viewers per node, unique viewers, reactions, slow mode.

``LocalCounters`` keeps them in this process; ``RedisCounters`` shares them between nodes and
falls back to its local twin while Redis is unreachable.
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Generic, Protocol, TypeVar

from twins.redislink import RedisLink

NODE_TTL_SECONDS = 6
ROOM_TTL_SECONDS = 2 * 24 * 3600
# A backstop for shows whose end this node never heard of: the local twin keeps at most this
# many shows' counters, each for at most ROOM_TTL_SECONDS after it was last touched.
SHOWS_KEPT = 10_000
SLOW_KEPT = 100_000

V = TypeVar("V")


class Counters(Protocol):
    async def report_viewers(self, node: str, counts: Mapping[str, int]) -> None:
        """This node's current viewers per stream; also its heartbeat."""
        ...

    async def viewers(self, stream_ids: Iterable[str]) -> dict[str, int]:
        """Viewers per stream summed over the nodes that are alive."""
        ...

    async def add_unique(self, stream_id: str, viewer: str) -> int:
        """Remember a viewer; return how many distinct viewers the stream has had."""
        ...

    async def add_reactions(self, stream_id: str, counts: Mapping[str, int]) -> None: ...

    async def reactions(self, stream_id: str) -> dict[str, int] | None:
        """Reaction totals, or None when nothing is known yet (seed them from storage)."""
        ...

    async def seed_reactions(self, stream_id: str, totals: Mapping[str, int]) -> None:
        """Set the totals unless another writer already did."""
        ...

    async def slow_mode(self, stream_id: str, user_id: str, seconds: int) -> float:
        """0 if the user may post now (and start their wait), else seconds left to wait."""
        ...

    async def forget(self, stream_id: str) -> None:
        """The show is over: drop what this node keeps in memory for it."""
        ...


class ShowValues(Generic[V]):
    """Values per show key (a stream id, or ``<stream id>/<part>``), the least recently touched
    dropped once there are more than ``limit`` or one is older than ``max_age`` seconds."""

    def __init__(self, limit: int, max_age: float, clock: Callable[[], float]) -> None:
        self._limit = limit
        self._max_age = max_age
        self._clock = clock
        self._values: OrderedDict[str, tuple[float, V]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._values)

    def get(self, key: str) -> V | None:
        kept = self._values.get(key)
        return None if kept is None else kept[1]

    def touch(self, key: str, new: Callable[[], V]) -> V:
        """The value for ``key`` (made by ``new`` if there is none), now the most recent."""
        now = self._clock()
        kept = self._values.pop(key, None)
        value = new() if kept is None else kept[1]
        self._values[key] = (now, value)
        while len(self._values) > self._limit or (
            now - next(iter(self._values.values()))[0] > self._max_age
        ):
            self._values.popitem(last=False)
        return value

    def forget(self, stream_id: str) -> None:
        for key in [k for k in self._values if k.split("/", 1)[0] == stream_id]:
            del self._values[key]


class LocalCounters:
    """The counters in this process. What a show adds is dropped when it ends (``forget``), or
    as a backstop when it is the oldest of ``shows`` or untouched for ``max_age`` seconds."""

    def __init__(
        self,
        *,
        shows: int = SHOWS_KEPT,
        max_age: float = ROOM_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._viewers: dict[str, dict[str, int]] = {}  # by reporter: this node's, two at most
        self._unique: ShowValues[set[str]] = ShowValues(shows, max_age, clock)
        self._reactions: ShowValues[Counter[str]] = ShowValues(shows, max_age, clock)
        self._slow: dict[tuple[str, str], float] = {}

    def held(self) -> int:
        """Entries kept for shows (unique viewer sets, reaction totals, slow-mode waits)."""
        return len(self._unique) + len(self._reactions) + len(self._slow)

    async def report_viewers(self, node: str, counts: Mapping[str, int]) -> None:
        self._viewers[node] = dict(counts)

    async def viewers(self, stream_ids: Iterable[str]) -> dict[str, int]:
        return {s: sum(node.get(s, 0) for node in self._viewers.values()) for s in stream_ids}

    async def add_unique(self, stream_id: str, viewer: str) -> int:
        seen = self._unique.touch(stream_id, set)
        seen.add(viewer)
        return len(seen)

    async def add_reactions(self, stream_id: str, counts: Mapping[str, int]) -> None:
        self._reactions.touch(stream_id, Counter).update(counts)

    async def reactions(self, stream_id: str) -> dict[str, int] | None:
        totals = self._reactions.get(stream_id)
        return None if totals is None else dict(totals)

    async def seed_reactions(self, stream_id: str, totals: Mapping[str, int]) -> None:
        self._reactions.touch(stream_id, lambda: Counter(totals))

    async def slow_mode(self, stream_id: str, user_id: str, seconds: int) -> float:
        now = self._clock()
        key = (stream_id, user_id)
        left = self._slow.get(key, 0.0) - now
        if left > 0:
            return left
        if len(self._slow) >= SLOW_KEPT:
            self._slow = {k: v for k, v in self._slow.items() if v > now}
        self._slow[key] = now + seconds
        return 0.0

    async def forget(self, stream_id: str) -> None:
        self._unique.forget(stream_id)
        self._reactions.forget(stream_id)
        self._slow = {k: v for k, v in self._slow.items() if k[0] != stream_id}


class RedisCounters:
    """The same counters in Redis, keyed so a dead node's viewers expire with its heartbeat.

    The local twin is written only while Redis is unreachable: it holds what this node counted
    during an outage (and, for reactions, what it seeded from the database then), nothing more.
    """

    def __init__(self, link: RedisLink, local: LocalCounters | None = None) -> None:
        self._link = link
        self._redis = link.client
        self._local = local or LocalCounters()

    async def report_viewers(self, node: str, counts: Mapping[str, int]) -> None:
        async def write() -> None:
            key = f"sc:viewers:{node}"
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(key)
                if counts:
                    pipe.hset(key, mapping={k: v for k, v in counts.items()})
                pipe.set(f"sc:node:{node}", "1", ex=NODE_TTL_SECONDS)
                pipe.expire(key, NODE_TTL_SECONDS)
                pipe.sadd("sc:nodes", node)
                await pipe.execute()

        await self._link.run(write, lambda: self._local.report_viewers(node, counts))

    async def viewers(self, stream_ids: Iterable[str]) -> dict[str, int]:
        ids = list(stream_ids)

        async def read() -> dict[str, int]:
            nodes = sorted(str(n) for n in await self._redis.smembers("sc:nodes"))
            alive = await self._redis.mget([f"sc:node:{n}" for n in nodes]) if nodes else []
            dead = [n for n, flag in zip(nodes, alive, strict=True) if flag is None]
            if dead:
                await self._redis.srem("sc:nodes", *dead)
            totals = dict.fromkeys(ids, 0)
            live = [n for n, flag in zip(nodes, alive, strict=True) if flag is not None]
            async with self._redis.pipeline(transaction=False) as pipe:
                for node in live:
                    pipe.hmget(f"sc:viewers:{node}", ids)
                for row in await pipe.execute() if ids else []:
                    for stream_id, value in zip(ids, row, strict=True):
                        totals[stream_id] += int(value or 0)
            return totals

        return await self._link.run(read, lambda: self._local.viewers(ids))

    async def add_unique(self, stream_id: str, viewer: str) -> int:
        async def write() -> int:
            key = f"sc:unique:{stream_id}"
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.pfadd(key, viewer)
                pipe.expire(key, ROOM_TTL_SECONDS)
                pipe.pfcount(key)
                return int((await pipe.execute())[2])

        return await self._link.run(write, lambda: self._local.add_unique(stream_id, viewer))

    async def add_reactions(self, stream_id: str, counts: Mapping[str, int]) -> None:
        async def write() -> None:
            key = f"sc:reactions:{stream_id}"
            async with self._redis.pipeline(transaction=True) as pipe:
                for emoji, n in counts.items():
                    pipe.hincrby(key, emoji, n)
                pipe.expire(key, ROOM_TTL_SECONDS)
                await pipe.execute()

        await self._link.run(write, lambda: self._local.add_reactions(stream_id, counts))

    async def reactions(self, stream_id: str) -> dict[str, int] | None:
        async def read() -> dict[str, int] | None:
            totals = await self._redis.hgetall(f"sc:reactions:{stream_id}")
            return {str(k): int(v) for k, v in totals.items()} if totals else None

        return await self._link.run(read, lambda: self._local.reactions(stream_id))

    async def seed_reactions(self, stream_id: str, totals: Mapping[str, int]) -> None:
        async def write() -> None:
            key = f"sc:reactions:{stream_id}"
            async with self._redis.pipeline(transaction=False) as pipe:
                for emoji, n in totals.items():
                    pipe.hsetnx(key, emoji, n)
                pipe.expire(key, ROOM_TTL_SECONDS)
                await pipe.execute()

        if totals:
            await self._link.run(write, lambda: self._local.seed_reactions(stream_id, totals))

    async def slow_mode(self, stream_id: str, user_id: str, seconds: int) -> float:
        async def gate() -> float:
            key = f"sc:slow:{stream_id}:{user_id}"
            if await self._redis.set(key, "1", nx=True, px=seconds * 1000):
                return 0.0
            return max(0.001, int(await self._redis.pttl(key)) / 1000)

        return await self._link.run(
            gate, lambda: self._local.slow_mode(stream_id, user_id, seconds)
        )

    async def forget(self, stream_id: str) -> None:
        # Redis's own keys expire with ROOM_TTL_SECONDS; only this node's memory is freed now.
        await self._local.forget(stream_id)
