"""One inbound track from raw RTP bytes to frames on the recording timeline (event loop side)."""

from __future__ import annotations

from .frame import Depacketizer, OpusDepacketizer, TimedFrame
from .h264 import H264Depacketizer
from .keyframes import KeyframePolicy
from .reorder import ReorderBuffer
from .rtp import RtpPacket, parse_rtp
from .timeline import Origin, TrackClock
from .track import TrackInfo
from .vp8 import Vp8Depacketizer


def make_depacketizer(codec: str) -> Depacketizer:
    if codec == "H264":
        return H264Depacketizer()
    if codec == "VP8":
        return Vp8Depacketizer()
    return OpusDepacketizer()


class TrackIngest:
    """Parse, reorder, depacketize and timestamp the packets of one track.

    Cheap enough for the SFU's per-packet tap: no media decoding happens here. After a
    lost video frame, frames are dropped until the next keyframe (a remux cannot conceal
    the damage; a frozen picture is better than a smeared one).
    """

    def __init__(self, info: TrackInfo, origin: Origin, keyframes: KeyframePolicy | None) -> None:
        self.info = info
        self._origin = origin
        self._clock = TrackClock(info.clock_rate, origin)
        self._reorder = ReorderBuffer()
        self._depacketizer = make_depacketizer(info.codec)
        self._keyframes = keyframes
        self._ssrc: int | None = None
        self._waiting_for_keyframe = keyframes is not None
        self.packets = self.frames = self.dropped = 0

    def push(self, data: bytes) -> list[TimedFrame]:
        packet = parse_rtp(data)
        if packet is None or packet.payload_type != self.info.payload_type:
            return []
        if packet.ssrc != self._ssrc:
            self._restart(packet.ssrc)
        self.packets += 1
        frames: list[TimedFrame] = []
        for ordered, lost in self._reorder.push(packet):
            self._depacketize(ordered, lost, frames)
        return frames

    def flush(self) -> list[TimedFrame]:
        frames: list[TimedFrame] = []
        for ordered, lost in self._reorder.flush():
            self._depacketize(ordered, lost, frames)
        return frames

    def _restart(self, ssrc: int) -> None:
        # A new SSRC is a new stream (publisher reconnect): new sequence and RTP clock.
        self._ssrc = ssrc
        self._reorder = ReorderBuffer()
        self._depacketizer = make_depacketizer(self.info.codec)
        self._clock.reset()
        self._waiting_for_keyframe = self._keyframes is not None

    def _depacketize(self, packet: RtpPacket, lost: bool, out: list[TimedFrame]) -> None:
        try:
            frame = self._depacketizer.push(packet, lost)
        except IndexError:  # a payload too short for its own headers
            frame = None
        policy = self._keyframes
        if policy is not None and lost:
            self._waiting_for_keyframe = True
            policy.on_loss(self._origin.now())
        if frame is None:
            return
        pts = self._clock.pts(frame.timestamp)
        if policy is not None:
            policy.on_frame(pts, frame.keyframe, self._origin.now())
            if self._waiting_for_keyframe and not frame.keyframe:
                self.dropped += 1
                return
            self._waiting_for_keyframe = False
        self.frames += 1
        out.append(TimedFrame(self.info.kind, frame.data, pts, frame.keyframe))
