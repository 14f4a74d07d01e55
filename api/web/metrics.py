"""The node's own Prometheus counters and histograms: what its HTTP, commerce, webhook and media
job code does, counted where it happens (never per packet).

One `Metrics` is made per app (`METRICS`) and handed to the objects that count; every scrape
of `/metrics` reads it. Each outcome label is a small fixed set or an error code of the API,
never an id. Media-plane figures (ingest, recordings) are read from their own stats at scrape
time instead (`api.streaming.observability`).
"""

from __future__ import annotations

import hmac
import platform
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from importlib.metadata import version

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from api.web.context import Context
from api.web.errors import ApiError, Handler
from api.web.routing import bearer_token

# Versions as labels of a gauge of 1: a query joins them onto any series, and a change shows.
BUILD = {
    "version": version("shopcast"),
    "aiortc": version("aiortc"),
    "python": platform.python_version(),
}

# Webhook endpoints and media jobs take from milliseconds to minutes.
_SLOW_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, float("inf"))


def status_class(status: int) -> str:
    """``2xx``, ``4xx``...: one series per class, so odd statuses make no series of their own."""
    return f"{status // 100}xx"


class Metrics:
    """The node's counters (prometheus_client objects of no registry: each scrape registers
    them with its own)."""

    def __init__(self) -> None:
        self._collectors: list[Collector] = []
        self.http_durations = self._histogram(
            "shopcast_http_request_duration_seconds",
            "HTTP requests by route template and status class, from arrival to the response "
            "(Socket.IO's long-polls and WebSockets under /socket.io/)",
            ["method", "route", "status"],
        )
        self.orders = self._counter(
            "shopcast_orders",
            "Orders asked for, by outcome: reserved, or the refusal's error code",
            "outcome",
        )
        self.order_payments = self._counter(
            "shopcast_order_payments", "Orders paid, by payment method", "method"
        )
        self.order_cancellations = self._counter(
            "shopcast_order_cancellations", "Orders cancelled, by whom: buyer or seller", "by"
        )
        self.bids = self._counter(
            "shopcast_auction_bids",
            "Auction bids, by outcome: placed, or the refusal's error code",
            "outcome",
        )
        self.auction_closes = self._counter(
            "shopcast_auction_closes",
            "Auctions closed by this node, by outcome: sold or unsold",
            "outcome",
        )
        self.webhook_deliveries = self._counter(
            "shopcast_webhook_deliveries",
            "Webhook sends, by outcome: delivered, refused (a non-2xx answer), unreachable",
            "outcome",
        )
        self.webhook_durations = self._histogram(
            "shopcast_webhook_delivery_duration_seconds",
            "One webhook send, connecting included",
            buckets=_SLOW_BUCKETS,
        )
        self.media_jobs = self._counter(
            "shopcast_media_job_tries",
            "Tries at media jobs, by outcome: done, failed, timed_out, lease_lost, handed_back, "
            "error",
            "outcome",
        )
        self.media_job_durations = self._histogram(
            "shopcast_media_job_duration_seconds",
            "One try at a media job, download to attach",
            ["outcome"],
            buckets=_SLOW_BUCKETS,
        )
        self.upload_forms = self._counter(
            "shopcast_media_upload_forms", "Upload forms handed to sellers, by media kind", "kind"
        )
        self.media_attached = self._counter(
            "shopcast_media_attached", "Uploaded files attached to products, by media kind", "kind"
        )

    def _counter(self, name: str, documentation: str, label: str) -> Counter:
        counter = Counter(name, documentation, [label], registry=None)
        self._collectors.append(counter)
        return counter

    def _histogram(
        self,
        name: str,
        documentation: str,
        labels: Sequence[str] = (),
        buckets: Sequence[float] = Histogram.DEFAULT_BUCKETS,
    ) -> Histogram:
        histogram = Histogram(name, documentation, labels, buckets=buckets, registry=None)
        self._collectors.append(histogram)
        return histogram

    def collectors(self) -> list[Collector]:
        return list(self._collectors)

    def http_middleware(self) -> Middleware:
        """Times each request by its method, route as declared (placeholders and all, so ids
        make no series) and status class; outside the error middleware, so errors are timed
        with their final status."""

        @web.middleware
        async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            started = time.perf_counter()
            status = 500
            try:
                response = await handler(request)
                status = response.status
                return response
            except web.HTTPException as exc:
                status = exc.status
                raise
            finally:
                resource = request.match_info.route.resource
                route = resource.canonical if resource is not None else "unmatched"
                self.http_durations.labels(request.method, route, status_class(status)).observe(
                    time.perf_counter() - started
                )

        return middleware


@contextmanager
def refusals(counter: Counter) -> Iterator[None]:
    """Count under its error code each ApiError that refuses the block, and re-raise it."""
    try:
        yield
    except ApiError as refused:
        counter.labels(refused.code).inc()
        raise


def after_commit(ctx: Context, counter: Counter, *labels: str) -> None:
    """Count once the request's transaction has committed: a rollback counts nothing."""

    async def count() -> None:
        counter.labels(*labels).inc()

    ctx.after_commit(count)


METRICS = web.AppKey("metrics", Metrics)


class BuildInfo(Collector):
    """``shopcast_build_info``: the running release and what it runs on."""

    def collect(self) -> Iterator[Metric]:
        build = InfoMetricFamily("shopcast_build", "The running Shopcast")
        build.add_metric([], BUILD)
        yield build


def check_scraper(request: web.Request, token: str) -> bool:
    """Whether ``/metrics`` may name every show: a token is set and sent (401 if set and not
    sent); False when no token is set."""
    if not token:
        return False
    if not hmac.compare_digest(bearer_token(request) or "", token):
        raise ApiError(
            401,
            "unauthorized",
            "Send the metrics token",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    return True


def exposition(collectors: Iterable[Collector]) -> web.Response:
    """A scrape's answer: ``collectors``, then this process's own (``process_*``, Python's),
    not its SFU workers'."""
    registry = CollectorRegistry()
    for collector in (BuildInfo(), *collectors):
        registry.register(collector)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return web.Response(
        body=generate_latest(registry),
        headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"},
    )


def worker_metrics(metrics: Metrics, token: str) -> web.Application:
    """A standalone ``shopcast worker``'s ``/metrics``: its media jobs and its process."""

    async def scrape(request: web.Request) -> web.Response:
        check_scraper(request, token)
        return exposition(metrics.collectors())

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    return app
