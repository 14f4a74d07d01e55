"""What operators and sellers watch: a show's media health, and Prometheus metrics.

`/metrics` names shows in its per-stream series. Open (no `SHOPCAST_METRICS_TOKEN`), it names
only shows for everyone: an id of a followers-only show is what a stranger needs to try its
replay. With a token set, it answers only a scraper that sends it, and names every show.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Collection, Iterator
from importlib.metadata import version

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from api.realtime.sockets import Realtime
from api.shows.access import sellers_view
from api.shows.models import Audience, Stream
from api.streaming.schemas import StreamHealthOut
from api.streaming.signaling import MEDIA, Media
from api.web.context import SERVICES, Context
from api.web.errors import ApiError, Handler, database_unreachable
from api.web.routing import Api, bearer_token
from live.states import StreamStatus
from sfu.stats import ProducerStats

api = Api()


@api.route(
    "GET",
    "/api/v1/streams/{stream_id}/health",
    summary="A show's media health",
    tag="streams",
    response=StreamHealthOut,
    errors=(401, 403, 404),
    description="Ingest bitrate, frame rate, resolution, codec and loss per track, and "
    "per viewer the packets and bytes sent, NACKs, PLIs and round-trip time.",
)
async def stream_health(ctx: Context, stream_id: str) -> StreamHealthOut:
    stream = await sellers_view(ctx, stream_id, "Only the stream's seller and staff see its health")
    return StreamHealthOut(
        stream_id=stream.id,
        status=StreamStatus(stream.status),
        media=await ctx.request.app[MEDIA].sfu.stats(stream.id),
    )


class HttpMetrics:
    """Each HTTP request's duration, by method, route (the path as declared, placeholders and
    all, so ids make no series) and status; ``middleware`` measures, outermost."""

    def __init__(self) -> None:
        self.durations = Histogram(
            "shopcast_http_request_duration_seconds",
            "HTTP requests by route template, from arrival to the response (Socket.IO's "
            "long-polls and WebSockets under /socket.io/)",
            ["method", "route", "status"],
            registry=None,
        )

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
                self.durations.labels(request.method, route, str(status)).observe(
                    time.perf_counter() - started
                )

        self.middleware = middleware


class NodeCollector(Collector):
    """Reads the media plane and the rooms at scrape time; nothing is counted per packet.
    Publisher tracks are told apart by kind and simulcast layer (empty: one layer)."""

    def __init__(
        self, media: Media, realtime: Realtime, streams: Collection[str] | None = None
    ) -> None:
        self._media = media
        self._realtime = realtime
        self._streams = streams  # the shows the scraper may see named; None: all

    def collect(self) -> Iterator[Metric]:
        sessions = GaugeMetricFamily("shopcast_webrtc_sessions", "WebRTC sessions on this node")
        sessions.add_metric([], self._media.sfu.session_count())
        sockets = GaugeMetricFamily("shopcast_socket_clients", "Socket.IO clients on this node")
        sockets.add_metric([], len(self._realtime.members))
        viewers = GaugeMetricFamily("shopcast_webrtc_viewers", "WebRTC viewers", labels=["stream"])
        track = ["stream", "kind", "layer"]
        received = CounterMetricFamily(
            "shopcast_ingest_bytes", "Bytes of RTP received from the publisher", labels=track
        )
        packets = CounterMetricFamily(
            "shopcast_ingest_packets", "RTP packets received from the publisher", labels=track
        )
        lost = CounterMetricFamily(
            "shopcast_ingest_packets_lost",
            "Publisher packets lost (sequence gaps, as a receiver report counts them)",
            labels=track,
        )
        sfu = self._media.sfu
        for room_id, stats in sfu.local_stats().items():
            if self._streams is not None and room_id not in self._streams:
                continue
            viewers.add_metric([room_id], sfu.viewers(room_id))
            for producer in stats.publisher.tracks if stats.publisher else ():
                if not isinstance(producer, ProducerStats):
                    continue
                labels = [room_id, producer.kind, producer.rid or ""]
                received.add_metric(labels, producer.bytes)
                packets.add_metric(labels, producer.packets)
                lost.add_metric(labels, producer.packets_lost)
        build = InfoMetricFamily("shopcast_build", "The running Shopcast")
        build.add_metric([], {"version": version("shopcast")})
        yield from (build, sessions, sockets, viewers, received, packets, lost)


def metrics_route(media: Media, realtime: Realtime, http: HttpMetrics, token: str) -> web.RouteDef:
    async def metrics(request: web.Request) -> web.Response:
        streams: Collection[str] | None = None
        if token:
            if not hmac.compare_digest(bearer_token(request) or "", token):
                raise ApiError(
                    401,
                    "unauthorized",
                    "Send the metrics token",
                    headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
                )
        else:
            streams = await _public(request, list(media.sfu.local_stats()))
        registry = CollectorRegistry()
        registry.register(NodeCollector(media, realtime, streams))
        registry.register(http.durations)
        # The default registry's collectors: this process's (not its SFU workers'), Python's.
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        return web.Response(
            body=generate_latest(registry),
            headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"},
        )

    return web.get("/metrics", metrics)


async def _public(request: web.Request, stream_ids: list[str]) -> set[str]:
    """Which of ``stream_ids`` are shows for everyone (none while the database is away: the
    node's own figures are what an operator needs then)."""
    if not stream_ids:
        return set()
    try:
        async with request.app[SERVICES].reads() as session:
            rows = await session.scalars(
                select(Stream.id).where(
                    Stream.id.in_(stream_ids), Stream.audience == Audience.EVERYONE
                )
            )
            return set(rows)
    except DBAPIError as exc:
        if not database_unreachable(exc):
            raise
        return set()
