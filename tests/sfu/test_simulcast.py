"""Simulcast in: RIDs offered and answered, layers routed by SSRC, a viewer moved between layers."""

from __future__ import annotations

import itertools
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from types import SimpleNamespace
from typing import Any

import pytest
from aiortc import RTCRtpCodecCapability, RTCRtpCodecParameters
from aiortc.codecs.h264 import H264Encoder
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpSendParameters
from aiortc.sdp import SessionDescription
from pylibsrtp import Policy

from peers.webrtc import PublisherPeer
from sfu.consumer import PADDING_SIZE, Consumer, ConsumerState
from sfu.egress import Egress
from sfu.ingest import Ingest
from sfu.keyframe import h264_is_keyframe
from sfu.offer import parse_offer
from sfu.producer import Producer
from sfu.relay import RelaySource
from sfu.rtp import (
    ABS_SEND_TIME_URI,
    HEADER,
    MID_URI,
    abs_send_time,
    find_extension_bytes,
    header_length,
)
from sfu.simulcast import (
    MAX_SOURCES,
    REPAIRED_RID_URI,
    RID_URI,
    Layers,
    answer_simulcast,
    offered_rids,
)

from .conftest import Harness
from .test_consumer import Viewer, session
from .test_rtp import encoded_payloads

pytestmark = pytest.mark.timeout(30)

RID_ID, RRID_ID = 10, 11
RID_EXTMAPS = (f"a=extmap:{RID_ID} {RID_URI}", f"a=extmap:{RRID_ID} {REPAIRED_RID_URI}")
CHROME_LAYERS = ("a=rid:q send", "a=rid:h send", "a=rid:f send", "a=simulcast:send q;h;f")
H264 = RTCRtpCodecCapability(
    mimeType="video/H264", clockRate=90000, parameters={"packetization-mode": "1"}
)
MEDIA_PT, RTX_PT = 96, 97
SIZES = {"q": (320, 180), "h": (640, 360), "f": (1280, 720)}
FRAME = 1 / 16  # seconds between frames: exact in binary, so the clock maths is exact too
TICKS = 5625  # FRAME at 90 kHz


# --- The offer: which layers a publisher sends -------------------------------------------


def video_section(*lines: str) -> str:
    """A video m-section as Chrome writes it, with ``lines`` after its extensions."""
    return "\r\n".join(
        (
            "m=video 9 UDP/TLS/RTP/SAVPF 96 97",
            "c=IN IP4 0.0.0.0",
            "a=mid:0",
            "a=sendonly",
            "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid",
            *RID_EXTMAPS,
            "a=rtpmap:96 H264/90000",
            "a=rtpmap:97 rtx/90000",
            "a=fmtp:97 apt=96",
            *lines,
            "",
        )
    )


@pytest.mark.parametrize(
    ("lines", "rids"),
    [
        pytest.param(CHROME_LAYERS, ("q", "h", "f"), id="chrome"),
        pytest.param(
            ("a=rid:q send", "a=rid:h send", "a=rid:f send", "a=simulcast:send q;~h;f"),
            ("q", "h", "f"),
            id="paused-layer-received-all-the-same",
        ),
        pytest.param(
            ("a=rid:q send", "a=rid:h send", "a=rid:f send", "a=simulcast:send f,h;q"),
            ("f", "q"),
            id="alternatives-keep-their-first",
        ),
        pytest.param(
            (
                "a=rid:f send max-width=1280;max-height=720",
                "a=rid:q send max-width=320",
                "a=simulcast:send f;q",
            ),
            ("f", "q"),
            id="restrictions-after-the-direction",
        ),
        pytest.param(
            ("a=rid:q send", "a=rid:h send", "a=simulcast:send q;h;f"),
            ("q", "h"),
            id="undeclared-rid-dropped",
        ),
        pytest.param(
            ("a=rid:q send", "a=rid:h recv", "a=simulcast:send q;h"),
            (),
            id="rid-declared-recv-is-not-sent",
        ),
        pytest.param(
            ("a=rid:q.1 send", "a=rid:h send", "a=simulcast:send q.1;h"),
            (),
            id="rid-with-bad-characters-dropped",
        ),
        pytest.param(("a=rid:q send", "a=simulcast:send q"), (), id="one-layer-is-not-simulcast"),
        pytest.param(
            ("a=rid:q send", "a=rid:q send", "a=rid:h send", "a=simulcast:send q;q;h"),
            ("q", "h"),
            id="repeated-rid-once",
        ),
        pytest.param(
            (
                "a=rid:a send",
                "a=rid:b send",
                "a=rid:c send",
                "a=rid:d send",
                "a=simulcast:send a;b;c;d",
            ),
            ("a", "b", "c"),
            id="four-layers-keep-the-first-three",
        ),
        pytest.param(
            ("a=rid:q send", "a=rid:h send", "a=rid:f send", "a=simulcast:recv q;h;f"),
            (),
            id="recv-simulcast-is-not-sent",
        ),
        pytest.param(CHROME_LAYERS[:3], (), id="rids-without-simulcast-line"),
    ],
)
def test_offered_rids(lines: tuple[str, ...], rids: tuple[str, ...]) -> None:
    assert offered_rids(video_section(*lines)) == rids


async def aiortc_offer() -> str:
    peer = PublisherPeer()
    try:
        return await peer.offer()
    finally:
        await peer.close()


def splice(sdp: str, kind: str, lines: Sequence[str]) -> str:
    """``lines`` added to the ``kind`` m-section of ``sdp``, before its ``a=mid``."""
    head, *sections = sdp.split("\r\nm=")
    spliced = [
        s.replace("\r\na=mid:", "".join(f"\r\n{x}" for x in lines) + "\r\na=mid:", 1)
        if s.startswith(kind)
        else s
        for s in sections
    ]
    return "\r\nm=".join([head, *spliced])


async def test_parse_offer_reads_the_layers_and_extension_ids() -> None:
    sdp = splice(await aiortc_offer(), "video", (*RID_EXTMAPS, *CHROME_LAYERS))
    video, audio = parse_offer(sdp).media
    assert video.kind == "video" and video.rids == ("q", "h", "f")
    assert video.extension_ids[RID_URI] == RID_ID
    assert video.extension_ids[REPAIRED_RID_URI] == RRID_ID
    assert video.extension_ids[MID_URI] == 1  # aiortc's own, kept
    assert audio.kind == "audio" and audio.rids == ()


async def test_an_offer_without_the_rid_extension_or_in_audio_has_no_layers() -> None:
    plain = await aiortc_offer()
    no_extension = parse_offer(splice(plain, "video", CHROME_LAYERS))
    assert [s.rids for s in no_extension.media] == [(), ()]
    assert RID_URI not in no_extension.media[0].extension_ids
    in_audio = parse_offer(splice(plain, "audio", (*RID_EXTMAPS, *CHROME_LAYERS)))
    assert [s.rids for s in in_audio.media] == [(), ()]
    assert [s.rids for s in parse_offer(plain).media] == [(), ()]


# --- The answer: the receiving side of simulcast -------------------------------------------

ANSWER = "\r\n".join(
    (
        "v=0",
        "o=- 1 1 IN IP4 0.0.0.0",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 1 10",
        "m=video 9 UDP/TLS/RTP/SAVPF 96",
        "c=IN IP4 0.0.0.0",
        "a=recvonly",
        "a=mid:1",
        "a=rtpmap:96 H264/90000",
        "a=setup:active",
        "m=video 9 UDP/TLS/RTP/SAVPF 96",
        "c=IN IP4 0.0.0.0",
        "a=recvonly",
        "a=mid:10",
        "a=rtpmap:96 H264/90000",
        "a=setup:active",
        "",
    )
)
EXPECTED_ANSWER_LINES = [
    f"a=extmap:7 {RID_URI}",
    f"a=extmap:13 {REPAIRED_RID_URI}",
    "a=rid:q recv",
    "a=rid:h recv",
    "a=rid:f recv",
    "a=simulcast:recv q;h;f",
]


@pytest.mark.parametrize(("mid", "index"), [("1", 1), ("10", 2)])
def test_answer_simulcast_adds_the_lines_to_its_own_section(mid: str, index: int) -> None:
    ids = {RID_URI: 7, REPAIRED_RID_URI: 13, MID_URI: 1}
    answer = answer_simulcast(ANSWER, mid, ("q", "h", "f"), ids)
    sections = answer.split("\r\nm=")
    original = ANSWER.split("\r\nm=")
    assert sections[:index] == original[:index]  # the other section ("1" is a prefix of "10")
    assert sections[index + 1 :] == original[index + 1 :]
    before = original[index]
    last = before.endswith("\r\n")
    added = "".join(f"\r\n{line}" for line in EXPECTED_ANSWER_LINES)
    assert sections[index] == before.removesuffix("\r\n") + added + ("\r\n" if last else "")
    assert len(SessionDescription.parse(answer).media) == 2


async def test_a_simulcast_offer_is_answered_with_its_layers(harness: Harness) -> None:
    peer = PublisherPeer()
    harness.peers.append(peer)
    offer = splice(await peer.offer(), "video", (*RID_EXTMAPS, *CHROME_LAYERS))
    publisher, answer = await harness.sfu.publish("room", offer)
    await peer.accept(answer)  # aiortc, at least, takes the answer
    video, audio = (f"{section}\r\n" for section in answer.split("\r\nm=")[1:])
    assert video.startswith("video") and audio.startswith("audio")
    for line in (*RID_EXTMAPS, "a=rid:q recv", "a=rid:h recv", "a=rid:f recv"):
        assert f"\r\n{line}\r\n" in video
        assert line not in audio
    assert "\r\na=simulcast:recv q;h;f\r\n" in video and "simulcast" not in audio
    layers = publisher.ingest.layers["video"]
    assert [p.rid for p in layers.producers] == ["q", "h", "f"]
    assert (layers.rid_id, layers.rrid_id) == (RID_ID, RRID_ID)
    assert [p.key for p in publisher.ingest.every()] == ["video:q", "video:h", "video:f", "audio"]
    assert publisher.producers["audio"].rid is None


# --- Layers: routing by SSRC, learnt from the RID extension ------------------------------


def rtp(
    ssrc: int,
    seq: int,
    ts: int,
    payload: bytes,
    *,
    pt: int = MEDIA_PT,
    marker: bool = False,
    extensions: dict[int, bytes] | None = None,
) -> bytes:
    """An RTP packet; ``extensions`` (id -> value) go in a one-byte (0xBEDE) block."""
    elements = b"".join(bytes([i << 4 | len(v) - 1]) + v for i, v in (extensions or {}).items())
    b0 = 0x90 if elements else 0x80
    header = HEADER.pack(b0, marker << 7 | pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc)
    if elements:
        elements += bytes(-len(elements) % 4)
        header += struct.pack("!HH", 0xBEDE, len(elements) // 4) + elements
    return header + payload


def rtx(ssrc: int, seq: int, original: int, payload: bytes, rrid: bytes | None = None) -> bytes:
    extensions = {RRID_ID: rrid} if rrid else None
    return rtp(ssrc, seq, 0, original.to_bytes(2) + payload, pt=RTX_PT, extensions=extensions)


def delta(tag: str, index: int, part: int = 0) -> bytes:
    """A non-IDR slice (NAL type 1) naming its layer and frame."""
    return bytes([0x41, 0x9A]) + f"{tag}:{index}:{part}".encode()


@cache
def keyframe(width: int, height: int) -> tuple[bytes, ...]:
    """A real H.264 IDR picture's RTP payloads (the first has the SPS: the size)."""
    return tuple(encoded_payloads(H264Encoder(), width, height))


def layer(rid: str | None, plis: list[int] | None = None) -> Producer:
    producer = Producer(
        kind="video",
        codec=H264,
        payload_type=MEDIA_PT,
        audio_level_id=0,
        request_pli=(plis.append if plis is not None else lambda ssrc: None),
        on_first_packet=lambda producer: None,
        keyframe_interval=0.0,
        rid=rid,
    )
    producer.rtx_payload_type = RTX_PT
    return producer


def three_layers() -> tuple[Layers, Producer, Producer, Producer]:
    q, h, f = layer("q"), layer("h"), layer("f")
    return Layers([q, h, f], RID_ID, RRID_ID), q, h, f


def test_layers_learn_each_ssrc_from_its_rid_then_route_by_ssrc() -> None:
    layers, q, h, f = three_layers()
    layers.receive(rtp(0x2222, 1, 0, delta("h", 0), extensions={RID_ID: b"h"}))
    assert (q.packets, h.packets, f.packets) == (0, 1, 0) and h.ssrc == 0x2222
    layers.receive(rtp(0x2222, 2, 0, delta("h", 0, 1)))  # no RID any more: the SSRC says it
    # The MID first, then the RID, as Chrome writes them.
    layers.receive(rtp(0x1111, 7, 0, delta("q", 0), extensions={1: b"0", RID_ID: b"q"}))
    layers.receive(rtp(0x1111, 8, 0, delta("q", 0, 1)))
    layers.receive(rtp(0x1111, 9, 0, delta("q", 0, 2)))
    assert (q.packets, h.packets, f.packets) == (3, 2, 0)
    assert (q.ssrc, h.ssrc, f.ssrc) == (0x1111, 0x2222, None)


def test_layers_drop_packets_without_a_known_rid() -> None:
    layers, q, h, f = three_layers()
    layers.receive(rtp(0x3333, 1, 0, delta("x", 0), extensions={RID_ID: b"x"}))
    layers.receive(rtp(0x3333, 2, 0, delta("x", 1)))  # its SSRC was not learnt either
    layers.receive(rtp(0x4444, 1, 0, delta("-", 0)))  # no RID at all
    layers.receive(rtp(0x5555, 1, 0, delta("h", 0), extensions={RID_ID + 2: b"h"}))  # other id
    layers.receive(rtp(0x5555, 2, 0, delta("h", 1)))
    assert (q.packets, h.packets, f.packets) == (0, 0, 0)
    assert layers.media_ssrc(0x3333) is None and layers.media_ssrc(0x4444) is None


def test_rtx_is_routed_by_the_repaired_rid() -> None:
    layers, q, h, f = three_layers()
    layers.receive(rtp(0x2222, 100, 0, delta("h", 0), extensions={RID_ID: b"h"}))
    layers.receive(rtp(0x1111, 200, 0, delta("q", 0), extensions={RID_ID: b"q"}))
    layers.receive_rtx(rtx(0x2223, 1, 101, delta("h", 1), rrid=b"h"))
    layers.receive_rtx(rtx(0x2223, 2, 102, delta("h", 2)))  # learnt
    layers.receive_rtx(rtx(0x9999, 1, 201, delta("q", 1)))  # unknown RTX SSRC, no RRID
    layers.receive_rtx(rtx(0x1111, 1, 201, delta("q", 1)))  # a media SSRC is not an RTX one
    assert (q.retransmissions, h.retransmissions, f.retransmissions) == (0, 2, 0)
    assert (q.packets, h.packets) == (1, 1)  # RTX is not media
    assert layers.media_ssrc(0x2223) == 0x2222 and layers.media_ssrc(0x2222) == 0x2222
    assert layers.media_ssrc(0x1111) == 0x1111
    assert layers.media_ssrc(0x9999) is None
    assert layers.rtx_ssrc(h) == 0x2223 and layers.rtx_ssrc(q) is None


class Repairs:
    """A consumer that notes the sequence numbers of the repairs it is handed."""

    lane = None  # no lane: the producer's fan-out calls forward()

    def __init__(self) -> None:
        self.repaired: list[int] = []

    def forward(self, entry: tuple[Any, ...]) -> None:
        pass

    def repair(self, entry: tuple[Any, ...]) -> None:
        self.repaired.append(entry[0])


def test_a_retransmission_of_a_packet_that_arrived_is_not_forwarded() -> None:
    layers, q, _, _ = three_layers()
    viewer = Repairs()
    q.add(viewer)  # type: ignore[arg-type]
    layers.receive(rtp(0x1111, 300, 0, delta("q", 0), extensions={RID_ID: b"q"}))
    layers.receive(rtp(0x1111, 302, 0, delta("q", 2)))  # 301 lost on the way to the SFU
    # Chromium pads its bandwidth probes with RTX copies of packets it sent: 300 arrived.
    layers.receive_rtx(rtx(0x1112, 1, 300, delta("q", 0), rrid=b"q"))
    layers.receive_rtx(rtx(0x1112, 2, 301, delta("q", 1)))  # the lost one: a repair
    layers.receive_rtx(rtx(0x1112, 3, 301, delta("q", 1)))  # and once is enough
    assert viewer.repaired == [301]
    assert (q.retransmissions, q.duplicates) == (1, 2)


def test_seeded_ssrcs_are_routed_without_rids() -> None:
    layers, q, h, f = three_layers()
    layers.seed(q, 0x1111, 0x1112)
    layers.seed(f, 0x3333, None)
    layers.seed(h, None, None)
    layers.receive(rtp(0x1111, 1, 0, delta("q", 0)))
    layers.receive(rtp(0x3333, 1, 0, delta("f", 0)))
    layers.receive(rtp(0x2222, 1, 0, delta("h", 0)))  # not seeded, no RID: dropped
    layers.receive_rtx(rtx(0x1112, 1, 2, delta("q", 1)))
    assert (q.packets, h.packets, f.packets) == (1, 0, 1)
    assert q.retransmissions == 1
    assert layers.media_ssrc(0x1112) == 0x1111


def send_keyframe(layers: Layers, rid: str, ssrc: int) -> None:
    for seq, payload in enumerate(keyframe(*SIZES[rid])):
        layers.receive(rtp(ssrc, seq, 0, payload, extensions={RID_ID: rid.encode()}))


def test_best_is_the_largest_picture_and_the_last_offered_until_sizes_are_known() -> None:
    layers, q, h, f = three_layers()
    assert layers.best() is f
    send_keyframe(layers, "q", 0x1111)
    send_keyframe(layers, "h", 0x2222)
    assert (h.width, h.height) == SIZES["h"]
    assert layers.best() is h  # f sent nothing yet
    send_keyframe(layers, "f", 0x3333)
    assert layers.best() is f
    reordered = Layers([f, q, h], RID_ID, RRID_ID)  # the offer's order does not matter now
    assert reordered.best() is f
    unsized = Layers([layer("f"), layer("q")], RID_ID, RRID_ID)
    assert unsized.best().rid == "q"


def test_tap_hands_only_the_best_layers_packets_to_the_listener() -> None:
    layers, _, _, f = three_layers()
    for rid, ssrc in (("q", 0x1111), ("h", 0x2222), ("f", 0x3333)):
        send_keyframe(layers, rid, ssrc)
    tapped: list[tuple[str, bytes]] = []
    layers.tap(lambda kind, packet: tapped.append((kind, packet)))
    sent: dict[tuple[str, int], bytes] = {}
    for index in range(1, 4):
        for rid, ssrc in (("f", 0x3333), ("q", 0x1111), ("h", 0x2222)):
            packet = rtp(ssrc, 10 + index, index * TICKS, delta(rid, index))
            layers.receive(packet)
            sent[rid, index] = packet
    assert tapped == [("video", sent["f", index]) for index in range(1, 4)]
    layers.tap(None)
    layers.receive(rtp(0x3333, 20, 4 * TICKS, delta("f", 4)))
    assert len(tapped) == 3
    assert f.packets == len(keyframe(*SIZES["f"])) + 4  # tapped or not, forwarded


def test_ingest_and_a_relay_rebuild_the_layers_with_their_ssrcs() -> None:
    layers, q, h, f = three_layers()
    ingest = Ingest()
    ingest.add_layers(layers)
    for rid, ssrc in (("q", 0x1111), ("h", 0x2222), ("f", 0x3333)):
        ingest.rtp(rtp(ssrc, 1, 0, delta(rid, 0), extensions={RID_ID: rid.encode()}))
        ingest.rtp(rtx(ssrc + 1, 1, 2, delta(rid, 1), rrid=rid.encode()))
    assert (q.retransmissions, h.retransmissions, f.retransmissions) == (1, 1, 1)
    assert ingest.main("video") is f and ingest.find("video:h") is h
    assert ingest.every() == [q, h, f]
    specs = ingest.tracks()
    assert [(s.rid, s.ssrc, s.rtx_ssrc, s.rid_id, s.rrid_id) for s in specs] == [
        ("q", 0x1111, 0x1112, RID_ID, RRID_ID),
        ("h", 0x2222, 0x2223, RID_ID, RRID_ID),
        ("f", 0x3333, 0x3334, RID_ID, RRID_ID),
    ]
    asked: list[str] = []
    relay = RelaySource(
        specs,
        keyframe_interval=0.0,
        request_keyframe=asked.append,
        on_closed=lambda source, reason: None,
        on_media_started=lambda source: None,
    )
    relayed = {p.rid: p for p in relay.ingest.every()}
    assert list(relayed) == ["q", "h", "f"]
    # The origin learnt the SSRCs from the first packets; the relay gets the later ones only.
    relay.ingest.rtp(rtp(0x2222, 2, TICKS, delta("h", 1)))
    relay.ingest.rtp(rtp(0x2223, 2, 0, (3).to_bytes(2) + delta("h", 2), pt=RTX_PT))
    relay.ingest.rtp(rtp(0x1111, 2, TICKS, delta("q", 1)))
    counts = {rid: (p.packets, p.retransmissions) for rid, p in relayed.items()}
    assert counts == {"q": (1, 0), "h": (1, 1), "f": (0, 0)}
    assert relayed["h"].request_keyframe()
    assert asked == ["video:h"]
    assert relay.ingest.main("video") is relayed["f"]


# --- A viewer's consumer switching layers -------------------------------------------------


class Clock:
    """``time.monotonic`` of the producers and consumers, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    fake = SimpleNamespace(monotonic=clock.monotonic)
    monkeypatch.setattr("sfu.producer.time", fake)
    monkeypatch.setattr("sfu.consumer.time", fake)
    return clock


@dataclass
class Source:
    """One layer as the publisher sends it: its SSRC, sequence and timestamp bases."""

    producer: Producer
    ssrc: int
    seq: int
    ts: int

    def frame(self, index: int, *, key: bool = False) -> list[bytes]:
        """Send frame ``index`` (a keyframe or two delta packets); its payloads."""
        rid = self.producer.rid or ""
        payloads = list(keyframe(*SIZES[rid])) if key else [delta(rid, index, p) for p in (0, 1)]
        for n, payload in enumerate(payloads):
            last = n == len(payloads) - 1
            self.producer.receive(
                rtp(self.ssrc, self.seq, self.ts + index * TICKS, payload, marker=last)
            )
            self.seq = (self.seq + 1) & 0xFFFF
        return payloads


@dataclass
class Out:
    """A packet as the viewer decrypted it."""

    ssrc: int
    seq: int
    ts: int
    payload: bytes


def received(viewer: Viewer) -> list[Out]:
    packets = []
    for data in viewer.packets:
        _, _, seq, ts, ssrc = HEADER.unpack_from(data)
        packets.append(Out(ssrc, seq, ts, data[header_length(data) :]))
    return packets


def assert_consecutive(packets: list[Out]) -> None:
    for a, b in itertools.pairwise(packets):
        assert b.seq == (a.seq + 1) & 0xFFFF, (a.seq, b.seq)


def frame_steps(packets: list[Out]) -> list[int]:
    """The timestamp steps between the viewer's frames (modulo 2^32: negative if backwards)."""
    stamps = [p.ts for p in packets]
    distinct = [ts for ts, _ in itertools.groupby(stamps)]
    steps = [(b - a) & 0xFFFFFFFF for a, b in itertools.pairwise(distinct)]
    return [s - (1 << 32) if s >= 1 << 31 else s for s in steps]


def sources(plis: list[int]) -> tuple[Source, Source]:
    # Sequence numbers and timestamps of h wrap during the test; q's sequence numbers too.
    q = Source(layer("q", plis), ssrc=0x1111, seq=0xFFFA, ts=123_456)
    h = Source(layer("h", plis), ssrc=0x2222, seq=40_000, ts=0xFFFF_0000)
    return q, h


@pytest.mark.parametrize("new_layer_first", [True, False])
def test_a_switch_happens_at_the_new_layers_keyframe_and_the_stream_stays_continuous(
    clock: Clock, new_layer_first: bool
) -> None:
    plis: list[int] = []
    q, h = sources(plis)
    viewer = Viewer(0xABCD, 102, "0")
    consumer = viewer.consumer
    consumer.bind(q.producer)
    expected: list[bytes] = []

    def frame(index: int, *, q_key: bool = False, h_key: bool = False) -> None:
        clock.now = 1000.0 + index * FRAME
        # One capture instant reaches the SFU on both layers, in either order.
        order = ((h, h_key), (q, q_key)) if new_layer_first else ((q, q_key), (h, h_key))
        sent = {source.producer.rid: source.frame(index, key=key) for source, key in order}
        expected.extend(sent["q" if consumer.producer is q.producer else "h"])

    frame(0, q_key=True, h_key=True)
    for index in range(1, 4):
        frame(index)
    assert consumer.state is ConsumerState.FORWARDING and consumer.producer is q.producer
    assert plis == []
    consumer.switch(h.producer)
    assert consumer.pending is h.producer and consumer.producer is q.producer
    assert plis == [h.ssrc]  # the new layer is asked for a keyframe
    for index in range(4, 6):
        frame(index)  # h's deltas are no use to the viewer: q goes on meanwhile
    assert consumer.producer is q.producer and consumer.switches == 0
    before = len(received(viewer))
    clock.now = 1000.0 + 6 * FRAME
    if new_layer_first:
        expected.extend(h.frame(6, key=True))
        q.frame(6)
    else:
        expected.extend(q.frame(6))
        expected.extend(h.frame(6, key=True))
    assert consumer.producer is h.producer and consumer.pending is None
    assert consumer.switches == 1 and consumer.state is ConsumerState.FORWARDING
    assert consumer not in q.producer.consumers and consumer in h.producer.consumers
    for index in range(7, 10):
        frame(index)

    packets = received(viewer)
    assert [p.payload for p in packets] == expected
    first_after = packets[before + (0 if new_layer_first else 2)]
    assert first_after.payload == keyframe(*SIZES["h"])[0]
    assert h264_is_keyframe(first_after.payload)
    assert {p.ssrc for p in packets} == {0xABCD}
    assert_consecutive(packets)
    # The viewer's clock runs on at the frame rate; when the old layer's packet of the same
    # instant went out first, the new layer's keyframe is one tick later, never the same.
    steps = frame_steps(packets)
    assert steps == ([TICKS] * 9 if new_layer_first else [TICKS] * 6 + [1] + [TICKS] * 3)


def test_a_pending_switch_can_be_called_off_or_lose_its_layer(clock: Clock) -> None:
    plis: list[int] = []
    q, h = sources(plis)
    viewer = Viewer(0xABCD, 102, "0")
    consumer = viewer.consumer
    consumer.bind(q.producer)
    q.frame(0, key=True)
    h.frame(0, key=True)
    consumer.switch(h.producer)
    consumer.switch(q.producer)  # back to the layer it is on: nothing pending any more
    assert consumer.pending is None
    clock.now += FRAME
    h.frame(1, key=True)
    assert consumer.producer is q.producer and consumer.switches == 0
    consumer.switch(h.producer)
    h.producer.close()
    assert consumer.pending is None and consumer.producer is q.producer
    q.frame(1)
    assert len(received(viewer)) == len(keyframe(*SIZES["q"])) + 2
    assert_consecutive(received(viewer))


def test_switching_to_none_pauses_and_a_layer_resumes_at_a_keyframe(clock: Clock) -> None:
    plis: list[int] = []
    q, h = sources(plis)
    viewer = Viewer(0xABCD, 102, "0")
    consumer = viewer.consumer
    consumer.bind(q.producer)
    expected: list[bytes] = []
    for index in range(3):
        clock.now = 1000.0 + index * FRAME
        expected.extend(q.frame(index, key=index == 0))
        h.frame(index, key=index == 0)
    consumer.switch(None)
    assert consumer.state is ConsumerState.IDLE and consumer.producer is None
    assert consumer not in q.producer.consumers
    paused_at = len(viewer.packets)
    for index in range(3, 6):
        clock.now = 1000.0 + index * FRAME
        q.frame(index, key=index == 4)
        h.frame(index, key=index == 4)
    assert len(viewer.packets) == paused_at  # nothing while paused, keyframes neither

    clock.now = 1000.0 + 5.5 * FRAME
    consumer.switch(h.producer)
    # The keyframe h cached (frame 4) at once, then nothing until a fresh one.
    expected.extend(keyframe(*SIZES["h"]))
    assert consumer.producer is h.producer and plis == [h.ssrc]
    assert consumer.state is ConsumerState.WAITING_KEYFRAME
    for index in range(6, 10):
        clock.now = 1000.0 + index * FRAME
        payloads = h.frame(index, key=index == 8)
        q.frame(index)
        if index >= 8:
            expected.extend(payloads)
    assert consumer.state is ConsumerState.FORWARDING

    packets = received(viewer)
    assert [p.payload for p in packets] == expected
    assert h264_is_keyframe(packets[paused_at].payload)
    assert_consecutive(packets)
    steps = frame_steps(packets)
    assert steps[:2] == [TICKS, TICKS] and all(step > 0 for step in steps)
    # From q's frame 2 to h's frame 8 the viewer's clock moved as the wall clock did.
    assert abs(sum(steps[2:4]) - 6 * TICKS) <= 2 and steps[4] == TICKS


def test_padding_probes_go_out_as_rtx_with_the_send_time(clock: Clock) -> None:
    packets: list[bytes] = []

    def sendto(data: memoryview, address: tuple[str, int]) -> None:
        packets.append(session(Policy.SSRC_ANY_INBOUND).unprotect(bytes(data)))

    sender: object = SimpleNamespace(_ssrc=0x0A0A, _rtx_ssrc=0x0B0B)
    consumer = Consumer(kind="video", codec=H264, sender=sender, egress=Egress())  # type: ignore[arg-type]
    tx = session(Policy.SSRC_ANY_OUTBOUND)
    consumer.route(
        SimpleNamespace(session=tx, context=tx._srtp[0], sendto=sendto, address=("127.0.0.1", 9))  # type: ignore[arg-type]
    )
    consumer.start(
        RTCRtpSendParameters(
            codecs=[
                RTCRtpCodecParameters(mimeType="video/H264", clockRate=90000, payloadType=102),
                RTCRtpCodecParameters(
                    mimeType="video/rtx", clockRate=90000, payloadType=103, parameters={"apt": 102}
                ),
            ],
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=4, uri=MID_URI),
                RTCRtpHeaderExtensionParameters(id=3, uri=ABS_SEND_TIME_URI),
            ],
            muxId="0",
        )
    )
    q, _ = sources([])
    consumer.bind(q.producer)
    q.frame(0, key=True)
    media = packets[0]
    assert find_extension_bytes(media, 3) == abs_send_time(1000.0).to_bytes(3)
    clock.now += 0.25
    assert consumer.send_padding(3) == 3 and consumer.padding_sent == 3
    probes = packets[-3:]
    for probe in probes:
        _, b1, _, ts, ssrc = HEADER.unpack_from(probe)
        assert ssrc == 0x0B0B and b1 & 0x7F == 103 and probe[0] & 0x20
        assert ts == HEADER.unpack_from(media)[3]
        assert len(probe) - header_length(probe) == PADDING_SIZE == probe[-1]
        assert find_extension_bytes(probe, 3) == abs_send_time(1000.25).to_bytes(3)
    seqs = [HEADER.unpack_from(p)[2] for p in probes]
    assert seqs == [(seqs[0] + i) & 0xFFFF for i in range(3)]
    assert consumer.packets_sent == len(keyframe(*SIZES["q"]))  # padding is not media
    consumer.switch(None)  # paused: probed all the same, to learn whether it may resume
    assert consumer.send_padding(1) == 1
    assert HEADER.unpack_from(packets[-1])[3] == HEADER.unpack_from(media)[3]
    assert HEADER.unpack_from(packets[-1])[2] == (seqs[-1] + 1) & 0xFFFF
    consumer.close()
    assert consumer.send_padding(1) == 0 and consumer.padding_sent == 4


def test_a_full_ssrc_table_keeps_each_layers_newest_source() -> None:
    """Past MAX_SOURCES, the SSRCs in use stay routed: their packets name no RID any more."""
    layers, q, h, _ = three_layers()
    for ssrc in range(MAX_SOURCES):
        rid = b"q" if ssrc % 2 else b"h"
        layers.receive(rtp(0x100 + ssrc, 1, 0, delta("x", ssrc), extensions={RID_ID: rid}))
    layers.receive(rtp(0x900, 1, 0, delta("f", 0), extensions={RID_ID: b"f"}))
    before = q.packets, h.packets
    layers.receive(rtp(0x100 + MAX_SOURCES - 1, 2, 0, delta("q", 1)))  # newest q, no RID
    layers.receive(rtp(0x100 + MAX_SOURCES - 2, 2, 0, delta("h", 1)))  # newest h, no RID
    layers.receive(rtp(0x100, 2, 0, delta("h", 2)))  # an old h source, forgotten: dropped
    assert (q.packets, h.packets) == (before[0] + 1, before[1] + 1)
