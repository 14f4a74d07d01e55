"""Cascade: an edge SFU pulls a room from the origin SFU and serves its own viewers."""

from __future__ import annotations

import pytest

from peers.webrtc import wait_until
from sfu import GoneReason, MediaStarted, PublisherGone, Sfu, SfuError, SubscriberGone
from sfu.keyframe import h264_is_keyframe
from tests.sfu.conftest import Harness, HarnessFactory
from tests.sfu.test_lifecycle import assert_continuous

pytestmark = pytest.mark.timeout(60)


def via(origin: Sfu, room: str = "room"):  # type: ignore[no-untyped-def]
    """What the HTTP layer does for a pull: post the offer to the origin, return its answer."""

    async def post_offer(offer: str) -> str:
        _, answer = await origin.subscribe(room, offer)
        return answer

    return post_offer


async def test_an_edge_serves_the_origins_show(make_harness: HarnessFactory) -> None:
    origin, edge = await make_harness(), await make_harness()
    await origin.live()
    await edge.sfu.pull("room", via(origin.sfu))
    await edge.sfu.pull("room", via(origin.sfu))  # already fed: no second upstream
    origin_room = origin.sfu.get_room("room")
    assert origin_room is not None and len(origin_room.subscribers) == 1
    assert edge.sfu.pulled("room")
    viewers = [await edge.view() for _ in range(2)]
    for peer, _ in viewers:
        await wait_until(lambda p=peer: len(p.video_packets()) > 30 and len(p.audio_packets()) > 30)
        assert h264_is_keyframe(peer.video_packets()[0].payload)
        assert_continuous(peer.video_packets())
    # The edge's room reports its viewers, never a publisher of its own (the origin's is).
    assert not any(isinstance(e, MediaStarted | PublisherGone) for e in edge.events)


async def test_the_edge_follows_a_new_publisher_at_the_origin(
    make_harness: HarnessFactory,
) -> None:
    origin, edge = await make_harness(), await make_harness()
    first_peer, _ = await origin.live()
    await edge.sfu.pull("room", via(origin.sfu))
    viewer, _ = await edge.view()
    await wait_until(lambda: len(viewer.video_packets()) > 20)
    await origin.live()
    await first_peer.close()
    count = len(viewer.video_packets())
    await wait_until(lambda: len(viewer.video_packets()) > count + 40)
    assert len({p.ssrc for p in viewer.video_packets()}) == 1
    assert_continuous(viewer.video_packets())


async def test_the_show_ending_at_the_origin_closes_the_edges_room(
    make_harness: HarnessFactory,
) -> None:
    origin, edge = await make_harness(), await make_harness()
    await origin.live()
    await edge.sfu.pull("room", via(origin.sfu))
    viewer, session = await edge.view()
    await wait_until(lambda: len(viewer.video_packets()) > 5)
    await origin.sfu.close_room("room")
    await wait_until(lambda: edge.sfu.get_room("room") is None, within=15)
    assert not edge.sfu.pulled("room")
    assert SubscriberGone("room", session.id, GoneReason.CLOSED) in edge.events


async def test_a_refused_pull_leaves_nothing(harness: Harness) -> None:
    origin = Sfu()

    with pytest.raises(SfuError):
        await harness.sfu.pull("room", via(origin))
    assert harness.sfu.get_room("room") is None and not harness.sfu.pulled("room")
    await origin.close()


async def test_an_edge_with_workers_relays_the_pulled_show(make_harness: HarnessFactory) -> None:
    origin, edge = await make_harness(), await make_harness()
    await edge.sfu.start_workers(1)
    await origin.live()
    await edge.sfu.pull("room", via(origin.sfu))
    viewer, session = await edge.view()
    assert type(session).__name__ == "RemoteSubscriber"
    await wait_until(lambda: len(viewer.video_packets()) > 30)
    assert h264_is_keyframe(viewer.video_packets()[0].payload)
