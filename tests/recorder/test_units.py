"""The small pieces: RTP parsing, reordering, depacketizing, timestamps, cues, boxes."""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta

import pytest

from recorder.boxes import fragments, iter_boxes
from recorder.cue import Cue
from recorder.h264 import H264Depacketizer
from recorder.reorder import ReorderBuffer
from recorder.rtp import RtpPacket, parse_rtp
from recorder.timeline import Origin, TrackClock
from recorder.vp8 import Vp8Depacketizer, descriptor_length


def rtp(seq: int, ts: int, payload: bytes, marker: bool = False) -> RtpPacket:
    return RtpPacket(96, seq & 0xFFFF, ts, 1234, marker, payload)


def test_parse_rtp_with_csrc_extension_and_padding() -> None:
    header = struct.pack("!BBHII", 0xB1, 0x80 | 102, 65535, 4_000_000_000, 99)
    csrc = struct.pack("!I", 7)
    extension = b"\xbe\xde\x00\x01" + b"\x10\xff\x00\x00"
    data = header + csrc + extension + b"payload" + b"\x00\x00\x03"
    packet = parse_rtp(data)
    assert packet is not None
    assert (packet.payload_type, packet.sequence, packet.timestamp) == (102, 65535, 4_000_000_000)
    assert packet.marker and packet.ssrc == 99 and packet.payload == b"payload"
    assert parse_rtp(b"\x40" + data[1:]) is None  # RTP version 1


def test_reorder_buffer_sorts_and_reports_loss() -> None:
    buffer = ReorderBuffer(depth=3)
    out = []
    for seq in (65534, 0, 65535, 1, 1, 3, 4, 5, 6):  # wraps; 2 never arrives; 1 duplicated
        out += [(p.sequence, lost) for p, lost in buffer.push(rtp(seq, 0, b"x"))]
    assert out == [
        (65534, False),
        (65535, False),
        (0, False),
        (1, False),
        (3, True),
        (4, False),
        (5, False),
        (6, False),
    ]
    assert buffer.push(rtp(2, 0, b"x")) == []  # too late


def test_h264_depacketizer_handles_stap_a_fu_a_and_single_nal() -> None:
    sps, pps, idr = b"\x67\x42\x00\x1f", b"\x68\xce\x3c\x80", b"\x65" + bytes(range(200))
    stap = b"\x18" + struct.pack("!H", len(sps)) + sps + struct.pack("!H", len(pps)) + pps
    fu = [b"\x7c\x85" + idr[1:80], b"\x7c\x05" + idr[80:150], b"\x7c\x45" + idr[150:]]
    depacketizer = H264Depacketizer()
    assert depacketizer.push(rtp(1, 90, stap), False) is None
    assert depacketizer.push(rtp(2, 90, fu[0]), False) is None
    assert depacketizer.push(rtp(3, 90, fu[1]), False) is None
    frame = depacketizer.push(rtp(4, 90, fu[2], marker=True), False)
    assert frame is not None and frame.keyframe and frame.timestamp == 90
    assert frame.data == b"\x00\x00\x00\x01" + b"\x00\x00\x00\x01".join([sps, pps, idr])
    inter = depacketizer.push(rtp(5, 180, b"\x41\x9a\x00", marker=True), False)
    assert (
        inter is not None and not inter.keyframe and inter.data == b"\x00\x00\x00\x01\x41\x9a\x00"
    )
    assert depacketizer.push(rtp(7, 270, fu[2], marker=True), True) is None  # lost its start
    nosps = H264Depacketizer().push(rtp(1, 0, idr, marker=True), False)
    assert nosps is None, "an IDR without parameter sets cannot start a recording"


def test_vp8_descriptor_and_keyframes() -> None:
    assert descriptor_length(b"\x10\x00") == 1
    assert descriptor_length(b"\x90\x80\x85\x01\x00") == 4  # X, I with 15-bit picture id
    assert descriptor_length(b"\x90\xe0\x05\x01\x02\x00") == 5  # I (7 bits), L, T
    assert descriptor_length(b"\x90") == 0
    depacketizer = Vp8Depacketizer()
    first = depacketizer.push(rtp(1, 0, b"\x10\x00\x11"), False)
    key = depacketizer.push(rtp(2, 0, b"\x00\x22", marker=True), False)
    assert first is None and key is not None and key.keyframe and key.data == b"\x00\x11\x22"
    inter = depacketizer.push(rtp(3, 3000, b"\x10\x01", marker=True), False)
    assert inter is not None and not inter.keyframe
    depacketizer.push(rtp(4, 6000, b"\x10\x01"), False)
    assert depacketizer.push(rtp(6, 6000, b"\x00\x02", marker=True), True) is None


def test_track_clock_unwraps_and_aligns_tracks() -> None:
    now = [100.0]
    origin = Origin(now=lambda: now[0], wall_now=lambda: 1_700_000_000.0)
    video, audio = TrackClock(90000, origin), TrackClock(48000, origin)
    assert video.pts(0xFFFFF000) == 0
    now[0] = 100.5  # audio's first packet arrives half a second later
    assert audio.pts(12345) == 24000
    assert video.pts(0x00000FA0) == 0x1000 + 0xFA0  # wrapped forward
    assert video.pts(0xFFFFFFF0) == 0xFF0  # a reordered, older frame
    assert origin.wall == 1_700_000_000.0


def test_cue_attributes_follow_rfc_8216bis() -> None:
    start = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    cue = Cue(
        "p1",
        start,
        attributes={"X-PRODUCT-ID": "sku-1", "X-PRICE-CENTS": 999, "X-Y": 0.5},
        end=start + timedelta(seconds=3),
    )
    assert cue.to_tag() == (
        '#EXT-X-DATERANGE:ID="p1",CLASS="com.shopcast.product",'
        'START-DATE="2026-01-02T03:04:05.678Z",END-DATE="2026-01-02T03:04:08.678Z",'
        'X-PRODUCT-ID="sku-1",X-PRICE-CENTS=999,X-Y=0.5'
    )
    assert Cue.from_json(cue.to_json()) == cue
    with pytest.raises(ValueError):
        Cue("p2", start, attributes={"PRODUCT": "x"})
    with pytest.raises(ValueError):
        Cue('p"3', start)
    with pytest.raises(ValueError):
        Cue("p4", start, attributes={"X-NAME": "line\nbreak"})
    with pytest.raises(ValueError):
        Cue("p5", datetime(2026, 1, 1))  # naive datetime


def test_box_reader_stops_at_truncation() -> None:
    moof = struct.pack(">I4s", 16, b"moof") + b"\x00" * 8
    mdat = struct.pack(">I4s", 12, b"mdat") + b"abcd"
    data = moof + mdat + moof + mdat[:-1]
    assert [b.type for b in iter_boxes(data)] == ["moof", "mdat", "moof"]
    assert [(m.start, d.end) for m, d in fragments(data)] == [(0, 28)]
    assert list(iter_boxes(struct.pack(">I4s", 0, b"mdat") + b"rest")) == []
