"""Header rewriting, extension parsing, RTX, keyframe and picture-size detection."""

from __future__ import annotations

import fractions
import struct

import av
import pytest
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder

from sfu.keyframe import (
    h264_is_keyframe,
    h264_resolution,
    vp8_is_keyframe,
    vp8_picture,
    vp8_resolution,
)
from sfu.rtp import (
    ABS_SEND_TIME_URI,
    AUDIO_LEVEL_URI,
    MID_URI,
    abs_send_time,
    find_extension,
    find_extension_bytes,
    header_length,
    header_template,
    rtx_wrap,
    sequence_number,
)


def test_header_template_carries_ssrc_pt_mid_and_audio_level() -> None:
    header, level_offset = header_template(
        0xDEADBEEF, 111, {MID_URI: 4, AUDIO_LEVEL_URI: 9, ABS_SEND_TIME_URI: 3}, "1", "audio"
    )
    assert header[0] == 0x90 and header[1] == 111
    assert struct.unpack_from("!I", header, 8)[0] == 0xDEADBEEF
    assert header_length(bytes(header)) == len(header) and len(header) % 4 == 0
    assert find_extension(bytes(header), 12, len(header), 4) == ord("1")
    assert level_offset and header[level_offset] == 9 << 4
    assert find_extension_bytes(bytes(header) + b"x", 3) is None  # no send time on audio
    plain, offset = header_template(1, 96, {}, None, "video")
    assert len(plain) == 12 and offset == 0 and plain[0] == 0x80


def test_video_header_template_carries_abs_send_time() -> None:
    ids = {MID_URI: 4, AUDIO_LEVEL_URI: 9, ABS_SEND_TIME_URI: 3}
    header, offset = header_template(7, 96, ids, "0", "video")
    assert header[offset] == 3 << 4 | 2  # id 3, three bytes
    struct.pack_into("!I", header, offset, header[offset] << 24 | abs_send_time(1.5))
    assert find_extension_bytes(bytes(header) + b"x", 3) == (1.5 * 262144).__int__().to_bytes(3)
    assert find_extension_bytes(bytes(header) + b"x", 9) is None
    assert abs_send_time(64.0 + 1.5) == abs_send_time(1.5)  # 6.18 fixed point wraps at 64 s


def test_find_extension_one_and_two_byte_blocks() -> None:
    one = b"\xbe\xde\x00\x02" + bytes([0x10, 0xAA, 0x21, 0xBB, 0xCC]) + b"\x00\x00\x00"
    assert find_extension(one, 0, len(one), 1) == 0xAA
    assert find_extension(one, 0, len(one), 2) == 0xBB
    assert find_extension(one, 0, len(one), 3) == -1
    two = b"\x10\x00\x00\x01" + bytes([7, 1, 0x55, 0])
    assert find_extension(two, 0, len(two), 7) == 0x55
    assert header_length(b"\x90\x60\x00\x01" + bytes(8) + b"\xbe\xde\x00\x09") == -1


def test_rtx_wrap_puts_the_original_sequence_number_first() -> None:
    header, _ = header_template(5, 100, {MID_URI: 1}, "0", "video")
    struct.pack_into("!HI", header, 2, 0x1234, 99)
    header[1] |= 0x80
    packet = bytes(header) + b"payload"
    rtx = rtx_wrap(packet, 101, 7, 0xCAFE)
    offset = header_length(rtx)
    assert rtx[1] == 0x80 | 101 and sequence_number(rtx) == 7
    assert struct.unpack_from("!I", rtx, 8)[0] == 0xCAFE
    assert rtx[offset : offset + 2] == b"\x12\x34" and rtx[offset + 2 :] == b"payload"


def encoded_payloads(encoder: H264Encoder | Vp8Encoder, width: int, height: int) -> list[bytes]:
    frame = av.VideoFrame(width, height, "yuv420p")
    for plane in frame.planes:
        plane.update(bytes(plane.buffer_size))
    frame.pts, frame.time_base = 0, fractions.Fraction(1, 90000)
    payloads, _ = encoder.encode(frame, force_keyframe=True)
    return payloads


@pytest.mark.parametrize(("width", "height"), [(1280, 720), (320, 240), (1920, 1080)])
def test_h264_keyframe_and_size(width: int, height: int) -> None:
    payloads = encoded_payloads(H264Encoder(), width, height)
    assert h264_is_keyframe(payloads[0])
    assert h264_resolution(payloads[0]) == (width, height)
    # FU-A continuation packets do not start a keyframe.
    assert not any(
        h264_is_keyframe(p) for p in payloads[1:] if p[0] & 0x1F == 28 and not p[1] & 0x80
    )
    assert not h264_is_keyframe(bytes([0x41, 0x9A]))  # non-IDR slice
    assert h264_is_keyframe(bytes([0x7C, 0x85, 0x00]))  # FU-A, start of an IDR


def test_vp8_keyframe_and_size() -> None:
    payloads = encoded_payloads(Vp8Encoder(), 640, 360)
    assert vp8_is_keyframe(payloads[0])
    assert vp8_resolution(payloads[0]) == (640, 360)
    assert not any(vp8_is_keyframe(p) for p in payloads[1:])
    assert not vp8_is_keyframe(b"\x10")


def test_vp8_picture_finds_picture_id_and_tl0picidx() -> None:
    # X, S; I and L set; 15-bit picture id 0x1234; TL0PICIDX 7; then the VP8 payload.
    wide = bytes([0x90, 0xC0, 0x80 | 0x12, 0x34, 7]) + b"frame"
    assert vp8_picture(wide) == (2, 15, 0x1234, 4)
    narrow = bytes([0x90, 0x80, 0x45]) + b"frame"  # 7-bit picture id 0x45, no TL0PICIDX
    assert vp8_picture(narrow) == (2, 7, 0x45, 0)
    assert vp8_picture(bytes([0x10]) + b"frame") is None  # no extension: nothing to rewrite
    assert vp8_picture(bytes([0x90, 0x40, 7])) is None  # TL0PICIDX but no picture id
    assert vp8_picture(bytes([0x90, 0x80, 0x80])) is None  # truncated 15-bit id
