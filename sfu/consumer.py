"""One viewer's copy of one track: header rewriting, NACK history, keyframe gating."""

from __future__ import annotations

import enum
import random
import struct
import time
from typing import TYPE_CHECKING

from aiortc import RTCRtpCodecCapability, RTCRtpSender
from aiortc.rtcrtpparameters import RTCRtpSendParameters

from . import native
from .aiortc_hooks import sender_round_trip_time, set_sender_report_basis
from .egress import Egress
from .lane import ForwardLane, renumber
from .rtp import abs_send_time, header_template, rtx_wrap
from .stats import ConsumerStats

if TYPE_CHECKING:
    from .producer import Entry, Producer

# Rewritten packets kept per video consumer for NACKs: ~0.6 s at 1.5 Mbit/s, like aiortc.
VIDEO_HISTORY = 128
AUDIO_HISTORY = 1  # Opus is not retransmitted (aiortc negotiates no NACK for audio)
# Retransmissions may add this share to what the consumer forwards, saved up to RTX_BURST
# bytes: on a saturated link one resend per loss would keep it saturated (measured on a
# 300 kbit/s link: 35 resends a second beside 22 packets of media, the queue full at 0.8 s);
# what the budget refuses, a keyframe request repairs.
RTX_SHARE = 0.25
RTX_BURST = 32_000
_PT_SEQ_TS = struct.Struct("!BHI")  # second byte (marker | payload type), seq, timestamp
_WORD = struct.Struct("!I")
PADDING_SIZE = 255  # bytes of padding per probe packet (RFC 3550 allows at most 255)
_PADDING = bytes(PADDING_SIZE - 1) + bytes([PADDING_SIZE])  # the count ends the padding
_SEQ_TS = struct.Struct("!HI")


class ConsumerState(enum.Enum):
    NEW = "new"
    WAITING_KEYFRAME = "waiting_keyframe"
    FORWARDING = "forwarding"
    IDLE = "idle"
    CLOSED = "closed"


class Consumer:
    """One viewer's copy of one track.

    States: new (viewer's DTLS not up) -> waiting_keyframe (video) -> forwarding -> closed;
    idle while the room has no producer of its kind. A video consumer starts forwarding only
    at a keyframe; a replacement publisher sends it back to waiting_keyframe, and sequence
    numbers and timestamps stay continuous, so the viewer's decoder just carries on.
    Closing a Subscriber closes its Consumers.
    """

    # Per-packet state lives in the lane (sfu/lane.py, or its native twin): see ``lane``.
    __slots__ = (
        "_anchor_seq",
        "_clock_rate",
        "_last_time",
        "_last_ts",
        "_mask",
        "_nacked",
        "_padding",
        "_pending",
        "_producer",
        "_retime",
        "_rtx_credit",
        "_rtx_pt",
        "_rtx_seq",
        "_started",
        "_wait_key",
        "codec",
        "kind",
        "lane",
        "losses",
        "nacks",
        "padding_sent",
        "plis",
        "resends_refused",
        "retransmitted",
        "sender",
        "state",
        "switches",
        "waiting_since",
    )

    def __init__(
        self, *, kind: str, codec: RTCRtpCodecCapability, sender: RTCRtpSender, egress: Egress
    ) -> None:
        self.kind = kind
        self.codec = codec
        self.sender = sender
        self.state = ConsumerState.NEW
        size = VIDEO_HISTORY if kind == "video" else AUDIO_HISTORY
        # Rewriting state (set when the sender starts, see start()), counters, NACK history.
        self.lane: ForwardLane = native.new_lane(size)
        self._clock_rate = codec.clockRate
        self._producer: Producer | None = None
        self._started = False
        self._padding = b""  # an RTX padding packet's header, for bandwidth probes
        self._pending: Producer | None = None  # the layer this consumer switches to
        self._rtx_pt: int | None = None
        self._rtx_seq = random.randrange(0x8000)  # noqa: S311 - not security sensitive
        # Gate: closed until the next packet that may start this consumer's stream.
        self.lane.gate = True
        self._wait_key = kind == "video"
        self._retime = True
        self._anchor_seq = 0
        # Start low in the sequence space: SRTP indexes break on an early wrap (as aiortc).
        self.lane.last_seq = random.randrange(0x8000)  # noqa: S311
        self._last_ts = random.randrange(1 << 32)  # noqa: S311
        self._last_time: float | None = None
        self._nacked: list[Entry | None] = [None] * size  # what each slot was NACKed for
        self._mask = size - 1
        # Counters (the lane counts what it sends).
        self.nacks = self.retransmitted = self.plis = 0
        self.padding_sent = self.switches = 0
        self.losses = 0  # distinct packets NACKed (a viewer repeats a NACK until repaired)
        self._rtx_credit: tuple[int, float] = (0, RTX_BURST)  # (bytes_sent then, bytes owed)
        self.resends_refused = 0
        self.waiting_since = 0.0  # when it last started waiting for a keyframe (monotonic)
        egress.attach(self)

    def route(self, egress: Egress) -> None:
        """Copy the subscriber's route into the lane: the hot path reads only the lane."""
        self.lane.route(egress)

    @property
    def packets_sent(self) -> int:
        return self.lane.packets_sent

    @property
    def bytes_sent(self) -> int:
        return self.lane.bytes_sent

    @property
    def packets_dropped(self) -> int:
        return self.lane.packets_dropped

    @property
    def closed(self) -> bool:
        return self.state is ConsumerState.CLOSED

    @property
    def producer(self) -> Producer | None:
        return self._producer

    @property
    def ssrc(self) -> int:
        ssrc: int = self.sender._ssrc
        return ssrc

    def start(self, parameters: RTCRtpSendParameters) -> None:
        """The viewer's DTLS is up and aiortc started the sender: build the header, go."""
        if self._started or self.closed:
            return
        codec = parameters.codecs[0]
        lane = self.lane
        lane.pt = (codec.payloadType or 0) & 0x7F
        for candidate in parameters.codecs:
            if candidate.mimeType.lower().endswith("/rtx") and (
                candidate.parameters.get("apt") == codec.payloadType
            ):
                self._rtx_pt = candidate.payloadType
        extension_ids = {ext.uri: ext.id for ext in parameters.headerExtensions}
        header, lane.ext_pos = header_template(
            self.ssrc, lane.pt, extension_ids, parameters.muxId, self.kind
        )
        lane.set_header(bytes(header))
        if self.kind == "video" and lane.ext_pos:
            lane.ext_word = header[lane.ext_pos] << 24
        if self._rtx_pt is not None and lane.ext_pos:
            padding, _ = header_template(
                self.sender._rtx_ssrc, self._rtx_pt, extension_ids, parameters.muxId, self.kind
            )
            padding[0] |= 0x20
            self._padding = bytes(padding)
        self._started = True
        producer, self._producer = self._producer, None
        self.bind(producer)

    def bind(self, producer: Producer | None) -> None:
        """Take media from ``producer`` (None: go idle). Keeps seq/timestamp continuity."""
        old = self._producer
        if self.closed or (old is producer and old is not None):
            return
        self._cancel_switch()
        if old is not None:
            old.detach(self)
            self._remember_position(old)
        self._producer = producer
        self.lane.gate = self._retime = True
        self._wait_key = self.kind == "video"
        if not self._started:
            return
        if producer is None:
            self.state = ConsumerState.IDLE
            return
        self.state = ConsumerState.WAITING_KEYFRAME
        self.waiting_since = time.monotonic()
        producer.attach(self)

    def producer_closed(self, producer: Producer) -> None:
        if self._pending is producer:
            self._pending = None
        if self._producer is producer:
            self.bind(None)

    @property
    def pending(self) -> Producer | None:
        """The layer a switch waits for a keyframe of (None: no switch under way)."""
        return self._pending

    def switch(self, producer: Producer | None) -> None:
        """Move to another layer of the same track (None: pause the video).

        While forwarding, the current layer keeps flowing until the new one sends a keyframe
        (asked for now); sequence numbers and timestamps then continue from the last packet
        sent, so the viewer's decoder sees one stream. Otherwise it binds at once.
        """
        if self.closed or not self._started:
            return
        self._cancel_switch()
        current = self._producer
        if producer is current:
            return
        if producer is None or current is None or self.state is not ConsumerState.FORWARDING:
            self.bind(producer)
            return
        self._pending = producer
        producer.watch(self)
        producer.request_keyframe()

    def _cancel_switch(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.unwatch(self)

    def switch_at(self, entry: Entry) -> None:
        """A packet of the layer we switch to: at its keyframe, take the layer over."""
        target, old = self._pending, self._producer
        if not entry[4] or target is None or old is None:
            return
        self._cancel_switch()
        old.detach(self)
        now = time.monotonic()
        lane = self.lane
        # Both layers' clocks at one instant: the new layer's timestamps, shifted onto ours.
        ts_off = (
            lane.ts_off + old.clock_mapping(now)[1] - target.clock_mapping(now)[1]
        ) & 0xFFFFFFFF
        last_out = (old.last_ts + lane.ts_off) & 0xFFFFFFFF
        step = ((entry[1] + ts_off) - last_out) & 0xFFFFFFFF
        if step == 0 or step >= 0x80000000:  # never backwards, never the previous frame's
            ts_off = (ts_off + 1 - step) & 0xFFFFFFFF
        lane.ts_off = ts_off
        picture = entry[6]
        if picture is not None:
            self._continue_picture(old, picture, entry[3])
        lane.seq_off = (lane.last_seq + 1 - entry[0]) & 0xFFFF
        self._anchor_seq = entry[0]
        self._producer = target
        target.add(self)
        self.switches += 1
        self.forward(entry)

    def _continue_picture(
        self, old: Producer, picture: tuple[int, int, int, int], payload: bytes
    ) -> None:
        """VP8: number the new layer's pictures on from the last one this viewer got."""
        _, bits, number, tl0_at = picture
        lane = self.lane
        mask = (1 << bits) - 1
        last = (old.last_picture + lane.pic_off) & mask
        lane.pic_off = (last + 1 - number) & mask
        if tl0_at:
            last_tl0 = (old.last_tl0 + lane.tl0_off) & 0xFF
            lane.tl0_off = (last_tl0 + 1 - payload[tl0_at]) & 0xFF

    def send_padding(self, count: int) -> int:
        """Send ``count`` RTX padding packets (a bandwidth probe); returns how many went."""
        header, producer, lane = self._padding, self._producer, self.lane
        if not header or self.closed:
            return 0
        ts = self._last_ts if producer is None else (producer.last_ts + lane.ts_off) & 0xFFFFFFFF
        packet = bytearray(header + _PADDING)
        sent = 0
        for _ in range(count):
            _SEQ_TS.pack_into(packet, 2, self._rtx_seq, ts)
            _WORD.pack_into(packet, lane.ext_pos, lane.ext_word | abs_send_time(time.monotonic()))
            self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
            if not lane.send_plain(bytes(packet)):
                break
            sent += 1
        self.padding_sent += sent
        return sent

    def _remember_position(self, producer: Producer) -> None:
        if self.state is ConsumerState.FORWARDING:
            self._last_ts = (producer.last_ts + self.lane.ts_off) & 0xFFFFFFFF
            self._last_time = producer.last_arrival

    def await_keyframe(self, last_ts: int) -> None:
        """Hold packets until the next keyframe (after a cached keyframe was replayed)."""
        self.lane.gate = self._wait_key = self._retime = True
        self._last_ts = (last_ts + self.lane.ts_off) & 0xFFFFFFFF
        self._last_time = self.waiting_since = time.monotonic()
        self.state = ConsumerState.WAITING_KEYFRAME

    def _open_gate(self, seq: int, ts: int, key: bool) -> bool:
        if self._wait_key and not key:
            return False
        lane = self.lane
        lane.gate = self._wait_key = False
        lane.seq_off = (lane.last_seq + 1 - seq) & 0xFFFF
        if self._retime:
            # Continue the viewer's timeline by the wall time that passed since its last packet.
            self._retime = False
            ticks = 0
            if self._last_time is not None:
                ticks = max(1, int((time.monotonic() - self._last_time) * self._clock_rate))
            lane.ts_off = (self._last_ts + ticks - ts) & 0xFFFFFFFF
        self._anchor_seq = seq
        self.state = ConsumerState.FORWARDING
        self.refresh_sender_report(time.monotonic())  # no sender report without a clock
        return True

    def forward(self, entry: Entry) -> None:
        """Rewrite one publisher packet for this viewer and send it (the hot path)."""
        lane = self.lane
        if lane.gate and not self._open_gate(entry[0], entry[1], entry[4]):
            return
        lane.send(entry)

    def repair(self, entry: Entry) -> None:
        """A packet the publisher retransmitted: send it if it belongs to our stream."""
        seq, lane = entry[0], self.lane
        if lane.gate or (seq - self._anchor_seq) & 0xFFFF >= 0x8000:
            return
        lane.remember((seq + lane.seq_off) & 0xFFFF, entry)
        if lane.send_plain(self._render(entry)):
            self.retransmitted += 1

    def _render(self, entry: Entry) -> bytes:
        """The plaintext packet this consumer sends for ``entry``, at the current offsets."""
        seq, ts, marker, payload, _, level, picture = entry
        lane = self.lane
        header = bytearray(lane.header)
        out_seq, out_ts = (seq + lane.seq_off) & 0xFFFF, (ts + lane.ts_off) & 0xFFFFFFFF
        _PT_SEQ_TS.pack_into(header, 1, lane.pt | marker, out_seq, out_ts)
        if lane.ext_word:
            _WORD.pack_into(header, lane.ext_pos, lane.ext_word | abs_send_time(time.monotonic()))
        elif level >= 0 and lane.ext_pos:
            header[lane.ext_pos + 1] = level
        if picture is not None and (lane.pic_off or lane.tl0_off):
            body = bytearray(payload)
            renumber(body, 0, picture, lane.pic_off, lane.tl0_off)
            return b"".join((header, body))
        return b"".join((header, payload))

    def retransmit(self, seq: int) -> None:
        """The viewer NACKed ``seq``: resend it from history (as RTX if negotiated)."""
        self.nacks += 1
        slot, lane = seq & self._mask, self.lane
        entry = lane.entry(seq)
        if entry is None or (entry[0] + lane.seq_off) & 0xFFFF != seq:
            return  # too old, or sent before the consumer re-anchored
        if self._nacked[slot] is entry:
            return  # resent once already: on a saturated link resending again feeds the loss
        self._nacked[slot] = entry
        self.losses += 1
        packet = self._render(entry)
        counted, credit = self._rtx_credit
        credit = min(RTX_BURST, credit + (lane.bytes_sent - counted) * RTX_SHARE)
        if credit < len(packet):
            self._rtx_credit = (lane.bytes_sent, credit)
            self.resends_refused += 1
            return
        self._rtx_credit = (lane.bytes_sent, credit - len(packet))
        if self._rtx_pt is not None:
            packet = rtx_wrap(packet, self._rtx_pt, self._rtx_seq, self.sender._rtx_ssrc)
            self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
        if lane.send_plain(packet):
            self.retransmitted += 1

    def request_keyframe(self) -> None:
        """The viewer sent PLI/FIR: ask the publisher (rate-limited by the producer)."""
        self.plis += 1
        if self._producer is not None:
            self._producer.request_keyframe()

    @property
    def waiting_keyframe(self) -> bool:
        return self.state is ConsumerState.WAITING_KEYFRAME

    def refresh_sender_report(self, now: float) -> None:
        """Give aiortc's RTCP loop a clock mapping consistent with what we forwarded."""
        producer = self._producer
        if producer is None or self.state is not ConsumerState.FORWARDING:
            return
        ntp, rtp = producer.clock_mapping(now)
        lane = self.lane
        set_sender_report_basis(
            self.sender,
            ntp,
            (rtp + lane.ts_off) & 0xFFFFFFFF,
            lane.packets_sent & 0xFFFFFFFF,
            lane.bytes_sent & 0xFFFFFFFF,
        )

    def close(self) -> None:
        """Stop forwarding to this viewer. Idempotent."""
        if self.closed:
            return
        self._cancel_switch()
        producer, self._producer = self._producer, None
        self.state = ConsumerState.CLOSED
        self.lane.close()
        if producer is not None:
            producer.detach(self)

    def stats(self) -> ConsumerStats:
        return ConsumerStats(
            kind=self.kind,
            codec=self.codec.mimeType,
            ssrc=self.ssrc,
            state=self.state.value,
            packets_sent=self.packets_sent,
            bytes_sent=self.bytes_sent,
            packets_dropped=self.packets_dropped,
            nacks=self.nacks,
            retransmitted=self.retransmitted,
            resends_refused=self.resends_refused,
            plis=self.plis,
            rtt_seconds=sender_round_trip_time(self.sender),
            rid=self._producer.rid if self._producer is not None else None,
            switches=self.switches,
        )
