"""Offers are checked before any peer connection exists, and codecs are chosen on purpose."""

from __future__ import annotations

import pytest
from aiortc import RTCRtpSender

from peers.webrtc import PublisherPeer, ViewerPeer, wait_until
from sfu import NotLiveError, SdpError, UnsupportedMediaError
from sfu.keyframe import vp8_is_keyframe

from .conftest import Harness

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def no_peer_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden() -> None:
        raise AssertionError("a peer connection was created for a rejected offer")

    monkeypatch.setattr("sfu.publisher.new_peer_connection", forbidden)
    monkeypatch.setattr("sfu.subscriber.new_peer_connection", forbidden)


async def publisher_offer(**kwargs: object) -> str:
    peer = PublisherPeer(**kwargs)  # type: ignore[arg-type]
    try:
        return await peer.offer()
    finally:
        await peer.close()


@pytest.mark.parametrize(
    "sdp",
    [
        "",
        "hello",
        "v=0\r\n",  # no media
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF x\r\n",
        "x" * 70_000,
    ],
)
async def test_malformed_offers_are_refused(
    harness: Harness, no_peer_connections: None, sdp: str
) -> None:
    with pytest.raises(SdpError):
        await harness.sfu.publish("room", sdp)


async def test_offer_without_fingerprint_is_malformed(
    harness: Harness, no_peer_connections: None
) -> None:
    sdp = await publisher_offer()
    lines = sdp.split("\r\n")
    stripped = "\r\n".join(x for x in lines if not x.startswith("a=fingerprint"))
    with pytest.raises(SdpError):
        await harness.sfu.publish("room", stripped)


async def test_offer_with_no_receivable_codec_is_unsupported(
    harness: Harness, no_peer_connections: None
) -> None:
    sdp = await publisher_offer(audio=False)
    sdp = sdp.replace("VP8/90000", "VP9/90000").replace("H264/90000", "H265/90000")
    with pytest.raises(UnsupportedMediaError):
        await harness.sfu.publish("room", sdp)


async def test_watching_an_empty_room_is_not_live(
    harness: Harness, no_peer_connections: None
) -> None:
    viewer = ViewerPeer()
    harness.peers.append(viewer)
    with pytest.raises(NotLiveError):
        await harness.sfu.subscribe("room", await viewer.offer())


async def test_h264_is_preferred_over_vp8(harness: Harness) -> None:
    sdp = await publisher_offer()
    assert sdp.index("VP8/90000") < sdp.index("H264/90000")  # aiortc offers VP8 first
    _, answer = await harness.sfu.publish("room", sdp)
    video = answer[answer.index("m=video") :]
    assert "H264/90000" in video and "VP8/90000" not in video
    assert "profile-level-id=42e01f" in video


async def test_a_vp8_publisher_works(harness: Harness) -> None:
    peer = PublisherPeer()
    harness.peers.append(peer)
    vp8 = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.name in ("VP8", "rtx")]
    for transceiver in peer.pc.getTransceivers():
        if transceiver.kind == "video":
            transceiver.setCodecPreferences(vp8)
    session, answer = await harness.sfu.publish("room", await peer.offer())
    await peer.accept(answer)
    await wait_until(lambda: session.producers["video"].keyframes > 0)
    assert session.producers["video"].codec.mimeType == "video/VP8"
    viewer, _ = await harness.view()
    await wait_until(lambda: len(viewer.video_packets()) > 10)
    assert vp8_is_keyframe(viewer.video_packets()[0].payload)
    stats = session.producers["video"].stats()
    assert (stats.width, stats.height) == (320, 240)


async def test_a_high_profile_h264_publisher_is_forwarded(harness: Harness) -> None:
    """OBS sends H.264 High profile by default: forwarded as it is, never decoded."""
    peer = PublisherPeer()
    harness.peers.append(peer)
    high = [
        c
        for c in RTCRtpSender.getCapabilities("video").codecs
        if c.parameters.get("profile-level-id") == "640c1f" or c.name == "rtx"
    ]
    assert any(c.name == "H264" for c in high), "the SFU lets aiortc negotiate High profile"
    for transceiver in peer.pc.getTransceivers():
        if transceiver.kind == "video":
            transceiver.setCodecPreferences(high)
    offer = await peer.offer()
    assert "profile-level-id=42" not in offer
    session, answer = await harness.sfu.publish("room", offer)
    await peer.accept(answer)
    assert "profile-level-id=640c1f" in answer[answer.index("m=video") :]
    await wait_until(lambda: session.producers["video"].keyframes > 0)
    viewer, _ = await harness.view()
    await wait_until(lambda: len(viewer.video_packets()) > 10)


async def test_a_viewer_that_cannot_decode_the_codec_is_unsupported(harness: Harness) -> None:
    await harness.live()  # H.264
    viewer = ViewerPeer(want_audio=False)
    harness.peers.append(viewer)
    vp8 = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.name == "VP8"]
    viewer.pc.getTransceivers()[0].setCodecPreferences(vp8)
    with pytest.raises(UnsupportedMediaError):
        await harness.sfu.subscribe("room", await viewer.offer())
