"""A viewer that cannot keep up loses packets alone; nobody else waits for it."""

from __future__ import annotations

import asyncio
import itertools
from types import SimpleNamespace

import pytest

from peers.webrtc import wait_until

from .conftest import Harness

pytestmark = pytest.mark.timeout(30)


async def test_a_slow_viewer_drops_its_own_packets_only(harness: Harness) -> None:
    await harness.live()
    slow, slow_session = await harness.view()
    fast, fast_session = await harness.view()
    await wait_until(lambda: len(slow.video_packets()) > 10 and len(fast.video_packets()) > 10)

    # Its socket buffer is full: the kernel refuses the datagram instead of queueing it.
    def full(data: object, address: object) -> None:
        raise BlockingIOError

    egress = slow_session.egress
    full_route = SimpleNamespace(
        session=egress.session, context=egress.context, sendto=full, address=egress.address
    )
    for consumer in slow_session.consumers.values():
        consumer.route(full_route)  # type: ignore[arg-type]
    slow_count, fast_count = len(slow.video_packets()), len(fast.video_packets())
    await asyncio.sleep(1.0)
    assert len(slow.video_packets()) == slow_count
    assert slow_session.packets_dropped > 30
    assert len(fast.video_packets()) > fast_count + 20
    assert fast_session.packets_dropped == 0
    seqs = [p.sequence_number for p in fast.video_packets()]
    assert all(b == (a + 1) & 0xFFFF for a, b in itertools.pairwise(seqs))
    # It recovers when its socket drains: it NACKs the gap or asks for a keyframe.
    for consumer in slow_session.consumers.values():
        consumer.route(slow_session.egress)
    await wait_until(lambda: len(slow.video_packets()) > slow_count + 10)
