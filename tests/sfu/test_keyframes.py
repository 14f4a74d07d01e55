"""Keyframe requests reach the publisher (rate-limited) and late joiners start at once."""

from __future__ import annotations

import asyncio

import pytest

from peers.webrtc import wait_until
from sfu import ConsumerState
from sfu.keyframe import h264_is_keyframe

from .conftest import Harness, HarnessFactory

pytestmark = pytest.mark.timeout(30)


async def test_a_joining_viewer_asks_the_publisher_for_a_keyframe(harness: Harness) -> None:
    publisher_peer, _ = await harness.live()
    await asyncio.sleep(0.4)  # past the rate-limit window of any earlier request
    before = publisher_peer.keyframe_requests
    viewer, _ = await harness.view()
    await wait_until(lambda: publisher_peer.keyframe_requests > before, within=5)
    await wait_until(lambda: len(viewer.video_packets()) > 0)
    assert h264_is_keyframe(viewer.video_packets()[0].payload)


async def test_viewer_pli_is_forwarded_and_rate_limited(harness: Harness) -> None:
    publisher_peer, publisher = await harness.live()
    viewer, subscriber = await harness.view()
    await wait_until(lambda: len(viewer.video_packets()) > 10)
    await asyncio.sleep(0.4)
    before = publisher_peer.keyframe_requests
    producer_before = publisher.producers["video"].keyframe_requests
    receiver = next(t.receiver for t in viewer.pc.getTransceivers() if t.kind == "video")
    media_ssrc = subscriber.consumers["video"].ssrc
    for _ in range(10):  # a burst of PLIs from one viewer
        await receiver._send_rtcp_pli(media_ssrc)
        await asyncio.sleep(0.01)
    await wait_until(lambda: publisher_peer.keyframe_requests > before, within=5)
    await asyncio.sleep(0.1)
    assert subscriber.consumers["video"].plis >= 10
    assert publisher.producers["video"].keyframe_requests - producer_before == 1
    assert publisher_peer.keyframe_requests - before == 1


async def test_late_joiner_starts_from_the_cached_keyframe(make_harness: HarnessFactory) -> None:
    # One keyframe request per minute: the late joiner cannot get a fresh keyframe quickly,
    # and aiortc's encoder sends one by itself only every 250 frames.
    harness = await make_harness(keyframe_interval=60.0)
    await harness.live()
    first, _ = await harness.view()
    await wait_until(lambda: len(first.video_packets()) > 30)
    late, subscriber = await harness.view()
    await wait_until(lambda: late.first_video_at is not None, within=2)
    assert late.first_video_at is not None
    assert late.first_video_at - late.started_at < 0.5
    video = late.video_packets()
    assert h264_is_keyframe(video[0].payload)
    # Deltas that followed the cached keyframe are not forwarded: no undecodable frames.
    await asyncio.sleep(0.3)
    assert subscriber.consumers["video"].state is ConsumerState.WAITING_KEYFRAME
    assert len({p.timestamp for p in late.video_packets()}) == 1
