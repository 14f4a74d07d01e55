"""Publisher replacement, timeouts, closing, and resource hygiene under viewer churn."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import os
import threading

import pytest
from aiortc import RTCPeerConnection

from peers.webrtc import Received, wait_until
from sfu import ConsumerState, GoneReason, PublisherGone, RoomState, SubscriberGone

from .conftest import Harness, HarnessFactory


def assert_continuous(packets: list[Received]) -> None:
    for previous, current in itertools.pairwise(packets):
        assert current.sequence_number == (previous.sequence_number + 1) & 0xFFFF
        assert (current.timestamp - previous.timestamp) & 0xFFFFFFFF < 0x80000000


@pytest.mark.timeout(30)
async def test_a_new_publisher_takes_over_without_disturbing_viewers(harness: Harness) -> None:
    first_peer, first = await harness.live()
    viewer, subscriber = await harness.view()
    await wait_until(lambda: len(viewer.video_packets()) > 20 and len(viewer.audio_packets()) > 20)
    ssrcs = {kind: c.ssrc for kind, c in subscriber.consumers.items()}

    _, second = await harness.live()
    assert PublisherGone("room", first.id, GoneReason.REPLACED) in harness.events
    assert first.closed and not subscriber.closed
    await first_peer.close()
    new_video = second.producers["video"]
    await wait_until(lambda: new_video.consumers != () and len(viewer.video_packets()) > 0)
    count = len(viewer.video_packets())
    await wait_until(lambda: len(viewer.video_packets()) > count + 20)
    assert {kind: c.ssrc for kind, c in subscriber.consumers.items()} == ssrcs
    assert subscriber.consumers["video"].producer is new_video
    assert subscriber.consumers["video"].state is ConsumerState.FORWARDING
    assert_continuous(viewer.video_packets())
    assert_continuous(viewer.audio_packets())


@pytest.mark.timeout(30)
async def test_a_silent_publisher_is_gone_and_viewers_wait(make_harness: HarnessFactory) -> None:
    harness = await make_harness(media_timeout=0.8, tick=0.1)
    peer, publisher = await harness.live()
    viewer, subscriber = await harness.view()
    await wait_until(lambda: len(viewer.video_packets()) > 5)
    for sender in peer.pc.getSenders():
        sender.replaceTrack(None)  # the phone stops sending but keeps the connection
    # ``closed`` turns true at once; the event follows when aiortc has let go of the connection.
    gone = PublisherGone("room", publisher.id, GoneReason.MEDIA_TIMEOUT)
    await wait_until(lambda: gone in harness.events, within=5)
    assert publisher.closed
    room = harness.sfu.get_room("room")
    assert room is not None and room.state is RoomState.IDLE
    assert not subscriber.closed
    assert subscriber.consumers["video"].state is ConsumerState.IDLE


@pytest.mark.timeout(30)
async def test_sessions_report_their_end(harness: Harness) -> None:
    peer, publisher = await harness.live()
    viewer, subscriber = await harness.view()
    await wait_until(lambda: len(viewer.video_packets()) > 5)
    await viewer.close()  # the viewer closes DTLS
    left = SubscriberGone("room", subscriber.id, GoneReason.CONNECTION_CLOSED)
    await wait_until(lambda: left in harness.events, within=5)
    await peer.close()
    gone = PublisherGone("room", publisher.id, GoneReason.CONNECTION_CLOSED)
    await wait_until(lambda: gone in harness.events, within=5)
    assert subscriber.closed and publisher.closed
    await publisher.close()  # idempotent
    await subscriber.close()


def open_sockets() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return count


def peer_connections() -> int:
    gc.collect()
    return sum(isinstance(o, RTCPeerConnection) for o in gc.get_objects())


def own_threads() -> int:
    """Threads but the loop's executor workers (the test publisher encodes in them)."""
    return sum(not t.name.startswith("asyncio_") for t in threading.enumerate())


@pytest.mark.timeout(240)
async def test_viewer_churn_leaks_nothing(harness: Harness) -> None:
    _, publisher = await harness.live()
    warmup, _ = await harness.view()  # first-use allocations (certificates, codecs) happen here
    await wait_until(lambda: len(warmup.video_packets()) > 0)
    await warmup.close()
    harness.peers.remove(warmup)
    await wait_until(lambda: not harness.sfu.room("room").subscribers)
    await asyncio.sleep(0.3)
    tasks, sockets, pcs = len(asyncio.all_tasks()), open_sockets(), peer_connections()
    threads = own_threads()

    for _batch in range(5):
        viewers = await asyncio.gather(*(harness.view() for _ in range(10)))
        # Ten DTLS handshakes at once: on a loaded machine the last takes many seconds.
        await asyncio.gather(
            *(wait_until(lambda v=v: len(v.video_packets()) > 0, within=45) for v, _ in viewers)
        )
        for index, (viewer, subscriber) in enumerate(viewers):
            if index % 2:
                await subscriber.close()  # the API ends it (WHEP DELETE)
            await viewer.close()  # or the viewer goes away by itself
            harness.peers.remove(viewer)
        del viewers, viewer, subscriber  # the loop variables would keep the last pair alive
    room = harness.sfu.room("room")
    await wait_until(lambda: not room.subscribers, within=30)
    video = publisher.producers["video"]
    await wait_until(lambda: video.consumers == ())

    def counts() -> tuple[int, int, int, int]:
        return (
            peer_connections(),
            open_sockets(),
            len(asyncio.all_tasks()),
            own_threads(),
        )

    baseline = (pcs, sockets, tasks, threads)
    # aiortc finishes closing in background tasks: give them a moment, then compare.
    with contextlib.suppress(TimeoutError):
        await wait_until(lambda: all(n <= b for n, b in zip(counts(), baseline, strict=True)), 5)
    final = counts()
    assert all(n <= b for n, b in zip(final, baseline, strict=True)), (
        f"(peer connections, sockets, tasks, threads) {final} > {baseline}: "
        f"{[t.name for t in threading.enumerate()]}"
    )
    assert sum(isinstance(e, SubscriberGone) for e in harness.events) == 51
