"""H.264 RTP depacketizing (RFC 6184: single NAL unit, STAP-A, FU-A) into Annex-B access units."""

from __future__ import annotations

from .frame import EncodedFrame
from .rtp import RtpPacket

START_CODE = b"\x00\x00\x00\x01"
NAL_IDR = 5
NAL_SPS = 7
NAL_PPS = 8
_NAL_FILLER = 12
_STAP_A = 24
_FU_A = 28


class H264Depacketizer:
    """Assembles the NAL units of one RTP timestamp into an Annex-B access unit.

    A frame ends at the marker bit (or when the timestamp changes). A frame that saw a
    lost packet, or an FU-A without its start, is dropped whole: remuxing a broken frame
    would only push corruption into every player. Keyframes (IDR) always carry SPS and
    PPS, taken from the stream and cached, so each segment decodes on its own.
    """

    def __init__(self) -> None:
        self._nals: list[bytes] = []
        self._fragment: bytearray | None = None
        self._timestamp: int | None = None
        self._broken = False
        self.sps: bytes | None = None
        self.pps: bytes | None = None

    def push(self, packet: RtpPacket, lost_before: bool) -> EncodedFrame | None:
        done: EncodedFrame | None = None
        # A hole may belong to the frame before or to this one: drop both.
        self._broken |= lost_before
        if self._timestamp is not None and packet.timestamp != self._timestamp:
            done = self._finish()  # the previous frame's marker packet was lost
            self._broken = lost_before
        if self._timestamp is None:
            self._timestamp = packet.timestamp
        self._add_payload(packet.payload)
        if packet.marker:
            done = self._finish()
        return done

    def _add_payload(self, payload: bytes) -> None:
        nal_type = payload[0] & 0x1F
        if 0 < nal_type < _STAP_A:
            self._add_nal(payload)
        elif nal_type == _STAP_A:
            self._add_stap_a(payload)
        elif nal_type == _FU_A and len(payload) > 2:
            self._add_fu_a(payload)
        else:
            self._broken = True  # STAP-B, MTAP, FU-B: not sent by WebRTC senders

    def _add_stap_a(self, payload: bytes) -> None:
        offset = 1
        while offset + 2 <= len(payload):
            size = (payload[offset] << 8) | payload[offset + 1]
            offset += 2
            if size == 0 or offset + size > len(payload):
                self._broken = True
                return
            self._add_nal(payload[offset : offset + size])
            offset += size

    def _add_fu_a(self, payload: bytes) -> None:
        indicator, header = payload[0], payload[1]
        if header & 0x80:  # start: rebuild the NAL header from F|NRI and the type
            self._fragment = bytearray(((indicator & 0xE0) | (header & 0x1F),))
        if self._fragment is None:
            self._broken = True
            return
        self._fragment += payload[2:]
        if header & 0x40:  # end
            self._add_nal(bytes(self._fragment))
            self._fragment = None

    def _add_nal(self, nal: bytes) -> None:
        nal_type = nal[0] & 0x1F
        if nal_type == NAL_SPS:
            self.sps = nal
        elif nal_type == NAL_PPS:
            self.pps = nal
        elif nal_type != _NAL_FILLER:
            self._nals.append(nal)

    def _finish(self) -> EncodedFrame | None:
        nals, timestamp, broken = self._nals, self._timestamp, self._broken
        self._nals, self._timestamp, self._broken = [], None, False
        if self._fragment is not None:
            broken = True  # an FU-A never ended
            self._fragment = None
        if broken or not nals or timestamp is None:
            return None
        keyframe = any(nal[0] & 0x1F == NAL_IDR for nal in nals)
        if keyframe:
            if self.sps is None or self.pps is None:
                return None  # undecodable without parameter sets
            nals = [self.sps, self.pps, *nals]
        return EncodedFrame(START_CODE + START_CODE.join(nals), timestamp, keyframe)
