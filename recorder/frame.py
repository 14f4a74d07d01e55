"""Encoded frames: what depacketizers produce and the muxer consumes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .rtp import RtpPacket


@dataclass(slots=True)
class EncodedFrame:
    """One encoded access unit (video) or packet (audio) with its RTP timestamp."""

    data: bytes
    timestamp: int
    keyframe: bool


@dataclass(slots=True)
class TimedFrame:
    """An encoded frame placed on the recording timeline, in units of its track's clock."""

    kind: str
    data: bytes
    pts: int
    keyframe: bool


class Depacketizer(Protocol):
    """Turns in-order RTP packets of one track into encoded frames."""

    def push(self, packet: RtpPacket, lost_before: bool) -> EncodedFrame | None:
        """Add the next packet; return a frame when one completes (None otherwise)."""
        ...


class OpusDepacketizer:
    """Opus (RFC 7587): every RTP payload is one complete Opus packet."""

    def push(self, packet: RtpPacket, lost_before: bool) -> EncodedFrame | None:
        return EncodedFrame(packet.payload, packet.timestamp, True)
