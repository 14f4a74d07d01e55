"""How far behind live each viewer is, from the server's own evidence, for fair auction closes.

A viewer's page reports what it measures (hls.js ``latency``; WebRTC ``getStats``: round trip
and jitter buffer), but a report only ever lowers what is granted: the server grants at most
what it can prove, and never more than ``CAP``.

- HLS: a player cannot show media it has not fetched. The last part this node served to the
  viewer ended at the latest when it was served, so at ``now`` the viewer is at least
  ``now - served_at`` behind live. Fetching lazily to look further behind only works by really
  not having the pictures; fetching an old part again only lowers what is granted.
- WebRTC: half the round trip the SFU measures from the viewer's RTCP receiver reports, plus
  the jitter buffer the page reports, bounded by ``JITTER_MAX``. A reported round trip the
  RTCP one does not confirm voids the report: the viewer gets half the measured round trip.

The evidence is this node's (the node serving the viewer's HLS and socket); a viewer whose
evidence is elsewhere is granted none, which can only make the close stricter for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

CAP = timedelta(seconds=5)  # the most any viewer is granted: the close waits this long
JITTER_MAX = timedelta(milliseconds=500)  # a WebRTC jitter buffer larger than this is not taken
RTT_SLACK = 1.5  # a reported round trip up to this times the RTCP one (plus 50 ms) is believed
KEPT = 10_000  # viewers remembered per node, the oldest forgotten first

Playback = Literal["webrtc", "hls"]


@dataclass
class Report:
    """What a viewer's page measured, as it said, and what the SFU measured (seconds)."""

    playback: Playback
    latency: float  # how far behind live it believes it plays
    rtt: float | None = None  # WebRTC: the round trip getStats reports
    jitter: float | None = None  # WebRTC: the jitter buffer's average delay
    measured_rtt: float | None = None  # WebRTC: the round trip of its WHEP session's RTCP


@dataclass
class Evidence:
    """What this node knows of one viewer of one stream."""

    part_at: datetime | None = None  # when an LL-HLS part was last served to them
    report: Report | None = None


class ViewerDelays:
    """Per (stream, user): the evidence, and the delay granted from it."""

    def __init__(self) -> None:
        self._evidence: dict[tuple[str, str], Evidence] = {}

    def _of(self, stream_id: str, user_id: str) -> Evidence:
        key = (stream_id, user_id)
        evidence = self._evidence.pop(key, None) or Evidence()
        self._evidence[key] = evidence  # newest last, so the oldest go first
        if len(self._evidence) > KEPT:
            del self._evidence[next(iter(self._evidence))]
        return evidence

    def part_served(self, stream_id: str, user_id: str, now: datetime) -> None:
        """This node served an LL-HLS part of the stream to the user at ``now``."""
        self._of(stream_id, user_id).part_at = now

    def reported(self, stream_id: str, user_id: str, report: Report) -> None:
        self._of(stream_id, user_id).report = report

    def granted(self, stream_id: str, user_id: str, playback: Playback, now: datetime) -> timedelta:
        """How far behind live the viewer is taken to be at ``now``: at most ``CAP``."""
        evidence = self._evidence.get((stream_id, user_id), Evidence())
        report = (
            evidence.report if evidence.report and evidence.report.playback == playback else None
        )
        if playback == "hls":
            proven = now - evidence.part_at if evidence.part_at else timedelta(0)
        else:
            proven = _webrtc(report)
        if report is not None:
            proven = min(proven, timedelta(seconds=max(0.0, report.latency)))
        return max(timedelta(0), min(proven, CAP))


def _webrtc(report: Report | None) -> timedelta:
    """Half the RTCP round trip, plus the reported jitter buffer if the reported round trip
    agrees with the RTCP one; nothing without an RTCP round trip."""
    measured = report.measured_rtt if report else None
    if report is None or measured is None:
        return timedelta(0)
    half = timedelta(seconds=measured / 2)
    claimed_rtt = report.rtt if report.rtt is not None else measured
    if claimed_rtt > measured * RTT_SLACK + 0.05:
        return half
    return half + min(timedelta(seconds=max(0.0, report.jitter or 0.0)), JITTER_MAX)
