"""The node's own Prometheus counters and histograms: what its HTTP, commerce, webhook and media
job code does, counted where it happens (never per packet).

One `Metrics` is made per app (`METRICS`) and handed to the objects that count; every scrape
of `/metrics` reads it. Each outcome label is a small fixed set or an error code of the API,
never an id. Media-plane figures (ingest, recordings) are read from their own stats at scrape
time instead (`api.streaming.observability`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import Counter, Histogram
from prometheus_client.registry import Collector

from api.web.context import Context
from api.web.errors import ApiError, Handler

# Webhook endpoints and media jobs take from milliseconds to minutes.
_SLOW_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, float("inf"))


def status_class(status: int) -> str:
    """``2xx``, ``4xx``...: one series per class, so odd statuses make no series of their own."""
    return f"{status // 100}xx"


class Metrics:
    """The node's counters (prometheus_client objects of no registry: each scrape registers
    them with its own)."""

    def __init__(self) -> None:
        self.http_durations = Histogram(
            "shopcast_http_request_duration_seconds",
            "HTTP requests by route template and status class, from arrival to the response "
            "(Socket.IO's long-polls and WebSockets under /socket.io/)",
            ["method", "route", "status"],
            registry=None,
        )
        self.orders = Counter(
            "shopcast_orders",
            "Orders asked for, by outcome: reserved, or the refusal's error code",
            ["outcome"],
            registry=None,
        )
        self.order_payments = Counter(
            "shopcast_order_payments",
            "Orders paid, by payment method",
            ["method"],
            registry=None,
        )
        self.order_cancellations = Counter(
            "shopcast_order_cancellations",
            "Orders cancelled, by whom: buyer or seller",
            ["by"],
            registry=None,
        )
        self.bids = Counter(
            "shopcast_auction_bids",
            "Auction bids, by outcome: placed, or the refusal's error code",
            ["outcome"],
            registry=None,
        )
        self.auction_closes = Counter(
            "shopcast_auction_closes",
            "Auctions closed by this node, by outcome: sold or unsold",
            ["outcome"],
            registry=None,
        )
        self.webhook_deliveries = Counter(
            "shopcast_webhook_deliveries",
            "Webhook sends, by outcome: delivered, refused (a non-2xx answer), unreachable",
            ["outcome"],
            registry=None,
        )
        self.webhook_durations = Histogram(
            "shopcast_webhook_delivery_duration_seconds",
            "One webhook send, connecting included",
            buckets=_SLOW_BUCKETS,
            registry=None,
        )
        self.media_jobs = Counter(
            "shopcast_media_job_tries",
            "Tries at media jobs, by outcome: done, failed, timed_out, lease_lost, handed_back, "
            "error",
            ["outcome"],
            registry=None,
        )
        self.media_job_durations = Histogram(
            "shopcast_media_job_duration_seconds",
            "One try at a media job, download to attach",
            ["outcome"],
            buckets=_SLOW_BUCKETS,
            registry=None,
        )
        self.upload_forms = Counter(
            "shopcast_media_upload_forms",
            "Upload forms handed to sellers, by media kind",
            ["kind"],
            registry=None,
        )
        self.media_attached = Counter(
            "shopcast_media_attached",
            "Uploaded files attached to products, by media kind",
            ["kind"],
            registry=None,
        )

    def collectors(self) -> list[Collector]:
        return [
            self.http_durations,
            self.orders,
            self.order_payments,
            self.order_cancellations,
            self.bids,
            self.auction_closes,
            self.webhook_deliveries,
            self.webhook_durations,
            self.media_jobs,
            self.media_job_durations,
            self.upload_forms,
            self.media_attached,
        ]

    def http_middleware(self) -> Middleware:
        """Times each request by its method, route as declared (placeholders and all, so ids
        make no series) and status class; outermost, so errors are timed with their status."""

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
