"""RTP header bytes: parse the fixed header once, build per-viewer header templates, wrap RTX.

Per-packet work patches a viewer's prebuilt header in place (``SEQ_TS.pack_into``) and joins
it with the publisher's payload: no ``RtpPacket`` objects, no re-serialisation.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

HEADER = struct.Struct("!BBHII")  # V/P/X/CC, M/PT, sequence number, timestamp, SSRC
SEQ_TS = struct.Struct("!HI")
_SEQ = struct.Struct("!H")
_SSRC = struct.Struct("!I")

MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
SILENCE_LEVEL = 0x7F  # -127 dBov: what we write until the publisher tells us a level


def header_length(packet: bytes) -> int:
    """Length of the RTP header (fixed part, CSRCs, extension block), or -1 if truncated."""
    size = len(packet)
    if size < 12:
        return -1
    length = 12 + ((packet[0] & 0x0F) << 2)
    if packet[0] & 0x10:
        if size < length + 4:
            return -1
        length += 4 + ((packet[length + 2] << 8 | packet[length + 3]) << 2)
    return length if length <= size else -1


def _element(packet: bytes, start: int, end: int, ext_id: int) -> tuple[int, int]:
    """(offset, length) of header extension ``ext_id`` in the block at ``packet[start:end]``.

    Handles RFC 8285 one-byte (0xBEDE) and two-byte (0x100x) blocks; (-1, 0) if absent.
    """
    profile = packet[start] << 8 | packet[start + 1]
    pos = start + 4
    if profile == 0xBEDE:
        while pos < end:
            byte = packet[pos]
            if byte == 0:  # padding
                pos += 1
                continue
            element = byte >> 4
            if element == 15:
                break
            if element == ext_id:
                return pos + 1, (byte & 0x0F) + 1
            pos += 2 + (byte & 0x0F)
    elif profile & 0xFFF0 == 0x1000:
        while pos + 1 < end:
            element = packet[pos]
            if element == 0:
                pos += 1
                continue
            length = packet[pos + 1]
            if element == ext_id:
                return (pos + 2, length) if length else (-1, 0)
            pos += 2 + length
    return -1, 0


def find_extension(packet: bytes, start: int, end: int, ext_id: int) -> int:
    """First byte of header extension ``ext_id`` in the block at ``packet[start:end]``, or -1."""
    pos, _ = _element(packet, start, end, ext_id)
    return packet[pos] if 0 <= pos < end else -1


def find_extension_bytes(packet: bytes, ext_id: int) -> bytes | None:
    """The value of header extension ``ext_id`` of an RTP packet (None if it has none)."""
    if not ext_id or len(packet) < 16 or not packet[0] & 0x10:
        return None
    start = 12 + ((packet[0] & 0x0F) << 2)
    if len(packet) < start + 4:
        return None
    end = min(len(packet), start + 4 + ((packet[start + 2] << 8 | packet[start + 3]) << 2))
    pos, length = _element(packet, start, end, ext_id)
    return packet[pos : pos + length] if pos >= 0 and pos + length <= end else None


def header_template(
    ssrc: int,
    payload_type: int,
    extension_ids: Mapping[str, int],
    mid: str | None,
    kind: str,
) -> tuple[bytearray, int]:
    """A viewer's RTP header with its SSRC, PT and extension block.

    The block holds the MID and, for audio, the audio level or, for video, the abs-send-time
    (what a browser's receive-side bandwidth estimator, and so its REMB, is computed from).
    Returns the header and the offset of the byte before that per-packet value (0 if
    absent): audio writes the level after it, video overwrites it and the 3-byte time
    with one 4-byte word (the element's id/length byte is constant). Sequence number and
    timestamp are patched per packet; the publisher's other extensions are dropped, as
    their ids and meaning belong to the publisher's negotiation.
    """
    elements = bytearray()
    value_offset = 0
    mid_id = extension_ids.get(MID_URI, 0)
    if mid and 1 <= mid_id <= 14 and 1 <= len(mid.encode()) <= 16:
        raw = mid.encode()
        elements += bytes([mid_id << 4 | (len(raw) - 1)]) + raw
    level_id = extension_ids.get(AUDIO_LEVEL_URI, 0)
    time_id = extension_ids.get(ABS_SEND_TIME_URI, 0)
    if kind == "audio" and 1 <= level_id <= 14:
        value_offset = 16 + len(elements)
        elements += bytes([level_id << 4, SILENCE_LEVEL])
    elif kind == "video" and 1 <= time_id <= 14:
        value_offset = 16 + len(elements)
        elements += bytes([time_id << 4 | 2, 0, 0, 0])
    header = bytearray(HEADER.pack(0x80, payload_type & 0x7F, 0, 0, ssrc))
    if elements:
        elements += bytes(-len(elements) % 4)
        header[0] |= 0x10
        header += struct.pack("!HH", 0xBEDE, len(elements) // 4) + elements
    return header, value_offset


def abs_send_time(now: float) -> int:
    """The abs-send-time extension's value for ``now`` (seconds): 6.18 fixed point, 24 bits."""
    return int(now * 262144) & 0xFFFFFF


def sequence_number(packet: bytes) -> int:
    return packet[2] << 8 | packet[3]


def rtx_wrap(packet: bytes, payload_type: int, rtx_sequence: int, rtx_ssrc: int) -> bytes:
    """RFC 4588 retransmission: the original sequence number leads the payload."""
    offset = header_length(packet)
    header = bytearray(packet[:offset])
    header[1] = (header[1] & 0x80) | (payload_type & 0x7F)
    _SEQ.pack_into(header, 2, rtx_sequence)
    _SSRC.pack_into(header, 8, rtx_ssrc)
    return b"".join((header, packet[2:4], packet[offset:]))
