"""Just enough RTP (RFC 3550) parsing for recording: header fields and payload."""

from __future__ import annotations

from dataclasses import dataclass
from struct import unpack_from

_FIXED_HEADER = 12


@dataclass(slots=True)
class RtpPacket:
    """The fields of one RTP packet that recording needs."""

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    marker: bool
    payload: bytes


def parse_rtp(data: bytes) -> RtpPacket | None:
    """Parse one RTP packet; None for anything that is not a well-formed version 2 packet."""
    if len(data) < _FIXED_HEADER or data[0] >> 6 != 2:
        return None
    first, second, sequence, timestamp, ssrc = unpack_from("!BBHII", data)
    offset = _FIXED_HEADER + 4 * (first & 0x0F)
    if first & 0x10:  # header extension: 4-byte header, then length in 32-bit words
        if len(data) < offset + 4:
            return None
        offset += 4 + 4 * unpack_from("!H", data, offset + 2)[0]
    end = len(data)
    if first & 0x20:  # padding: the last byte counts the padding bytes
        end -= data[-1]
    if end <= offset:
        return None
    return RtpPacket(
        payload_type=second & 0x7F,
        sequence=sequence,
        timestamp=timestamp,
        ssrc=ssrc,
        marker=bool(second & 0x80),
        payload=data[offset:end],
    )
