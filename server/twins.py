"""Which twin of each seam this node runs: Redis and S3 when configured, else in-process."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from api.catalog.product_media import UPLOAD_PATH
from server.settings import Settings
from twins.bus import Bus, LocalBus, RedisBus
from twins.counters import Counters, LocalCounters, RedisCounters
from twins.objectstore import LocalStorage, ObjectStore, S3Storage
from twins.ratelimit import LocalRateLimiter, RateLimiter, RedisRateLimiter
from twins.redislink import RedisLink
from twins.registry import LocalRegistry, RedisRegistry, StreamRegistry


@dataclass(frozen=True)
class Twins:
    """The node's seams, each local or distributed, chosen from the settings in ``twins_for``."""

    node: str
    link: RedisLink | None
    bus: Bus
    counters: Counters
    limiter: RateLimiter
    registry: StreamRegistry
    store: ObjectStore

    async def lifespan(self, app: web.Application) -> AsyncIterator[None]:
        await self.bus.start()
        yield
        await self.bus.close()
        if self.link is not None:
            await self.link.close()


def twins_for(settings: Settings, node: str) -> Twins:
    link = RedisLink(settings.redis_url) if settings.redis_url else None
    return Twins(
        node=node,
        link=link,
        bus=RedisBus(link, node) if link else LocalBus(),
        counters=RedisCounters(link) if link else LocalCounters(),
        limiter=RedisRateLimiter(link) if link else LocalRateLimiter(),
        registry=RedisRegistry(link, node, settings.resolved_public_url)
        if link
        else LocalRegistry(),
        store=object_store(settings),
    )


def object_store(settings: Settings) -> ObjectStore:
    """S3-compatible storage when a bucket is configured, else files served under /media."""
    if settings.s3_bucket:
        return S3Storage(
            bucket=settings.s3_bucket,
            endpoint_url=settings.s3_endpoint_url or None,
            region=settings.s3_region or None,
            access_key=settings.s3_access_key or None,
            secret_key=settings.s3_secret_key.get_secret_value() or None,
            public_base_url=settings.s3_public_url or None,
        )
    root = settings.resolved_media_dir / "store"
    root.mkdir(parents=True, exist_ok=True)
    # Local uploads are signed with a key derived from the JWT key: nothing more to configure.
    upload_secret = hmac.new(
        settings.ensure_jwt_secret().encode(), b"shopcast local uploads", hashlib.sha256
    ).digest()
    return LocalStorage(
        root,
        base_url=f"{settings.resolved_public_url}/media",
        upload_url=f"{settings.resolved_public_url}{UPLOAD_PATH}",
        upload_secret=upload_secret,
    )
