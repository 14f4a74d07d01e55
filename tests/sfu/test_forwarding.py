"""One publisher, several viewers: every packet arrives, with each viewer's own headers."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from peers.webrtc import Received, ViewerPeer, wait_until
from sfu import ConsumerState, MediaStarted
from sfu.aiortc_hooks import dtls_transports, tap_rtp
from sfu.keyframe import h264_is_keyframe
from sfu.rtp import header_length

from .conftest import Harness

pytestmark = pytest.mark.timeout(30)


def answer_ssrcs(viewer: ViewerPeer) -> set[int]:
    sdp = viewer.pc.remoteDescription.sdp
    return {
        int(line.split()[0][len("a=ssrc:") :])
        for line in sdp.splitlines()
        if line.startswith("a=ssrc:")
    }


def assert_contiguous(packets: list[Received]) -> None:
    seqs = [p.sequence_number for p in packets]
    for previous, current in itertools.pairwise(seqs):
        assert current == (previous + 1) & 0xFFFF, (previous, current)


def is_subsequence(needle: list[bytes], haystack: list[bytes]) -> bool:
    it = iter(haystack)
    return all(any(item == candidate for candidate in it) for item in needle)


async def test_each_viewer_gets_every_packet_with_its_own_headers(harness: Harness) -> None:
    _publisher_peer, publisher = await harness.live()
    assert harness.events[0] == MediaStarted("room", publisher.id)
    sent: list[bytes] = []
    for dtls in dtls_transports(publisher.pc):
        tap_rtp(dtls, sent.append)
    video_pt = publisher.producers["video"].payload_type

    viewers = [await harness.view() for _ in range(3)]
    for viewer, _ in viewers:
        await wait_until(
            lambda v=viewer: len(v.video_packets()) > 40 and len(v.audio_packets()) > 40
        )
    await asyncio.sleep(0.3)
    snapshot = list(sent)
    await asyncio.sleep(0.3)  # let the last forwarded packets land

    video_payloads = [d[header_length(d) :] for d in snapshot if (d[1] & 0x7F) == video_pt]
    for viewer, subscriber in viewers:
        video, audio = viewer.video_packets(), viewer.audio_packets()
        consumers = subscriber.consumers
        assert {p.ssrc for p in video} == {consumers["video"].ssrc}
        assert {p.ssrc for p in audio} == {consumers["audio"].ssrc}
        assert {p.ssrc for p in viewer.packets} <= answer_ssrcs(viewer)
        assert len({p.payload_type for p in video}) == 1
        assert len({p.payload_type for p in audio}) == 1
        assert_contiguous(video)
        assert_contiguous(audio)
        assert all(b.timestamp >= a.timestamp for a, b in itertools.pairwise(video))
        received = [p.payload for p in video]
        assert h264_is_keyframe(received[0])  # a viewer starts at a keyframe
        known = set(video_payloads)
        assert is_subsequence([r for r in received if r in known], video_payloads)
        # Every packet the publisher sent after the viewer started reached the viewer.
        tail = video_payloads[-20:]
        assert all(payload in received for payload in tail)
        assert consumers["video"].state is ConsumerState.FORWARDING
        assert consumers["video"].stats().packets_sent == len(video)


async def test_stats_describe_the_stream(harness: Harness) -> None:
    _, _publisher = await harness.live()
    viewer, subscriber = await harness.view()
    await wait_until(lambda: len(viewer.video_packets()) > 30)
    await asyncio.sleep(1.2)  # two ticks of the room
    room = harness.sfu.get_room("room")
    assert room is not None
    stats = room.stats()
    assert stats.state == "live" and stats.viewers == 1
    assert stats.publisher is not None
    video = next(t for t in stats.publisher.tracks if t.kind == "video")
    assert video.codec == "video/H264"
    assert (video.width, video.height) == (320, 240)
    assert 20 < (video.fps or 0) < 40
    assert video.bitrate_bps > 10_000
    assert video.packets_lost == 0
    consumer = subscriber.consumers["video"].stats()
    assert consumer.packets_sent > 30 and consumer.bytes_sent > 0


async def test_publisher_tap_sees_every_packet(harness: Harness) -> None:
    tapped: dict[str, int] = {}
    _, publisher = await harness.live()
    publisher.tap(lambda kind, packet: tapped.__setitem__(kind, tapped.get(kind, 0) + 1))
    viewer, _ = await harness.view()
    await wait_until(lambda: tapped.get("video", 0) > 30 and tapped.get("audio", 0) > 10)
    received = publisher.producers["video"].packets
    publisher.tap(None)
    frozen = dict(tapped)
    await wait_until(lambda: publisher.producers["video"].packets > received + 30)
    assert tapped == frozen
    assert len(viewer.video_packets()) > 0


def allowed_receive_buffer() -> int:
    with open("/proc/sys/net/core/rmem_max") as rmem_max:
        return min(int(rmem_max.read()), 4 * 1024 * 1024)


async def test_the_ingest_socket_gets_a_large_receive_buffer(harness: Harness) -> None:
    import socket

    from sfu.aiortc_hooks import nominated_pairs, raw_socket

    _, publisher = await harness.live()
    dtls = dtls_transports(publisher.pc)[0]
    sock = raw_socket(nominated_pairs(dtls)[1].protocol.transport)
    allowed = allowed_receive_buffer()
    # Linux reports twice the requested size (it counts its bookkeeping too).
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) >= 2 * allowed
