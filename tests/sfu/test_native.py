"""The native fan-out (sfu/_fanout.c) puts the same bytes on the wire as the Python path.

Each test feeds one recorded packet sequence to producers whose consumers come in pairs: one
on the Python lane, one on the native lane, with the same SRTP key, SSRCs and random draws,
each sending on its own loopback socket. What the two receiving sockets read must be equal,
datagram for datagram, and decrypt with the viewer's key.
"""

from __future__ import annotations

import gc
import os
import random
import socket
import struct
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest
from aiortc import RTCRtpCodecCapability, RTCRtpCodecParameters
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpSendParameters
from pylibsrtp import Policy

from sfu import native
from sfu.consumer import Consumer
from sfu.producer import Producer
from sfu.rtp import (
    ABS_SEND_TIME_URI,
    AUDIO_LEVEL_URI,
    HEADER,
    MID_URI,
    find_extension,
    header_length,
)

from .test_consumer import session
from .test_rtp import encoded_payloads
from .test_simulcast import Clock, delta, rtp

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(not native.configure("auto"), reason="sfu._fanout is not built"),
]

H264 = RTCRtpCodecCapability(mimeType="video/H264", clockRate=90000)
VP8 = RTCRtpCodecCapability(mimeType="video/VP8", clockRate=90000)
OPUS = RTCRtpCodecCapability(mimeType="audio/opus", clockRate=48000, channels=2)
LEVEL_ID = 1  # the publisher's audio-level extension id
TICKS = 3000


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    """One fake clock for both paths: retiming and abs-send-time are then the same."""
    clock = Clock()
    fake = SimpleNamespace(monotonic=clock.monotonic)
    monkeypatch.setattr("sfu.producer.time", fake)
    monkeypatch.setattr("sfu.consumer.time", fake)
    yield clock
    native.configure("auto")


@dataclass
class Wire:
    """A consumer sending on a real loopback socket, and the socket that receives it."""

    consumer: Consumer
    out: socket.socket
    into: socket.socket
    datagrams: list[bytes] = field(default_factory=list)

    def read(self) -> list[bytes]:
        """Everything sent so far (the kernel may still be delivering: wait for all of it)."""
        consumer = self.consumer
        expected = consumer.packets_sent + consumer.retransmitted + consumer.padding_sent
        while len(self.datagrams) < expected:
            self.datagrams.append(self.into.recv(2048))
        return self.datagrams

    def close(self) -> None:
        self.consumer.close()
        self.out.close()
        self.into.close()


def wire(
    kind: str,
    codec: RTCRtpCodecCapability,
    *,
    on_native: bool,
    seed: int,
    out: socket.socket | None = None,
    refused: bool = False,
) -> Wire:
    """A consumer on ``out`` (a socket of its own by default); ``refused``: it sends to port
    0, which the kernel refuses (EINVAL)."""
    native.configure("auto" if on_native else "off")
    into = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    into.bind(("127.0.0.1", 0))
    into.settimeout(10)
    if out is None:
        out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        out.bind(("127.0.0.1", 0))
        out.setblocking(False)
    random.seed(seed)  # the consumer's first sequence number and timestamp: the same for both
    sender = SimpleNamespace(_ssrc=0x5EED0000 + seed, _rtx_ssrc=0x5EED1000 + seed)
    consumer = Consumer(kind=kind, codec=codec, sender=sender, egress=SimpleNamespace(attach=id))  # type: ignore[arg-type]
    tx = session(Policy.SSRC_ANY_OUTBOUND)
    consumer.route(
        SimpleNamespace(  # type: ignore[arg-type]
            session=tx,
            context=tx._srtp[0],
            socket=out,
            sendto=out.sendto,
            address=("127.0.0.1", 0) if refused else into.getsockname(),
        )
    )
    video = kind == "video"
    codecs = [
        RTCRtpCodecParameters(
            mimeType=codec.mimeType, clockRate=codec.clockRate, payloadType=102 if video else 111
        )
    ]
    if video:
        codecs.append(
            RTCRtpCodecParameters(
                mimeType="video/rtx", clockRate=90000, payloadType=103, parameters={"apt": 102}
            )
        )
    extensions = [RTCRtpHeaderExtensionParameters(id=3, uri=MID_URI)]
    extensions.append(
        RTCRtpHeaderExtensionParameters(id=4, uri=ABS_SEND_TIME_URI if video else AUDIO_LEVEL_URI)
    )
    consumer.start(RTCRtpSendParameters(codecs=codecs, headerExtensions=extensions, muxId="0"))
    assert (type(consumer.lane).__module__ == "sfu.native") is on_native
    return Wire(consumer, out, into)


@pytest.fixture
def pairs() -> Iterator[Callable[[str, RTCRtpCodecCapability], tuple[Wire, Wire]]]:
    made: list[Wire] = []

    def make(kind: str, codec: RTCRtpCodecCapability) -> tuple[Wire, Wire]:
        seed = len(made)
        pair = (
            wire(kind, codec, on_native=False, seed=seed),
            wire(kind, codec, on_native=True, seed=seed),
        )
        native.configure("auto")
        made.extend(pair)
        return pair

    yield make
    for each in made:
        each.close()


def producer(kind: str, codec: RTCRtpCodecCapability, plis: list[int] | None = None) -> Producer:
    return Producer(
        kind=kind,
        codec=codec,
        payload_type=96,
        audio_level_id=LEVEL_ID if kind == "audio" else 0,
        request_pli=(plis.append if plis is not None else lambda ssrc: None),
        on_first_packet=lambda producer: None,
        keyframe_interval=0.0,
    )


@dataclass
class Publisher:
    """A publisher's stream into one producer: its SSRC, sequence and timestamp."""

    producer: Producer
    ssrc: int
    seq: int
    ts: int

    def send(self, payloads: list[bytes], **extensions: bytes) -> None:
        ids = {LEVEL_ID: extensions["level"]} if "level" in extensions else None
        for n, payload in enumerate(payloads):
            marker = n == len(payloads) - 1
            self.producer.receive(
                rtp(self.ssrc, self.seq, self.ts, payload, marker=marker, extensions=ids)
            )
            self.seq = (self.seq + 1) & 0xFFFF
        self.ts = (self.ts + TICKS) & 0xFFFFFFFF


def assert_same_wire(python: Wire, native_wire: Wire) -> list[bytes]:
    """Both paths sent the same datagrams; the viewer decrypts them; the plaintexts."""
    sent = python.read()
    assert sent, "nothing was forwarded"
    assert native_wire.read() == sent
    for counter in ("packets_sent", "bytes_sent", "packets_dropped", "retransmitted"):
        assert getattr(native_wire.consumer, counter) == getattr(python.consumer, counter), counter
    viewer = session(Policy.SSRC_ANY_INBOUND)
    return [viewer.unprotect(datagram) for datagram in sent]


def test_h264_across_a_publisher_replacement_with_nacks_and_repairs(
    pairs: Callable[[str, RTCRtpCodecCapability], tuple[Wire, Wire]], clock: Clock
) -> None:
    key = encoded_payloads(H264Encoder(), 320, 240)
    first = Publisher(producer("video", H264), ssrc=0x1111, seq=0xFFF0, ts=0xFFFF_F000)
    first.send([delta("a", 0)])  # before any keyframe: cached nothing yet
    first.send(key)
    wires = pairs("video", H264)
    for each in wires:
        each.consumer.bind(first.producer)  # starts with the cached keyframe
    late = pairs("video", H264)  # joins mid-keyframe-less stretch: waits for the next one
    for frame in range(1, 25):  # the sequence numbers wrap
        clock.now += 1 / 30
        first.send([delta("a", frame, 0), delta("a", frame, 1)])
        if frame == 3:
            for each in late:
                each.consumer.bind(first.producer)
        if frame == 10:
            first.send(key)
    oversized = bytes([0x41]) + os.urandom(1600)  # beyond the plaintext bound: dropped by both
    first.send([oversized])
    for each in wires:
        last = each.consumer.lane.last_seq
        for seq in (last - 3, last - 1, last - 1, (last - 500) & 0xFFFF):
            each.consumer.retransmit(seq & 0xFFFF)  # RTX; a repeat and a too-old one are not
    second = Publisher(producer("video", H264), ssrc=0x2222, seq=100, ts=5000)
    for each in (*wires, *late):
        each.consumer.bind(second.producer)
    clock.now += 0.5
    second.send([delta("b", 0)])  # gated: waits for the replacement's keyframe
    second.send(key)
    for frame in range(1, 6):
        clock.now += 1 / 30
        second.send([delta("b", frame)])
    lost = second.seq
    second.seq += 1  # lost on the way in, then repaired by the publisher's retransmission
    second.send([delta("b", 6)])
    second.producer.receive_rtx(
        rtp(0x2223, 7, second.ts, lost.to_bytes(2, "big") + delta("b", 99), pt=97)
    )
    assert wires[0].consumer.retransmitted == 3  # two NACKs served, one repair
    for python, native_wire in (wires, late):
        plain = assert_same_wire(python, native_wire)
        assert python.consumer.packets_dropped == 1
        payloads = [p[header_length(p) :] for p in plain]
        assert key[0] in payloads and delta("b", 99) in payloads
        assert delta("a", 0) not in payloads and delta("b", 0) not in payloads


def test_vp8_layer_switch_rewrites_picture_ids_the_same_way(
    pairs: Callable[[str, RTCRtpCodecCapability], tuple[Wire, Wire]], clock: Clock
) -> None:
    # One encoder per layer, as a browser's: each numbers its pictures from its own start.
    encoders = Vp8Encoder(), Vp8Encoder()
    low = Publisher(producer("video", VP8), ssrc=0x3333, seq=500, ts=90_000)
    high = Publisher(producer("video", VP8), ssrc=0x4444, seq=9000, ts=7_000_000)
    wires = pairs("video", VP8)
    for each in wires:
        each.consumer.bind(low.producer)
    for encoder, layer in zip(encoders, (low, high), strict=True):
        layer.send(encoded_payloads(encoder, 320, 240))
    # Every frame is a keyframe (the encoder is forced to): the switch happens at the next one,
    # and the high layer's picture ids go on from the low layer's.
    for frame in range(12):
        clock.now += 1 / 30
        for encoder, layer in zip(encoders, (low, high), strict=True):
            layer.send(encoded_payloads(encoder, 320, 240)[:1])
        if frame == 4:
            for each in wires:
                each.consumer.switch(high.producer)
    assert all(each.consumer.switches == 1 for each in wires)
    assert wires[1].consumer.lane.pic_off != 0
    plain = assert_same_wire(*wires)
    assert len({HEADER.unpack_from(p)[4] for p in plain}) == 1  # one SSRC throughout


def test_opus_with_audio_levels(
    pairs: Callable[[str, RTCRtpCodecCapability], tuple[Wire, Wire]], clock: Clock
) -> None:
    audio = Publisher(producer("audio", OPUS), ssrc=0x5555, seq=1, ts=0)
    wires = pairs("audio", OPUS)
    for each in wires:
        each.consumer.bind(audio.producer)
    for n in range(40):
        clock.now += 0.02
        audio.send([os.urandom(80 + n)], level=bytes([0x80 | n]))
    plain = assert_same_wire(*wires)
    levels = [find_extension(p, 12, header_length(p), 4) for p in plain[:3]]
    assert levels == [0x80, 0x81, 0x82]


def test_no_file_descriptors_or_memory_are_left_after_viewers_churn() -> None:
    source = Publisher(producer("video", H264), ssrc=0x6666, seq=0, ts=0)

    def churn() -> None:
        viewers = [wire("video", H264, on_native=True, seed=n) for n in range(50)]
        for each in viewers:
            each.consumer.bind(source.producer)
        for _ in range(200):  # more than the history: every slot is replaced at least once
            source.send([bytes([0x65]) + os.urandom(1000)])
        assert all(each.consumer.packets_sent >= 200 for each in viewers)
        for each in viewers:
            each.close()

    def usage() -> tuple[int, int, int]:
        gc.collect()
        with open("/proc/self/statm") as statm:
            rss = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        return len(os.listdir("/proc/self/fd")), rss, tracemalloc.get_traced_memory()[0]

    tracemalloc.start()
    try:
        churn()  # the first round allocates what the process keeps (buffers, caches)
        fds, rss, traced = usage()
        for _ in range(5):
            churn()
        fds_after, rss_after, traced_after = usage()
    finally:
        tracemalloc.stop()
    assert fds_after == fds
    # A lane keeping its history would hold 250 viewers x 128 entries of 1 kB: 32 MB.
    assert traced_after - traced < 512 * 1024
    assert rss_after - rss < 4 * 1024 * 1024


def test_a_datagram_the_kernel_refuses_is_dropped_and_the_batch_goes_on() -> None:
    """Three viewers on one socket (the UDP mux's shape: one sendmmsg batch per packet on the
    native path), the middle one's datagrams refused by the kernel: they are counted as
    dropped on both paths, and the viewers either side of it get every packet."""
    for on_native in (False, True):
        source = Publisher(producer("video", H264), ssrc=0x7070, seq=0, ts=0)
        shared = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        shared.bind(("127.0.0.1", 0))
        shared.setblocking(False)
        viewers = [
            wire("video", H264, on_native=on_native, seed=n, out=shared, refused=n == 1)
            for n in range(3)
        ]
        try:
            for each in viewers:
                each.consumer.bind(source.producer)
            for _ in range(20):
                source.send([bytes([0x65]) + os.urandom(500)])
            first, refused, last = (each.consumer for each in viewers)
            assert first.packets_sent == last.packets_sent >= 20, on_native
            assert (refused.packets_sent, refused.packets_dropped) == (0, first.packets_sent)
            assert first.packets_dropped == last.packets_dropped == 0
            assert len(viewers[0].read()) == len(viewers[2].read()) == first.packets_sent
        finally:
            for each in viewers:
                each.close()
    native.configure("auto")


def test_the_setting_chooses_the_path_and_an_unbound_native_lane_drops() -> None:
    native.configure("off")
    assert not native.active() and native.fan_out() is None
    assert native.configure("auto") and native.active()
    unbound = struct.pack("!BBHII", 0x80, 96, 1, 0, 0x7777)
    source = producer("video", H264)
    viewer = wire("video", H264, on_native=True, seed=99)
    viewer.consumer.lane.route(
        SimpleNamespace(session=None, context=None, sendto=None, address=("", 0))
    )  # type: ignore[arg-type]
    viewer.consumer.bind(source)
    source.receive(unbound + bytes([0x65, 1, 2, 3]))
    assert viewer.consumer.packets_dropped == 1 and viewer.consumer.packets_sent == 0
    viewer.close()


def test_a_lane_whose_init_did_not_run_is_refused_not_followed() -> None:
    from sfu import _fanout  # here: where it was not built the module is skipped, not broken

    lane = _fanout.Lane.__new__(_fanout.Lane)
    entry = (1, 0, 0, bytes([0x65]), True, -1, None)
    with pytest.raises(RuntimeError, match="__init__"):
        lane.send(entry)
    with pytest.raises(RuntimeError, match="__init__"):
        lane.entry(1)
    forwarded: list[object] = []
    _fanout.fan_out(entry, (lane,), (forwarded.append,))  # its consumer's forward instead
    assert forwarded == [entry]
