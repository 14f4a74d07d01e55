"""Rate limiting: a token bucket per key. This node's memory now; Redis joins it for scale-out."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from twins.redislink import RedisLink


@dataclass(frozen=True)
class Limit:
    """``rate`` tokens per second, at most ``burst`` saved up."""

    rate: float
    burst: int


class RateLimiter(Protocol):
    async def acquire(self, key: str, limit: Limit) -> float:
        """Take one token; return 0 when allowed, else the seconds until a token is free."""
        ...


class LocalRateLimiter:
    """Token buckets in this process. Idle buckets are forgotten once they would be full again."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}
        self._max_keys = max_keys

    async def acquire(self, key: str, limit: Limit) -> float:
        now = time.monotonic()
        tokens, stamp = self._buckets.get(key, (float(limit.burst), now))
        tokens = min(float(limit.burst), tokens + (now - stamp) * limit.rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / limit.rate
        if len(self._buckets) >= self._max_keys:
            self._forget_full(now, limit)
        self._buckets[key] = (tokens - 1.0, now)
        return 0.0

    def _forget_full(self, now: float, limit: Limit) -> None:
        full_after = limit.burst / limit.rate
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full_after}


# Token bucket in one round trip: KEYS[1] bucket; ARGV rate, burst, now (s); returns wait (s).
_BUCKET = """
local rate, burst, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 't', 's')
local tokens = tonumber(state[1]) or burst
local stamp = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - stamp) * rate)
local wait = 0
if tokens < 1 then
  wait = (1 - tokens) / rate
else
  tokens = tokens - 1
end
redis.call('HSET', KEYS[1], 't', tokens, 's', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(wait)
"""


class RedisRateLimiter:
    """The same buckets shared by every node; this node's buckets while Redis is away."""

    def __init__(self, link: RedisLink, local: LocalRateLimiter | None = None) -> None:
        self._link = link
        self._script = link.client.register_script(_BUCKET)
        self._local = local or LocalRateLimiter()

    async def acquire(self, key: str, limit: Limit) -> float:
        async def shared() -> float:
            wait = await self._script(
                keys=[f"sc:rate:{key}"], args=[limit.rate, limit.burst, time.time()]
            )
            return float(wait)

        return await self._link.run(shared, lambda: self._local.acquire(key, limit))
