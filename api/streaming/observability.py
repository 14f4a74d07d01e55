"""What operators and sellers watch: a show's media health, and Prometheus metrics.

`/metrics` names shows in its per-stream series. Open (no `SHOPCAST_METRICS_TOKEN`), it names
only shows for everyone: an id of a followers-only show is what a stranger needs to try its
replay. With a token set, it answers only a scraper that sends it, and names every show.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator

from aiohttp import web
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from api.realtime.sockets import Realtime
from api.shows.access import sellers_view
from api.shows.models import Audience, Stream
from api.streaming.hls import RECORDINGS
from api.streaming.schemas import StreamHealthOut
from api.streaming.signaling import MEDIA, Media
from api.web.context import SERVICES, Context
from api.web.errors import database_unreachable
from api.web.metrics import Metrics, check_scraper, exposition
from api.web.routing import Api
from live.states import StreamStatus
from recorder import RecordingTally
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


class NodeCollector(Collector):
    """Reads the media plane, the rooms and the recordings at scrape time; nothing is counted
    per packet. Publisher tracks are told apart by kind and simulcast layer (empty: one layer)."""

    def __init__(
        self,
        media: Media,
        realtime: Realtime,
        tally: RecordingTally,
        streams: Collection[str] | None = None,
    ) -> None:
        self._media = media
        self._realtime = realtime
        self._tally = tally
        self._streams = streams  # the shows the scraper may see named; None: all

    def collect(self) -> Iterator[Metric]:
        sessions = GaugeMetricFamily("shopcast_webrtc_sessions", "WebRTC sessions on this node")
        sessions.add_metric([], self._media.sfu.session_count())
        sockets = GaugeMetricFamily("shopcast_socket_clients", "Socket.IO clients on this node")
        sockets.add_metric([], len(self._realtime.members))
        yield from (sessions, sockets, *self._ingest(), *_recordings(self._tally))

    def _ingest(self) -> Iterator[Metric]:
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
        yield from (viewers, received, packets, lost)


def _recordings(tally: RecordingTally) -> Iterator[Metric]:
    def counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
        return CounterMetricFamily(f"shopcast_recording_{name}", documentation, value=value)

    yield counter("segments", "HLS segments the recordings wrote", tally.segments)
    yield counter("segment_bytes", "Media bytes of those segments", tally.segment_bytes)
    yield counter("uploads", "Recording files stored in the object store", tally.uploads)
    yield counter("upload_bytes", "Bytes of those files", tally.upload_bytes)
    yield counter(
        "upload_failures", "Failed tries at storing a file (retried)", tally.upload_failures
    )
    yield SummaryMetricFamily(
        "shopcast_recording_upload_duration_seconds",
        "Time to store a recording file and check its size",
        count_value=tally.uploads,
        sum_value=tally.upload_seconds,
    )


def metrics_route(media: Media, realtime: Realtime, metrics: Metrics, token: str) -> web.RouteDef:
    async def scrape(request: web.Request) -> web.Response:
        streams: Collection[str] | None = None
        if not check_scraper(request, token):
            streams = await _public(request, list(media.sfu.local_stats()))
        tally = request.app[RECORDINGS].tally
        return exposition([NodeCollector(media, realtime, tally, streams), *metrics.collectors()])

    return web.get("/metrics", scrape)


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
