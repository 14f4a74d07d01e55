"""The media edge's evidence of how far behind live a viewer is, for fair auction closes.

Two sources, both this node's own: the LL-HLS parts it serves to a signed-in viewer (``hls``
calls ``part_served``), and a WebRTC viewer's RTCP round trip, read from the SFU when the page
reports what its ``getStats`` measured. ``api.commerce.delays`` turns them into a delay.
"""

from __future__ import annotations

import re

from aiohttp import web

from api.accounts.users import require_user
from api.commerce.auctions import AUCTIONS
from api.commerce.delays import Report
from api.identity.models import User
from api.shows.access import viewable_stream
from api.shows.models import Stream
from api.streaming.schemas import DelayIn
from api.streaming.signaling import MEDIA
from api.web.context import Context
from api.web.routing import Api
from sfu.stats import ConsumerStats

api = Api()
_PART = re.compile(r"part-\d{1,9}\.m4s")


def part_served(request: web.Request, stream: Stream, user: User | None, name: str) -> None:
    """Note that ``user`` now has an LL-HLS part of the show (nothing for other files)."""
    if user is not None and _PART.fullmatch(name):
        auctions = request.app[AUCTIONS]
        auctions.delays.part_served(stream.id, user.id, auctions.clock())


async def _round_trip(request: web.Request, stream_id: str, session_id: str) -> float | None:
    """The RTCP round trip of a WHEP session of this node, if it has measured one."""
    stats = await request.app[MEDIA].sfu.stats(stream_id)
    for session in stats.subscribers if stats is not None else ():
        if session.session_id == session_id:
            trips = [
                t.rtt_seconds
                for t in session.tracks
                if isinstance(t, ConsumerStats) and t.rtt_seconds is not None
            ]
            return max(trips) if trips else None
    return None


@api.route(
    "POST",
    "/api/v1/streams/{stream_id}/delay",
    summary="Report how far behind live you watch",
    tag="streams",
    status=204,
    body=DelayIn,
    errors=(401, 403, 404, 413, 415, 422),
    description="For auctions: a bid after the close counts when the bidder's delay puts it "
    "before the close. A report only ever lowers the delay the server grants: it grants what "
    "its own evidence shows (the LL-HLS parts it served you, the RTCP round trip of your WHEP "
    "session), at most 5 s.",
)
async def report_delay(ctx: Context, stream_id: str, body: DelayIn) -> None:
    viewer = require_user(ctx)
    stream = await viewable_stream(ctx, stream_id)
    measured = None
    if body.playback == "webrtc" and body.session_id is not None:
        measured = await _round_trip(ctx.request, stream.id, body.session_id)
    report = Report(body.playback, body.latency, body.rtt, body.jitter, measured)
    ctx.request.app[AUCTIONS].delays.reported(stream.id, viewer.id, report)
