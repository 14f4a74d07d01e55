"""Viewers spread over SFU worker processes, fed by relays of the origin's publisher."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

import pytest

from peers.webrtc import wait_until
from sfu import GoneReason, RemoteSubscriber, Subscriber, SubscriberGone
from sfu.keyframe import h264_is_keyframe
from sfu.pool import WorkerPool
from sfu.relay import keyframe_request
from tests.sfu.conftest import Harness, HarnessFactory
from tests.sfu.test_lifecycle import assert_continuous

pytestmark = pytest.mark.timeout(60)


async def workers(make_harness: HarnessFactory, count: int = 1, **settings: object) -> Harness:
    harness = await make_harness(**settings)
    await harness.sfu.start_workers(count)
    return harness


def pool(harness: Harness) -> WorkerPool:
    assert harness.sfu._pool is not None
    return harness.sfu._pool


async def test_viewers_are_spread_over_the_processes_and_all_get_the_media(
    make_harness: HarnessFactory,
) -> None:
    harness = await workers(make_harness, count=2)
    await harness.live()
    views = [await harness.view() for _ in range(3)]
    kinds = [type(session) for _, session in views]
    assert kinds.count(RemoteSubscriber) == 2 and kinds.count(Subscriber) == 1
    assert {w.viewers() for w in pool(harness).workers} == {1}
    assert harness.sfu.viewers("room") == 3
    for peer, _ in views:
        await wait_until(lambda p=peer: len(p.video_packets()) > 30 and len(p.audio_packets()) > 30)
    remote = next(peer for peer, session in views if isinstance(session, RemoteSubscriber))
    # The relay forwards the publisher's stream itself: a keyframe first, no gap after it.
    assert h264_is_keyframe(remote.video_packets()[0].payload)
    assert_continuous(remote.video_packets())
    assert_continuous(remote.audio_packets())


async def test_a_worker_viewer_is_found_and_closed_through_the_node(
    make_harness: HarnessFactory,
) -> None:
    harness = await workers(make_harness)
    await harness.live()
    _, session = await harness.view()
    assert isinstance(session, RemoteSubscriber)
    assert harness.sfu.session("room", session.id) is session
    assert harness.sfu.session("other-room", session.id) is None
    await session.close()
    await wait_until(
        lambda: SubscriberGone("room", session.id, GoneReason.CLOSED) in harness.events
    )
    assert harness.sfu.session("room", session.id) is None
    # Its last viewer gone, the worker no longer receives the room's packets.
    await wait_until(lambda: not pool(harness).workers[0].relays)
    publisher = harness.sfu.get_room("room")
    assert publisher is not None and publisher.publisher is not None
    assert publisher.publisher.ingest.relays == ()


async def test_a_new_publisher_reaches_the_viewers_in_workers(make_harness: HarnessFactory) -> None:
    harness = await workers(make_harness)
    first_peer, first = await harness.live()
    viewer, session = await harness.view()
    assert isinstance(session, RemoteSubscriber)
    await wait_until(lambda: len(viewer.video_packets()) > 20)
    ssrcs = {p.ssrc for p in viewer.video_packets()}
    _, second = await harness.live()
    await first_peer.close()
    count = len(viewer.video_packets())
    await wait_until(lambda: len(viewer.video_packets()) > count + 40)
    assert second.ingest.relays != () and first.ingest.relays == ()
    # The viewer keeps its SSRC and a gapless sequence across the change of publisher.
    assert {p.ssrc for p in viewer.video_packets()} == ssrcs
    assert_continuous(viewer.video_packets())


async def test_ending_the_room_closes_the_viewers_in_workers(make_harness: HarnessFactory) -> None:
    harness = await workers(make_harness)
    await harness.live()
    _, session = await harness.view()
    await harness.sfu.close_room("room")
    await wait_until(
        lambda: SubscriberGone("room", session.id, GoneReason.CLOSED) in harness.events
    )
    assert harness.sfu.viewers("room") == 0


async def test_a_dead_worker_loses_only_its_viewers(make_harness: HarnessFactory) -> None:
    harness = await workers(make_harness)
    await harness.live()
    _, remote = await harness.view()
    local_peer, local = await harness.view()
    assert isinstance(remote, RemoteSubscriber) and isinstance(local, Subscriber)
    worker = pool(harness).workers[0]
    os.kill(worker.process.pid, signal.SIGKILL)
    await wait_until(
        lambda: SubscriberGone("room", remote.id, GoneReason.CONNECTION_FAILED) in harness.events
    )
    room = harness.sfu.get_room("room")
    assert room is not None and room.publisher is not None and room.publisher.ingest.relays == ()
    count = len(local_peer.video_packets())
    await wait_until(lambda: len(local_peer.video_packets()) > count + 20)


def replaced(harness: Harness, pid: int) -> bool:
    """A live worker other than process ``pid`` has taken index 0."""
    return [(w.index, w.alive) for w in pool(harness).workers] == [(0, True)] and (
        pool(harness).workers[0].process.pid != pid
    )


async def test_a_dead_worker_is_replaced_and_the_new_one_takes_viewers(
    make_harness: HarnessFactory,
) -> None:
    harness = await workers(make_harness)
    await harness.live()
    _, remote = await harness.view()
    first = pool(harness).workers[0]
    os.kill(first.process.pid, signal.SIGKILL)
    await wait_until(
        lambda: SubscriberGone("room", remote.id, GoneReason.CONNECTION_FAILED) in harness.events
    )
    await wait_until(lambda: replaced(harness, first.process.pid), within=20)
    second = pool(harness).workers[0]
    assert second.crashes == 1  # the first died within a minute of its start
    viewer, again = await harness.view()  # as a page re-POSTs after losing its session
    assert isinstance(again, RemoteSubscriber)
    await wait_until(lambda: len(viewer.video_packets()) > 20)
    # One that dies young again is replaced after a longer wait, and counted.
    os.kill(second.process.pid, signal.SIGKILL)
    await wait_until(lambda: replaced(harness, second.process.pid), within=20)
    assert pool(harness).workers[0].crashes == 2


async def test_closing_the_sfu_stops_its_workers(make_harness: HarnessFactory) -> None:
    harness = await workers(make_harness, count=2)
    processes = [w.process for w in pool(harness).workers]
    await harness.sfu.close()
    assert all(p.returncode is not None for p in processes)


async def test_a_workers_first_viewer_starts_from_the_cached_keyframe(
    make_harness: HarnessFactory,
) -> None:
    # One keyframe request per minute: only the origin's cached keyframe can start the viewer.
    harness = await workers(make_harness, keyframe_interval=60.0)
    _, publisher = await harness.live()
    video = publisher.producers["video"]
    before = video.keyframes
    assert video.request_keyframe()  # the last one the publisher is asked for in a minute
    await wait_until(lambda: video.keyframes > before)
    viewer, session = await harness.view()
    assert isinstance(session, RemoteSubscriber)
    await wait_until(lambda: viewer.first_video_at is not None, within=2)
    assert viewer.first_video_at is not None
    assert viewer.first_video_at - viewer.started_at < 0.5
    assert h264_is_keyframe(viewer.video_packets()[0].payload)


async def test_a_rate_limited_keyframe_request_of_a_worker_is_sent_when_allowed(
    make_harness: HarnessFactory,
) -> None:
    harness = await workers(make_harness, keyframe_interval=0.5)
    _, publisher = await harness.live()
    await harness.view()
    video = publisher.producers["video"]
    (channel,) = pool(harness)._channels
    ask = keyframe_request(channel, "video")
    await asyncio.sleep(0.6)
    before = video.keyframe_requests
    pool(harness).datagram_received(ask, ("127.0.0.1", 9))
    assert video.keyframe_requests == before  # not from a worker: asks nothing
    assert video.request_keyframe()
    count = video.keyframe_requests
    for _ in range(3):  # the worker's viewers ask while the origin may not
        pool(harness).datagram_received(ask, pool(harness).workers[0].address)
    assert video.keyframe_requests == count
    await wait_until(lambda: video.keyframe_requests == count + 1, within=2)
    await asyncio.sleep(0.7)
    assert video.keyframe_requests == count + 1  # one deferred request, not three


async def test_a_worker_logs_through_its_parent(
    make_harness: HarnessFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    harness = await workers(make_harness)
    pid = pool(harness).workers[0].process.pid
    await wait_until(lambda: any(r.name == "sfu.worker" for r in caplog.records))
    (record,) = [r for r in caplog.records if r.name == "sfu.worker"]
    assert record.getMessage() == "SFU worker 1 serving; ICE sockets: any"
    assert (record.levelno, record.__dict__["worker_pid"]) == (logging.INFO, pid)
