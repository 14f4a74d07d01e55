"""VP8 RTP depacketizing (RFC 7741): strip payload descriptors, join partitions into frames."""

from __future__ import annotations

from .frame import EncodedFrame
from .rtp import RtpPacket


def descriptor_length(payload: bytes) -> int:
    """Length of the VP8 payload descriptor at the start of `payload` (0 if malformed)."""
    size = 1
    if payload[0] & 0x80:  # X: extension byte follows
        if len(payload) < 2:
            return 0
        extension = payload[1]
        size = 2
        if extension & 0x80:  # I: picture id, 7 or 15 bits
            if len(payload) < 3:
                return 0
            size += 2 if payload[2] & 0x80 else 1
        if extension & 0x40:  # L: TL0PICIDX
            size += 1
        if extension & 0x30:  # T or K: TID/Y/KEYIDX byte
            size += 1
    return size if size < len(payload) else 0


class Vp8Depacketizer:
    """Assembles the payloads of one RTP timestamp into a VP8 frame.

    A frame begins at a packet with S=1 and partition id 0; its first payload byte tells
    keyframes (P bit clear) from inter frames. Frames with a lost packet are dropped.
    """

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._timestamp: int | None = None
        self._keyframe = False
        self._broken = False

    def push(self, packet: RtpPacket, lost_before: bool) -> EncodedFrame | None:
        done: EncodedFrame | None = None
        self._broken |= lost_before
        if self._timestamp is not None and packet.timestamp != self._timestamp:
            done = self._finish()
        payload = packet.payload
        skip = descriptor_length(payload)
        if skip == 0:
            self._broken = True
            return done
        starts = payload[0] & 0x10 and payload[0] & 0x0F == 0
        if starts:
            self._parts, self._broken = [], False
            self._keyframe = not payload[skip] & 0x01
        elif not self._parts:
            self._broken = True
        self._timestamp = packet.timestamp
        self._parts.append(payload[skip:])
        if packet.marker:
            done = self._finish()
        return done

    def _finish(self) -> EncodedFrame | None:
        parts, timestamp, broken = self._parts, self._timestamp, self._broken
        self._parts, self._timestamp, self._broken = [], None, False
        if broken or not parts or timestamp is None:
            return None
        return EncodedFrame(b"".join(parts), timestamp, self._keyframe)
