"""The composition root: the one place that builds Shopcast from its settings."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import signal
from collections.abc import AsyncIterator
from importlib.metadata import version
from typing import Any
from urllib.parse import urlsplit

import socketio
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from api.catalog import product_media as media
from api.catalog.product_media import MEDIA_UPLOADS, MediaLimits, MediaUploads
from api.catalog.video_jobs import VideoWorker, WorkerConfig
from api.commerce.orders import HoldExpiry
from api.identity.auth import TokenIssuer
from api.identity.ice import IceConfig
from api.realtime.sockets import Realtime
from api.rest import rest_api
from api.shows.lifecycle import StreamLifecycle
from api.streaming import hls, signaling
from api.streaming.hls import RECORDINGS, hls_cors
from api.streaming.observability import metrics_route
from api.streaming.signaling import MEDIA, Media, signaling_cors
from api.web.context import SERVICES, Services
from api.web.errors import error_middleware
from api.web.pages import mount, security_headers
from api.webhooks.webhooks import Dispatcher
from live.recordings import Recordings, cue_of
from live.states import FINISHED
from live.supervisor import StreamSupervisor
from server.database import create_engine, session_factory
from server.settings import Settings
from sfu import IceSettings, Sfu, SfuSettings
from twins.bus import Bus, LocalBus, RedisBus
from twins.counters import Counters, LocalCounters, RedisCounters
from twins.objectstore import LocalStorage, ObjectStore, S3Storage
from twins.periodic import Periodic
from twins.ratelimit import Limit, LocalRateLimiter, RateLimiter, RedisRateLimiter
from twins.redislink import RedisLink
from twins.registry import HEARTBEAT_SECONDS, LocalRegistry, RedisRegistry, StreamRegistry
from twins.socketio_redis import BreakerRedisManager

SOCKET_MAX_BYTES = 64 * 1024


def build_app(settings: Settings) -> web.Application:
    """An aiohttp application wired from ``settings``; resources open and close with it."""
    node = secrets.token_hex(6)
    engine = create_engine(settings.resolved_database_url)
    settings.resolved_media_dir.mkdir(parents=True, exist_ok=True)
    link = RedisLink(settings.redis_url) if settings.redis_url else None
    bus: Bus = RedisBus(link, node) if link else LocalBus()
    counters: Counters = RedisCounters(link) if link else LocalCounters()
    limiter: RateLimiter = RedisRateLimiter(link) if link else LocalRateLimiter()
    tokens = TokenIssuer(settings.ensure_jwt_secret(), settings.jwt_ttl_seconds)
    sessions, reads = session_factory(engine), session_factory(engine, write=False)
    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        client_manager=BreakerRedisManager(settings.redis_url) if settings.redis_url else None,
        cors_allowed_origins=_socket_origins(settings),
        max_http_buffer_size=SOCKET_MAX_BYTES,
    )
    realtime = Realtime(
        sio,
        node=node,
        sessions=sessions,
        reads=reads,
        tokens=tokens,
        limiter=limiter,
        counters=counters,
        bus=bus,
    )
    lifecycle = StreamLifecycle(sessions, realtime, bus)
    store = _object_store(settings)
    registry: StreamRegistry = (
        RedisRegistry(link, node, settings.resolved_public_url) if link else LocalRegistry()
    )

    async def end_media(stream_id: str) -> None:
        await sfu.close_room(stream_id)
        await registry.release(stream_id)

    supervisor = StreamSupervisor(
        lifecycle,
        close_media=end_media,
        grace_seconds=settings.publisher_grace_seconds,
        media_started=lambda stream_id: recordings.media_started(stream_id),
    )
    sfu = Sfu(
        SfuSettings(
            ice=IceSettings(
                host_addresses=tuple(settings.ice_host_addresses) or None,
                announced_address=settings.ice_announced_address or None,
            ),
            media_timeout=settings.media_timeout_seconds,
        ),
        events=supervisor.on_event,
    )

    recordings = Recordings(sfu, sessions, reads, store, settings.resolved_media_dir / "recordings")

    async def media_events(message: dict[str, Any]) -> None:
        # Whichever node ended the show or pinned a product, the node carrying its media acts.
        stream_id = str(message.get("stream_id"))
        if message.get("type") == "stream.status" and message.get("status") in FINISHED:
            recordings.stream_finished(stream_id)
            await end_media(stream_id)
        elif message.get("type") == "cue":
            recordings.add_cue(stream_id, cue_of(message))

    bus.subscribe(media_events)
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[security_headers, signaling_cors, hls_cors, error_middleware],
    )
    app[MEDIA] = Media(
        sfu,
        supervisor,
        settings.max_sessions,
        frozenset(settings.cors_origins),
        registry,
        Limit(rate=settings.signaling_attempts_per_second, burst=settings.signaling_burst),
        cascade=settings.cascade,
    )
    app[RECORDINGS] = recordings
    app[SERVICES] = Services(
        sessions=sessions,
        reads=reads,
        tokens=tokens,
        limiter=limiter,
        auth_limit=Limit(rate=settings.auth_attempts_per_minute / 60, burst=settings.auth_burst),
        ice=IceConfig(
            urls=tuple(settings.ice_servers),
            turn_secret=settings.turn_secret.get_secret_value(),
            turn_ttl_seconds=settings.turn_ttl_seconds,
        ),
        public_url=settings.resolved_public_url,
        bus=bus,
        counters=counters,
        rooms=realtime,
    )

    app[MEDIA_UPLOADS] = MediaUploads(
        store,
        MediaLimits(
            max_image_bytes=settings.media_max_image_bytes,
            max_video_bytes=settings.media_max_video_bytes,
            expiry_seconds=settings.media_upload_expiry_seconds,
            job_attempts=settings.media_job_attempts,
        ),
    )
    worker = _video_worker(settings, engine, store) if settings.media_worker else None

    holds = HoldExpiry(sessions, realtime)
    dispatcher = Dispatcher(sessions)

    async def heartbeat() -> None:
        """Keep this node's streams its own; adopt the live streams of nodes that died."""
        await registry.heartbeat(room.id for room in sfu.rooms() if not sfu.pulled(room.id))
        await supervisor.adopt(await registry.orphans(await lifecycle.running()))

    beating = Periodic(heartbeat, HEARTBEAT_SECONDS)

    async def resources(app: web.Application) -> AsyncIterator[None]:
        await sfu.start_workers(settings.resolved_sfu_workers - 1)
        await bus.start()
        await realtime.start()
        await holds.start()
        await dispatcher.start()
        for stream_id in await recordings.recover():
            # Unless its publisher came back on another node meanwhile: the show goes on there.
            if await registry.owner(stream_id) is None:
                await lifecycle.interrupted(stream_id)
        if worker is not None:
            worker.start()
        await registry.heartbeat([])  # this node's address is known before its first claim
        beating.start()
        yield
        await beating.stop()
        if worker is not None:
            await worker.close()
        await holds.close()
        await dispatcher.close()
        # Media first: closing it emits the last events, whose status updates then finish.
        carried = [room.id for room in sfu.rooms() if room.publisher is not None]
        await sfu.close()
        await supervisor.close()
        # A show this node carried cannot go on without it: its recording is published and
        # the show marked interrupted, as after a crash.
        for stream_id in {*carried, *await recordings.close()}:
            await lifecycle.interrupted(stream_id)
            await registry.release(stream_id)
        await realtime.close()
        await bus.close()
        if link is not None:
            await link.close()
        await engine.dispose()

    app.cleanup_ctx.append(resources)
    sio.attach(app)
    app.add_routes(
        [
            *signaling.routes(),
            *hls.routes(),
            *media.routes(),
            metrics_route(app[MEDIA], realtime),
        ]
    )
    if isinstance(store, LocalStorage):
        app.router.add_static("/media/", store.root, follow_symlinks=False)
    mount(
        app,
        rest_api(),
        version=version("shopcast"),
        cors_origins=settings.cors_origins,
        media_origins=_media_origins(settings),
    )
    return app


async def run_worker(settings: Settings) -> None:
    """`shopcast worker`: process media jobs until SIGINT or SIGTERM."""
    engine = create_engine(settings.resolved_database_url)
    worker = _video_worker(settings, engine, _object_store(settings))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    worker.start()
    try:
        await stop.wait()
    finally:
        await worker.close()
        await engine.dispose()


def _video_worker(settings: Settings, engine: AsyncEngine, store: ObjectStore) -> VideoWorker:
    return VideoWorker(
        session_factory(engine),
        session_factory(engine, write=False),
        store,
        settings.resolved_media_dir / "jobs",
        WorkerConfig(
            lease_seconds=settings.media_job_lease_seconds,
            timeout_seconds=settings.media_job_timeout_seconds,
            poll_seconds=settings.media_poll_seconds,
        ),
    )


def _object_store(settings: Settings) -> ObjectStore:
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
        upload_url=f"{settings.resolved_public_url}{media.UPLOAD_PATH}",
        upload_secret=upload_secret,
    )


def _media_origins(settings: Settings) -> list[str]:
    """Where pages may fetch replays from besides this origin: the bucket's public origin."""
    url = urlsplit(settings.s3_public_url or settings.s3_endpoint_url)
    return [f"{url.scheme}://{url.netloc}"] if settings.s3_bucket and url.netloc else []


def _socket_origins(settings: Settings) -> list[str] | None:
    """Origins allowed to open a socket; None lets python-socketio accept same-origin only."""
    if not settings.cors_origins:
        return None
    return [*settings.cors_origins, settings.resolved_public_url]
