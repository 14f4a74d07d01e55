"""The composition root: the one place that builds Shopcast from its settings.

``build_app`` lists the subsystems; each builder below makes its part from the settings, the
twins and what the parts before it made, and registers its own start and stop. aiohttp starts
them in this order and stops them in the reverse one: pages and jobs first, the media before
the rooms it announces to, the twins and the database last.
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import signal
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import aiohttp
import socketio
import stripe
from aiohttp import web

from api.analytics.report import show_analytics
from api.catalog import product_media
from api.catalog.product_media import MEDIA_UPLOADS, MediaLimits, MediaUploads
from api.catalog.video_jobs import VideoWorker, WorkerConfig
from api.commerce.auctions import AUCTIONS, Auctions
from api.commerce.delays import ViewerDelays
from api.commerce.gate import GATE, SalesGate
from api.commerce.hammer import Hammer
from api.commerce.holds import HoldExpiry
from api.identity.auth import Passwords, TokenIssuer
from api.identity.ice import IceConfig
from api.notifications.links import UnsubscribeLinks
from api.notifications.mail import Mailer, SmtpConfig
from api.notifications.notifier import Channels, Notifier, NotifierConfig
from api.notifications.preferences import NOTIFICATIONS, Notifications
from api.notifications.push import WebPush, public_key_of
from api.realtime.sockets import Realtime
from api.rest import openapi_spec, rest_api
from api.shows.lifecycle import StreamLifecycle
from api.shows.replays import Replays
from api.shows.schedule import REMINDERS, Reminders
from api.shows.streams import SUMMARY
from api.streaming import hls, signaling
from api.streaming.hls import RECORDINGS, hls_cors
from api.streaming.observability import metrics_route
from api.streaming.signaling import MEDIA, Media, signaling_cors
from api.web.context import SERVICES, Services, StripeAccount
from api.web.errors import error_middleware
from api.web.metrics import METRICS, Metrics, worker_metrics
from api.web.pages import mount, security_headers
from api.web.proxies import forwarded_for
from api.web.request_log import request_ids, send_request_id
from api.webhooks.webhooks import Dispatcher
from live.messages import StatusChanged
from live.node import LiveNode, LiveSettings
from recorder import RecorderConfig
from server.cpus import usable_cpus
from server.database import Database, open_database
from server.settings import Settings
from server.twins import Twins, object_store, twins_for
from sfu import IceSettings, MediaPorts, PortSettings, SfuSettings, serving_media_ports
from twins.objectstore import LocalStorage, ObjectStore
from twins.periodic import Periodic
from twins.ratelimit import Limit
from twins.socketio_redis import BreakerRedisManager

SOCKET_MAX_BYTES = 64 * 1024
STRIPE_TIMEOUT_SECONDS = 20  # one call to Stripe's API, connecting included
STRIPE_RETRIES = 2  # of a failed connection or 5xx: safe, as creates carry idempotency keys
REMINDER_TICK_SECONDS = 1.0  # how late a reminder may be queued


def build_app(settings: Settings) -> web.Application:
    """An aiohttp application wired from ``settings``; resources open and close with it."""
    settings.resolved_media_dir.mkdir(parents=True, exist_ok=True)
    proxies = [ipaddress.ip_network(n, strict=False) for n in settings.trusted_proxies]
    metrics = Metrics()
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[
            request_ids,
            metrics.http_middleware(),
            security_headers,
            signaling_cors,
            hls_cors,
            error_middleware,
            *([forwarded_for(proxies)] if proxies else []),
        ],
    )
    app[METRICS] = metrics
    app.on_response_prepare.append(send_request_id)
    database = _database(app, settings)
    twins = twins_for(settings, node=secrets.token_hex(6))
    app.cleanup_ctx.append(twins.lifespan)
    tokens = TokenIssuer(settings.ensure_jwt_secret(), settings.jwt_ttl_seconds)
    app[AUCTIONS] = Auctions(twins.limiter, ViewerDelays(), metrics=metrics)
    realtime = _realtime(app, settings, twins, database, tokens)
    lifecycle = StreamLifecycle(database.sessions, realtime, twins.bus)
    services = _services(app, settings, twins, database, tokens, realtime)
    _live(app, settings, twins, database, lifecycle)
    _commerce(app, settings, database, services)
    _catalog(app, settings, database, twins.store)
    _notifications(app, settings, database)
    _pages(app, settings, realtime)
    return app


def _database(app: web.Application, settings: Settings) -> Database:
    database = open_database(settings.resolved_database_url)

    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        yield
        await database.dispose()

    app.cleanup_ctx.append(lifespan)
    return database


def _realtime(
    app: web.Application, settings: Settings, twins: Twins, db: Database, tokens: TokenIssuer
) -> Realtime:
    """Socket.IO: chat, reactions, moderation and viewer counts, across nodes with Redis."""
    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        client_manager=BreakerRedisManager(settings.redis_url) if settings.redis_url else None,
        cors_allowed_origins=_socket_origins(settings),
        max_http_buffer_size=SOCKET_MAX_BYTES,
    )
    realtime = Realtime(
        sio,
        node=twins.node,
        sessions=db.sessions,
        reads=db.reads,
        tokens=tokens,
        limiter=twins.limiter,
        counters=twins.counters,
        bus=twins.bus,
        auctions=app[AUCTIONS],
    )

    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        await realtime.start()
        yield
        await realtime.close()

    app.cleanup_ctx.append(lifespan)
    sio.attach(app)
    return realtime


def _services(
    app: web.Application,
    settings: Settings,
    twins: Twins,
    db: Database,
    tokens: TokenIssuer,
    realtime: Realtime,
) -> Services:
    """What every REST handler receives (``Context.services``)."""
    # Half the CPUs at most hash passwords; the others keep forwarding media.
    passwords = Passwords(max(1, usable_cpus() // 2))

    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        yield
        passwords.close()

    app.cleanup_ctx.append(lifespan)
    services = Services(
        sessions=db.sessions,
        reads=db.reads,
        tokens=tokens,
        passwords=passwords,
        limiter=twins.limiter,
        auth_limit=Limit(rate=settings.auth_attempts_per_minute / 60, burst=settings.auth_burst),
        ice=IceConfig(
            urls=tuple(settings.ice_servers),
            turn_secret=settings.turn_secret.get_secret_value(),
            turn_ttl_seconds=settings.turn_ttl_seconds,
        ),
        public_url=settings.resolved_public_url,
        bus=twins.bus,
        counters=twins.counters,
        rooms=realtime,
        stripe=_stripe(app, settings),
    )
    app[SERVICES] = services
    app[SUMMARY] = show_analytics
    app[GATE] = SalesGate(settings.sales_gate_seconds, metrics=app[METRICS])

    async def show_finished(message: StatusChanged) -> None:
        # What this node remembers of a show's offers and auctions goes with the show.
        if message.finished:
            app[GATE].show_finished(message.stream_id)
            app[AUCTIONS].show_finished(message.stream_id)

    twins.bus.subscribe(StatusChanged, show_finished)
    return services


def _stripe(app: web.Application, settings: Settings) -> StripeAccount | None:
    """The platform's Stripe account, when the operator gave its key: one client, whose HTTP
    runs on the event loop (aiohttp), closed with the app."""
    key = settings.stripe_secret_key.get_secret_value()
    if not key:
        return None
    http = stripe.AIOHTTPClient(timeout=aiohttp.ClientTimeout(total=STRIPE_TIMEOUT_SECONDS))
    base = settings.stripe_api_base.rstrip("/")
    client = stripe.StripeClient(
        key,
        base_addresses={"api": base} if base else {},
        http_client=http,
        max_network_retries=STRIPE_RETRIES,
    )

    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        yield
        await http.close_async()  # type: ignore[no-untyped-call]  # unannotated in the SDK

    app.cleanup_ctx.append(lifespan)
    return StripeAccount(client, settings.stripe_webhook_secret)


def _live(
    app: web.Application,
    settings: Settings,
    twins: Twins,
    db: Database,
    lifecycle: StreamLifecycle,
) -> None:
    """The shows this node carries: the SFU, their supervision and recording; WHIP, WHEP, HLS."""
    sfu = SfuSettings(
        ice=IceSettings(
            host_addresses=tuple(settings.ice_host_addresses) or None,
            announced_address=settings.ice_announced_address or None,
        ),
        ports=PortSettings(
            port_range=settings.resolved_port_range,
            processes=settings.resolved_sfu_workers,
            udp_mux=settings.ice_udp_mux,
        ),
        media_timeout=settings.media_timeout_seconds,
        native=settings.sfu_native,
    )
    live = LiveNode(
        LiveSettings(
            sfu=sfu,
            grace_seconds=settings.publisher_grace_seconds,
            workers=settings.resolved_sfu_workers - 1,
            recordings=settings.resolved_media_dir / "recordings",
            recorder=RecorderConfig(dvr_seconds=settings.hls_dvr_seconds),
            ladder=settings.hls_ladder,
        ),
        states=lifecycle,
        replays=Replays(db.sessions, db.reads),
        store=twins.store,
        registry=twins.registry,
        bus=twins.bus,
        counters=twins.counters,
        node=twins.node,
    )

    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        # This process is the node's SFU process 0: its ICE sockets use slice 0 of the range.
        async with serving_media_ports(MediaPorts.for_process(sfu.ports, 0)):
            await live.start()
            yield
            await live.close()

    app.cleanup_ctx.append(lifespan)
    app[MEDIA] = Media(
        live.sfu,
        settings.max_sessions,
        frozenset(settings.cors_origins),
        twins.registry,
        Limit(rate=settings.signaling_attempts_per_second, burst=settings.signaling_burst),
        cascade=settings.cascade,
    )
    app[RECORDINGS] = live.recordings
    app.add_routes([*signaling.routes(), *hls.routes(twins.store)])


def _commerce(app: web.Application, settings: Settings, db: Database, services: Services) -> None:
    """Background work of commerce: expiring holds (closing their Checkout Sessions at Stripe),
    closing auctions and delivering webhooks."""
    holds = HoldExpiry(
        db.sessions, services.rooms, reads=db.reads, stripe=services.stripe, gate=app[GATE]
    )
    auctions = Hammer(db.sessions, services.rooms, app[AUCTIONS], metrics=app[METRICS])
    dispatcher = Dispatcher(
        db.sessions, private_networks=settings.webhook_private_networks, metrics=app[METRICS]
    )

    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        await holds.start()
        await auctions.start()
        await dispatcher.start()
        yield
        await holds.close()
        await auctions.close()
        await dispatcher.close()

    app.cleanup_ctx.append(lifespan)


def _catalog(app: web.Application, settings: Settings, db: Database, store: ObjectStore) -> None:
    """Product photos and videos: upload forms and the video jobs (unless a worker runs them)."""
    app[MEDIA_UPLOADS] = MediaUploads(
        store,
        MediaLimits(
            max_image_bytes=settings.media_max_image_bytes,
            max_video_bytes=settings.media_max_video_bytes,
            expiry_seconds=settings.media_upload_expiry_seconds,
            job_attempts=settings.media_job_attempts,
        ),
    )
    app.add_routes(product_media.routes())
    if isinstance(store, LocalStorage):
        app.router.add_static("/media/", store.root, follow_symlinks=False)
        app.on_response_prepare.append(product_media.store_file_types)
    if settings.media_worker:
        worker = _video_worker(settings, db, store, app[METRICS])

        async def lifespan(app: web.Application) -> AsyncIterator[None]:
            worker.start()
            yield
            await worker.close()

        app.cleanup_ctx.append(lifespan)


def _notifications(app: web.Application, settings: Settings, db: Database) -> None:
    """Notices of shows (going live, reminders, moves, cancellations): Web Push with this
    node's VAPID key, email when SMTP is set."""
    private_key = settings.ensure_vapid_key()
    links = UnsubscribeLinks(settings.ensure_jwt_secret(), settings.resolved_public_url)
    app[NOTIFICATIONS] = Notifications(
        settings.vapid_public_key or public_key_of(private_key), links
    )
    smtp = SmtpConfig(
        host=settings.smtp_host,
        port=settings.smtp_port,
        username=settings.smtp_username,
        password=settings.smtp_password.get_secret_value(),
        sender=settings.resolved_smtp_from,
        starttls=settings.smtp_starttls,
    )

    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        push = WebPush(
            private_key,
            settings.resolved_vapid_subject,
            private_networks=settings.push_private_networks,
        )
        channels = Channels(push, Mailer(smtp) if settings.smtp_host else None)
        notifier = Notifier(
            db.sessions, db.reads, channels, links, settings.resolved_public_url, NotifierConfig()
        )
        reminders = Reminders(db.sessions, db.reads)
        app[REMINDERS] = reminders
        due = Periodic(reminders.tick, REMINDER_TICK_SECONDS)
        notifier.start()
        due.start()
        yield
        await due.stop()
        await notifier.close()

    app.cleanup_ctx.append(lifespan)


def _pages(app: web.Application, settings: Settings, realtime: Realtime) -> None:
    """The REST API with its OpenAPI document, the metrics, the pages and CORS."""
    token = settings.metrics_token.get_secret_value()
    app.add_routes([metrics_route(app[MEDIA], realtime, app[METRICS], token)])
    api = rest_api()
    mount(
        app,
        api,
        spec=openapi_spec(api),
        cors_origins=settings.cors_origins,
        media_origins=_media_origins(settings),
    )


async def run_worker(settings: Settings) -> None:
    """`shopcast worker`: process media jobs until SIGINT or SIGTERM."""
    database = open_database(settings.resolved_database_url)
    metrics = Metrics()
    worker = _video_worker(settings, database, object_store(settings), metrics)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    scraped: web.AppRunner | None = None
    if settings.worker_metrics_port:
        token = settings.metrics_token.get_secret_value()
        scraped = web.AppRunner(worker_metrics(metrics, token), access_log=None)
        await scraped.setup()
        await web.TCPSite(scraped, settings.host, settings.worker_metrics_port).start()
    worker.start()
    try:
        await stop.wait()
    finally:
        await worker.close()
        if scraped is not None:
            await scraped.cleanup()
        await database.dispose()


def _video_worker(
    settings: Settings, db: Database, store: ObjectStore, metrics: Metrics | None = None
) -> VideoWorker:
    return VideoWorker(
        db.sessions,
        db.reads,
        store,
        settings.resolved_media_dir / "jobs",
        WorkerConfig(
            lease_seconds=settings.media_job_lease_seconds,
            timeout_seconds=settings.media_job_timeout_seconds,
            poll_seconds=settings.media_poll_seconds,
        ),
        metrics=metrics,
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
