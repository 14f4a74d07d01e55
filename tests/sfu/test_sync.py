"""Viewers' sender reports carry the publisher's clock, so audio and video stay in sync."""

from __future__ import annotations

import pytest

from peers.webrtc import wait_until
from sfu.aiortc_hooks import tap_sender_reports

from .conftest import Harness

pytestmark = pytest.mark.timeout(30)
NTP_SECOND = 1 << 32


async def test_sender_reports_follow_the_publishers_clock(harness: Harness) -> None:
    _, publisher = await harness.live()
    viewer, subscriber = await harness.view()
    reports: dict[int, list[tuple[int, int]]] = {}
    for transceiver in viewer.pc.getTransceivers():
        tap_sender_reports(
            transceiver.receiver,
            lambda ssrc, ntp, rtp: reports.setdefault(ssrc, []).append((ntp, rtp)),
        )
    consumers = subscriber.consumers
    await wait_until(
        lambda: all(len(reports.get(c.ssrc, [])) >= 3 for c in consumers.values()), within=10
    )
    for kind, consumer in consumers.items():
        producer = publisher.producers[kind]
        _, pub_ntp, pub_rtp = producer._sender_report  # the publisher's own last report
        clock = producer.clock_rate
        for ntp, rtp in reports[consumer.ssrc][-2:]:
            assert ntp > 0
            # Map the viewer's report back to the publisher's timeline: same instant, same
            # media time, give or take the publisher's own report-to-report jitter.
            expected = pub_rtp + (ntp - pub_ntp) * clock // NTP_SECOND
            drift = ((rtp - consumer.lane.ts_off - expected + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)
            assert abs(drift) < 0.03 * clock, (kind, drift)
