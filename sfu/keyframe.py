"""Keyframe detection and picture size for H.264 (RFC 6184) and VP8 (RFC 7741) payloads.

Detection runs once per packet received from the publisher (never per viewer); the size is
parsed only from keyframes.
"""

from __future__ import annotations

from collections.abc import Callable

_H264_IDR = 5
_H264_SPS = 7
_H264_STAP_A = 24
_H264_FU_A = 28
# Profiles whose SPS carries chroma format and bit depth (ITU-T H.264 7.3.2.1.1).
_H264_HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})


def h264_is_keyframe(payload: bytes) -> bool:
    """Whether the packet holds an SPS or the start of an IDR slice."""
    nal_type = payload[0] & 0x1F
    if nal_type in (_H264_IDR, _H264_SPS):
        return True
    if nal_type == _H264_FU_A:
        # FU header: start bit set, type IDR.
        return len(payload) > 1 and payload[1] & 0x9F == 0x80 | _H264_IDR
    if nal_type == _H264_STAP_A:
        pos, size = 1, len(payload)
        while pos + 2 < size:
            if payload[pos + 2] & 0x1F in (_H264_IDR, _H264_SPS):
                return True
            pos += 2 + (payload[pos] << 8 | payload[pos + 1])
    return False


def _h264_sps(payload: bytes) -> bytes | None:
    nal_type = payload[0] & 0x1F
    if nal_type == _H264_SPS:
        return payload
    if nal_type == _H264_STAP_A:
        pos, size = 1, len(payload)
        while pos + 2 < size:
            length = payload[pos] << 8 | payload[pos + 1]
            if payload[pos + 2] & 0x1F == _H264_SPS:
                return payload[pos + 2 : pos + 2 + length]
            pos += 2 + length
    return None


class _BitReader:
    def __init__(self, data: bytes) -> None:
        # Remove emulation prevention bytes (00 00 03 -> 00 00).
        self._data = data.replace(b"\x00\x00\x03", b"\x00\x00")
        self._pos = 0

    def bits(self, count: int) -> int:
        value = 0
        for _ in range(count):
            byte = self._data[self._pos >> 3]
            value = value << 1 | (byte >> (7 - (self._pos & 7))) & 1
            self._pos += 1
        return value

    def ue(self) -> int:
        zeros = 0
        while self.bits(1) == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("bad exp-Golomb code")
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        code = self.ue()
        return (code + 1) // 2 if code & 1 else -(code // 2)


def _skip_scaling_list(reader: _BitReader, size: int) -> None:
    last = next_scale = 8
    for _ in range(size):
        if next_scale:
            next_scale = (last + reader.se() + 256) % 256
        last = next_scale or last


def h264_resolution(payload: bytes) -> tuple[int, int] | None:
    """Width and height from the SPS in this packet, or None if there is none."""
    sps = _h264_sps(payload)
    if sps is None:
        return None
    try:
        return _parse_sps(_BitReader(sps[1:]))
    except (IndexError, ValueError):
        return None


def _parse_sps(r: _BitReader) -> tuple[int, int]:
    profile = r.bits(8)
    r.bits(16)  # constraint flags, level
    r.ue()  # seq_parameter_set_id
    chroma = 1
    if profile in _H264_HIGH_PROFILES:
        chroma = r.ue()
        if chroma == 3:
            r.bits(1)
        r.ue()
        r.ue()
        r.bits(1)
        if r.bits(1):  # seq_scaling_matrix_present_flag
            for i in range(12 if chroma == 3 else 8):
                if r.bits(1):
                    _skip_scaling_list(r, 16 if i < 6 else 64)
    r.ue()  # log2_max_frame_num_minus4
    poc_type = r.ue()
    if poc_type == 0:
        r.ue()
    elif poc_type == 1:
        r.bits(1)
        r.se()
        r.se()
        for _ in range(r.ue()):
            r.se()
    r.ue()  # max_num_ref_frames
    r.bits(1)
    width = (r.ue() + 1) * 16
    map_units = r.ue() + 1
    frame_mbs_only = r.bits(1)
    if not frame_mbs_only:
        r.bits(1)
    r.bits(1)
    height = (2 - frame_mbs_only) * map_units * 16
    if r.bits(1):  # frame_cropping_flag
        left, right, top, bottom = r.ue(), r.ue(), r.ue(), r.ue()
        crop_x = 1 if chroma in (0, 3) else 2
        crop_y = (2 - frame_mbs_only) * (2 if chroma == 1 else 1)
        width -= (left + right) * crop_x
        height -= (top + bottom) * crop_y
    return width, height


def _vp8_payload_offset(payload: bytes) -> int:
    offset = 1
    if payload[0] & 0x80:  # X: extended control bits
        extension = payload[1]
        offset = 2
        if extension & 0x80:  # I: picture id, 7 or 15 bits
            offset += 2 if payload[offset] & 0x80 else 1
        if extension & 0x40:  # L: TL0PICIDX
            offset += 1
        if extension & 0x30:  # T or K: TID/KEYIDX
            offset += 1
    return offset


def vp8_picture(payload: bytes) -> tuple[int, int, int, int] | None:
    """Where the VP8 payload descriptor keeps its picture id and TL0PICIDX (RFC 7741 4.2):
    (picture id offset, picture id bits (7 or 15), picture id, TL0PICIDX offset or 0), or
    None if it has no picture id (then nothing needs rewriting)."""
    if len(payload) < 3 or not payload[0] & 0x80 or not payload[1] & 0x80:
        return None
    wide = payload[2] & 0x80
    if wide and len(payload) < 4:
        return None
    picture = (payload[2] << 8 | payload[3]) & 0x7FFF if wide else payload[2] & 0x7F
    tl0 = (4 if wide else 3) if payload[1] & 0x40 else 0
    if tl0 >= len(payload):
        return None
    return 2, 15 if wide else 7, picture, tl0


def vp8_is_keyframe(payload: bytes) -> bool:
    """Whether the packet starts a VP8 key frame (S bit, partition 0, P bit clear)."""
    if payload[0] & 0x17 != 0x10:
        return False
    try:
        offset = _vp8_payload_offset(payload)
        return not payload[offset] & 0x01
    except IndexError:
        return False


def vp8_resolution(payload: bytes) -> tuple[int, int] | None:
    """Width and height from a VP8 key frame header (RFC 6386 9.1)."""
    try:
        offset = _vp8_payload_offset(payload)
        frame = payload[offset : offset + 10]
        if len(frame) < 10 or frame[3:6] != b"\x9d\x01\x2a":
            return None
        return (frame[6] | frame[7] << 8) & 0x3FFF, (frame[8] | frame[9] << 8) & 0x3FFF
    except IndexError:
        return None


KeyframeTest = Callable[[bytes], bool]
SizeParser = Callable[[bytes], "tuple[int, int] | None"]


def detectors(mime_type: str) -> tuple[KeyframeTest, SizeParser] | None:
    """The keyframe test and size parser of a video codec, None for audio."""
    mime = mime_type.lower()
    if mime == "video/h264":
        return h264_is_keyframe, h264_resolution
    if mime == "video/vp8":
        return vp8_is_keyframe, vp8_resolution
    return None
