"""One inbound track of a publisher, fanned out to its consumers."""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiortc import RTCRtpCodecCapability
from aiortc.clock import current_ntp_time

from . import native
from .keyframe import detectors, vp8_picture
from .rtp import HEADER, abs_send_time, find_extension, header_length
from .stats import ProducerStats, RateMeter

if TYPE_CHECKING:
    from .consumer import Consumer

# A keyframe larger than this is not cached (a 720p IDR is ~40-100 packets).
MAX_KEYFRAME_PACKETS = 512
# Sequence numbers of the last packets that arrived (~1 s of the top layer): a retransmission
# of one of them is a duplicate. Chromium pads its bandwidth probes with RTX copies of packets
# it already sent; forwarded, they doubled what a slow viewer's link had to carry.
ARRIVED = 1024
_NTP_ONE_SECOND = 1 << 32

# One packet as consumers and the keyframe cache see it: (sequence number, timestamp,
# marker bit 0x80|0, payload, starts a keyframe, audio level (audio) or abs-send-time of its
# arrival (video), -1 if none, and for VP8 where its picture id is (``vp8_picture``): a
# consumer that switched layers rewrites it)
Picture = tuple[int, int, int, int] | None
Entry = tuple[int, int, int, bytes, bool, int, Picture]


@dataclass(frozen=True)
class TrackSpec:
    """A producer's negotiated format, as JSON-able values (for relays to other processes)."""

    kind: str
    mime_type: str
    clock_rate: int
    channels: int | None
    parameters: dict[str, str | int | None]
    payload_type: int
    rtx_payload_type: int | None
    audio_level_id: int
    rid: str | None = None  # a simulcast layer's RID
    rid_id: int = 0  # the RID and repaired-RID header extension ids of a simulcast track
    rrid_id: int = 0
    ssrc: int | None = None  # a layer's SSRCs once seen: a relay cannot learn them later
    rtx_ssrc: int | None = None

    def codec(self) -> RTCRtpCodecCapability:
        return RTCRtpCodecCapability(
            mimeType=self.mime_type,
            clockRate=self.clock_rate,
            channels=self.channels,
            parameters=dict(self.parameters),
        )


class ProducerState(enum.Enum):
    NEW = "new"
    LIVE = "live"
    CLOSED = "closed"


class Producer:
    """One inbound track (audio or video) of a publisher.

    States: new -> live (first RTP packet) -> closed. Consumers attach to it; closing it
    leaves them open and idle until the room binds them to the next publisher's producer.
    Video producers keep the packets of the latest keyframe, so that a viewer who joins
    starts with a picture at once, and rate-limit keyframe requests to the publisher.
    """

    def __init__(
        self,
        *,
        kind: str,
        codec: RTCRtpCodecCapability,
        payload_type: int,
        audio_level_id: int,
        request_pli: Callable[[int], None],
        on_first_packet: Callable[[Producer], None],
        keyframe_interval: float,
        rid: str | None = None,
    ) -> None:
        self.kind = kind
        self.rid = rid  # which simulcast layer this is (None: the track has one)
        self.codec = codec
        self.clock_rate = codec.clockRate
        self.payload_type = payload_type  # the publisher's, as negotiated
        self.rtx_payload_type: int | None = None
        self.state = ProducerState.NEW
        self._level_id = audio_level_id
        self._request_pli = request_pli
        self._on_first_packet = on_first_packet
        self._keyframe_interval = keyframe_interval
        video = detectors(codec.mimeType)
        self._video = video is not None
        self._vp8 = codec.mimeType.lower() == "video/vp8"
        self._picture = vp8_picture
        self.last_picture = self.last_tl0 = 0  # VP8: the newest packet's picture id, TL0PICIDX
        self._is_keyframe, self._picture_size = video or (_never, _no_size)
        self._targets: tuple[Consumer, ...] = ()
        self._watchers: tuple[Consumer, ...] = ()  # consumers switching to this layer
        self._forwarders: tuple[Callable[[Entry], None], ...] = ()  # bound, for the hot loop
        # The native path: one call renders, protects and sends for every consumer's lane; a
        # lane whose gate is closed gets its consumer's forward (``_gated``) instead.
        self._fan_out = native.fan_out()
        self._lanes: tuple[Any, ...] = ()
        self._gated: tuple[Callable[[Entry], None], ...] = ()
        self._switchers: tuple[Callable[[Entry], None], ...] = ()
        # Stream position, read by consumers when they re-anchor or build sender reports.
        self.ssrc: int | None = None
        self.last_ts = 0
        self.last_arrival = 0.0
        self._frame_ts = -1
        self._frame_is_key = False
        self._keyframe: list[Entry] = []
        self._keyframe_open = False  # the frame being received is the cached keyframe
        self._sender_report: tuple[float, int, int] | None = None
        self._last_pli = -1e9
        # Counters.
        self.packets = self.bytes = self.frames = self.keyframes = 0
        self.keyframe_requests = self.retransmissions = self.duplicates = 0
        self._arrived = [-1] * ARRIVED  # by seq % ARRIVED: the seq that arrived there last
        self._base_seq = self._max_seq = self._cycles = self._received = 0
        self.width: int | None = None
        self.height: int | None = None
        self._bitrate = RateMeter()
        self.smoothed_bps = 0.0  # bit rate averaged over ~2 s (keyframes make ticks jumpy)
        self._fps = RateMeter()

    @property
    def closed(self) -> bool:
        return self.state is ProducerState.CLOSED

    def spec(self) -> TrackSpec:
        codec = self.codec
        return TrackSpec(
            kind=self.kind,
            mime_type=codec.mimeType,
            clock_rate=codec.clockRate,
            channels=codec.channels,
            parameters=dict(codec.parameters),
            payload_type=self.payload_type,
            rtx_payload_type=self.rtx_payload_type,
            audio_level_id=self._level_id,
            rid=self.rid,
        )

    @property
    def key(self) -> str:
        """``kind``, or ``kind:rid`` for a simulcast layer (names it across processes)."""
        return f"{self.kind}:{self.rid}" if self.rid else self.kind

    @property
    def consumers(self) -> tuple[Consumer, ...]:
        return self._targets

    def receive(self, data: bytes) -> None:
        """Fan one decrypted RTP packet out to every consumer (``len(data) > 12``)."""
        b0, b1, seq, ts, ssrc = HEADER.unpack_from(data)
        size = len(data)
        offset = 12 + ((b0 & 0x0F) << 2)
        level = -1
        if b0 & 0x10:
            if size < offset + 4:
                return
            end = offset + 4 + ((data[offset + 2] << 8 | data[offset + 3]) << 2)
            if self._level_id and end <= size:
                level = find_extension(data, offset, end, self._level_id)
            offset = end
        if b0 & 0x20:
            size -= data[-1]
        if offset >= size:
            return  # padding only: a bandwidth probe, nothing to forward
        payload = data[offset:size]
        if ssrc != self.ssrc:
            self._new_source(ssrc, seq)
        self.packets += 1
        self.bytes += size
        self._received += 1
        self._arrived[seq & (ARRIVED - 1)] = seq
        now = time.monotonic()
        delta = (seq - self._max_seq) & 0xFFFF
        if 0 < delta < 0x8000:
            if seq < self._max_seq:
                self._cycles += 0x10000
            self._max_seq = seq
            self.last_ts = ts
            self.last_arrival = now
        marker = b1 & 0x80
        key = False
        if self._video:
            level = abs_send_time(now)
            if ts != self._frame_ts:
                self._frame_ts = ts
                self.frames += 1
                self._frame_is_key = self._keyframe_open = False
            if not self._frame_is_key and self._is_keyframe(payload):
                self._start_keyframe(payload)
                key = True
        picture = self._picture(payload) if self._vp8 else None
        if picture is not None:
            self.last_picture = picture[2]
            if picture[3]:
                self.last_tl0 = payload[picture[3]]
        entry = (seq, ts, marker, payload, key, level, picture)  # shared by every consumer
        if self._keyframe_open and len(self._keyframe) < MAX_KEYFRAME_PACKETS:
            self._keyframe.append(entry)
        if self._fan_out is None:
            for forward in self._forwarders:
                forward(entry)
            return
        self._fan_out(entry, self._lanes, self._gated)
        for switch_at in self._switchers:
            switch_at(entry)

    def receive_rtx(self, data: bytes) -> None:
        """An RFC 4588 retransmission from the publisher: repair the consumers' streams with a
        packet that had not arrived."""
        offset = header_length(data)
        size = len(data) - (data[-1] if data[0] & 0x20 else 0)
        if offset < 0 or offset + 2 >= size:
            return  # RTX padding probe
        seq = data[offset] << 8 | data[offset + 1]
        slot = seq & (ARRIVED - 1)
        if self._arrived[slot] == seq:
            self.duplicates += 1  # the original arrived: a probe's padding, or a late resend
            return
        self._arrived[slot] = seq
        self.retransmissions += 1
        _, b1, _, ts, _ = HEADER.unpack_from(data)
        payload = data[offset + 2 : size]
        entry = (
            seq,
            ts,
            b1 & 0x80,
            payload,
            False,
            -1,
            self._picture(payload) if self._vp8 else None,
        )
        for consumer in self._targets:
            consumer.repair(entry)

    def _new_source(self, ssrc: int, seq: int) -> None:
        first = self.ssrc is None
        self.ssrc = ssrc
        self._base_seq = self._max_seq = (seq - 1) & 0xFFFF
        self._cycles = self._received = 0
        self._arrived = [-1] * ARRIVED  # a new source numbers its packets afresh
        if first:
            self.state = ProducerState.LIVE
            self._on_first_packet(self)

    def _start_keyframe(self, payload: bytes) -> None:
        self._frame_is_key = self._keyframe_open = True
        self.keyframes += 1
        self._keyframe = []
        size = self._picture_size(payload)
        if size is not None:
            self.width, self.height = size

    def keyframe_packets(self) -> list[Entry]:
        """The packets of the latest keyframe (and of the frames received since in it)."""
        return list(self._keyframe)

    def attach(self, consumer: Consumer) -> None:
        """Start feeding ``consumer``; a video consumer first gets the cached keyframe."""
        if consumer in self._targets or self.closed:
            return
        self._set_targets((*self._targets, consumer))
        if not self._video:
            return
        for entry in self._keyframe:
            consumer.forward(entry)
        if self._keyframe_open:
            return  # the keyframe is still arriving: the consumer continues live from it
        if self._keyframe:
            # Frames followed the cached keyframe; without them the next delta frames would
            # not decode, so the consumer shows the cached picture and waits for a fresh one.
            consumer.await_keyframe(self._keyframe[-1][1])
        self.request_keyframe()

    def add(self, consumer: Consumer) -> None:
        """Feed ``consumer`` from the next packet on (a layer switch, at a keyframe)."""
        if consumer not in self._targets and not self.closed:
            self._set_targets((*self._targets, consumer))

    def detach(self, consumer: Consumer) -> None:
        self._set_targets(tuple(c for c in self._targets if c is not consumer))

    def watch(self, consumer: Consumer) -> None:
        """Show ``consumer.switch_at`` every packet until :meth:`unwatch` (a pending switch)."""
        if consumer not in self._watchers and not self.closed:
            self._watchers = (*self._watchers, consumer)
            self._set_targets(self._targets)

    def unwatch(self, consumer: Consumer) -> None:
        self._watchers = tuple(c for c in self._watchers if c is not consumer)
        self._set_targets(self._targets)

    def _set_targets(self, targets: tuple[Consumer, ...]) -> None:
        self._targets = targets
        self._switchers = tuple(c.switch_at for c in self._watchers)
        self._gated = tuple(c.forward for c in targets)
        self._lanes = tuple(c.lane for c in targets)
        self._forwarders = (*self._gated, *self._switchers)

    def request_keyframe(self) -> bool:
        """Send a PLI to the publisher unless one went out in the last keyframe interval."""
        now = time.monotonic()
        if self.ssrc is None or self.closed or now - self._last_pli < self._keyframe_interval:
            return False
        self._last_pli = now
        self.keyframe_requests += 1
        self._request_pli(self.ssrc)
        return True

    def on_sender_report(self, ntp_timestamp: int, rtp_timestamp: int) -> None:
        """The publisher's clock mapping: consumers' sender reports reuse it for A/V sync."""
        self._sender_report = (time.monotonic(), ntp_timestamp, rtp_timestamp)

    def clock_mapping(self, now: float) -> tuple[int, int]:
        """(NTP, RTP timestamp) of this track at monotonic time ``now``.

        From the publisher's last sender report when there is one (so audio and video keep
        the publisher's lip sync), else from the arrival of the newest packet.
        """
        if self._sender_report is not None:
            at, ntp, rtp = self._sender_report
        else:
            at, ntp, rtp = self.last_arrival, current_ntp_time(), self.last_ts
            ntp -= int((time.monotonic() - at) * _NTP_ONE_SECOND)
        elapsed = now - at
        return (
            (ntp + int(elapsed * _NTP_ONE_SECOND)) & 0xFFFFFFFFFFFFFFFF,
            (rtp + int(elapsed * self.clock_rate)) & 0xFFFFFFFF,
        )

    def sample(self, now: float) -> None:
        """Update bitrate and frame rate (called by the room's periodic tick)."""
        rate = self._bitrate.sample(now, self.bytes) * 8
        self.smoothed_bps = (
            rate if not self.smoothed_bps else 0.75 * self.smoothed_bps + 0.25 * rate
        )
        self._fps.sample(now, self.frames)

    def close(self) -> None:
        """Stop forwarding; consumers go idle. Idempotent."""
        if self.closed:
            return
        self.state = ProducerState.CLOSED
        targets, watchers = self._targets, self._watchers
        self._watchers = ()
        self._set_targets(())
        self._keyframe = []
        for consumer in (*targets, *watchers):
            consumer.producer_closed(self)

    def stats(self) -> ProducerStats:
        expected = self._cycles + ((self._max_seq - self._base_seq) & 0xFFFF)
        return ProducerStats(
            kind=self.kind,
            codec=self.codec.mimeType,
            ssrc=self.ssrc,
            packets=self.packets,
            bytes=self.bytes,
            packets_lost=max(0, expected - self._received),
            bitrate_bps=self._bitrate.rate * 8,
            fps=self._fps.rate if self._video else None,
            width=self.width,
            height=self.height,
            keyframes=self.keyframes,
            keyframe_requests=self.keyframe_requests,
            consumers=len(self._targets),
            rid=self.rid,
            duplicates=self.duplicates,
        )


def _never(payload: bytes) -> bool:
    return False


def _no_size(payload: bytes) -> tuple[int, int] | None:
    return None
