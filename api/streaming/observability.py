"""What operators and sellers watch: a show's media health, and Prometheus metrics."""

from __future__ import annotations

from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from api.accounts.users import STAFF, require_user
from api.realtime.sockets import Realtime
from api.shows.access import load_stream
from api.streaming.schemas import StreamHealthOut
from api.streaming.signaling import MEDIA, Media
from api.web.context import Context
from api.web.errors import forbidden
from api.web.routing import Api
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
    user = require_user(ctx)
    stream = await load_stream(ctx, stream_id)
    if stream.owner_id != user.id and user.role not in STAFF:
        raise forbidden("Only the stream's seller and staff see its health")
    return StreamHealthOut(
        stream_id=stream.id,
        status=StreamStatus(stream.status),
        media=await ctx.request.app[MEDIA].sfu.stats(stream.id),
    )


class NodeCollector(Collector):
    """Reads the media plane and the rooms at scrape time; nothing is counted per packet."""

    def __init__(self, media: Media, realtime: Realtime) -> None:
        self._media = media
        self._realtime = realtime

    def collect(self) -> Iterator[Metric]:
        sessions = GaugeMetricFamily("shopcast_webrtc_sessions", "WebRTC sessions on this node")
        sessions.add_metric([], self._media.sfu.session_count())
        sockets = GaugeMetricFamily("shopcast_socket_clients", "Socket.IO clients on this node")
        sockets.add_metric([], len(self._realtime.members))
        viewers = GaugeMetricFamily("shopcast_webrtc_viewers", "WebRTC viewers", labels=["stream"])
        bitrate = GaugeMetricFamily(
            "shopcast_ingest_bitrate_bps", "Publisher bitrate", labels=["stream", "kind"]
        )
        lost = GaugeMetricFamily(
            "shopcast_ingest_packets_lost", "Publisher packets lost", labels=["stream", "kind"]
        )
        sfu = self._media.sfu
        for room_id, stats in sfu.local_stats().items():
            viewers.add_metric([room_id], sfu.viewers(room_id))
            for track in stats.publisher.tracks if stats.publisher else ():
                if not isinstance(track, ProducerStats):
                    continue
                bitrate.add_metric([room_id, track.kind], track.bitrate_bps)
                lost.add_metric([room_id, track.kind], track.packets_lost)
        yield from (sessions, sockets, viewers, bitrate, lost)


def metrics_route(media: Media, realtime: Realtime) -> web.RouteDef:
    registry = CollectorRegistry()
    registry.register(NodeCollector(media, realtime))

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(registry),
            content_type="text/plain",
            charset="utf-8",
            headers={"Cache-Control": "no-store"},
        )

    return web.get("/metrics", metrics)
