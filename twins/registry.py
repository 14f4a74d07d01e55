"""Which node carries which stream, for WHIP/WHEP redirects between nodes (RFC 9725 §4.3).

Each stream's media lives on one node: the one its publisher reached first. ``LocalRegistry``
is the single-node answer (this node carries everything); ``RedisRegistry`` shares owners and
node addresses through Redis, with heartbeats: a node that stops beating loses its streams
after ``OWNER_TTL_SECONDS``, and the other nodes then treat them as orphaned.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Protocol

from twins.redislink import RedisLink

HEARTBEAT_SECONDS = 2.0
OWNER_TTL_SECONDS = 6
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end"
# Claim a show unless another node has: the first node stays the owner until its claim expires.
_CLAIM = """
local owner = redis.call('get', KEYS[1])
if owner and owner ~= ARGV[1] then return 0 end
redis.call('set', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""


class StreamRegistry(Protocol):
    async def owner(self, stream_id: str) -> str | None:
        """The base URL of the other, live node that carries ``stream_id``; None: this one."""
        ...

    async def claim(self, stream_id: str) -> None:
        """This node carries ``stream_id`` now (its publisher is here)."""
        ...

    async def release(self, stream_id: str) -> None:
        """The stream's media ended here."""
        ...

    async def heartbeat(self, carried: Iterable[str]) -> None:
        """This node is alive at its URL, and still carries ``carried``."""
        ...

    async def orphans(self, stream_ids: Iterable[str]) -> list[str]:
        """Of these live streams, those whose node has been gone for a while."""
        ...


class LocalRegistry:
    """One node: it carries every stream, none is ever another's or orphaned."""

    async def owner(self, stream_id: str) -> str | None:
        return None

    async def claim(self, stream_id: str) -> None:
        return None

    async def release(self, stream_id: str) -> None:
        return None

    async def heartbeat(self, carried: Iterable[str]) -> None:
        return None

    async def orphans(self, stream_ids: Iterable[str]) -> list[str]:
        return []


class RedisRegistry:
    """Owners in ``sc:owner:{stream}`` (node id), addresses in ``sc:node-url:{node}``; both
    expire unless the heartbeat refreshes them. While Redis is unreachable every node serves
    what reaches it, and nothing is declared orphaned."""

    def __init__(self, link: RedisLink, node: str, url: str) -> None:
        self._link = link
        self._redis = link.client
        self._node = node
        self._url = url
        self._missing_since: dict[str, float] = {}

    async def owner(self, stream_id: str) -> str | None:
        async def read() -> str | None:
            owner = await self._redis.get(f"sc:owner:{stream_id}")
            if owner is None or str(owner) == self._node:
                return None
            url = await self._redis.get(f"sc:node-url:{owner!s}")
            return str(url) if url else None

        return await self._link.run(read, _none)

    async def claim(self, stream_id: str) -> None:
        async def write() -> None:
            await self._redis.eval(
                _CLAIM, 1, f"sc:owner:{stream_id}", self._node, OWNER_TTL_SECONDS
            )

        await self._link.run(write, _none)

    async def release(self, stream_id: str) -> None:
        async def write() -> None:
            await self._redis.eval(_RELEASE, 1, f"sc:owner:{stream_id}", self._node)

        await self._link.run(write, _none)

    async def heartbeat(self, carried: Iterable[str]) -> None:
        streams = list(carried)

        async def write() -> None:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.set(f"sc:node-url:{self._node}", self._url, ex=OWNER_TTL_SECONDS)
                for stream_id in streams:
                    pipe.eval(_CLAIM, 1, f"sc:owner:{stream_id}", self._node, OWNER_TTL_SECONDS)
                await pipe.execute()

        await self._link.run(write, _none)

    async def orphans(self, stream_ids: Iterable[str]) -> list[str]:
        ids = list(stream_ids)

        async def read() -> list[str]:
            owners = await self._redis.mget([f"sc:owner:{s}" for s in ids]) if ids else []
            now = time.monotonic()
            missing = {s for s, owner in zip(ids, owners, strict=True) if owner is None}
            # Missing once is not enough: right after a Redis restart every key is gone until
            # the owners' next heartbeat.
            self._missing_since = {s: self._missing_since.get(s, now) for s in missing}
            return [
                s for s, since in self._missing_since.items() if now - since >= OWNER_TTL_SECONDS
            ]

        return await self._link.run(read, _no_orphans)


async def _none() -> None:
    return None


async def _no_orphans() -> list[str]:
    return []
