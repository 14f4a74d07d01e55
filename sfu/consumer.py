"""One viewer's copy of one track: header rewriting, NACK history, keyframe gating."""

from __future__ import annotations

import enum
import random
import struct
import time
from typing import TYPE_CHECKING, Any

from aiortc import RTCRtpCodecCapability, RTCRtpSender
from aiortc.rtcrtpparameters import RTCRtpSendParameters

from .aiortc_hooks import (
    SRTP_MAX_TRAILER_LEN,
    sender_round_trip_time,
    set_sender_report_basis,
    srtp_ffi,
    srtp_protect_in_place,
)
from .egress import Egress, drop
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
MAX_PLAINTEXT = 1500
_PT_SEQ_TS = struct.Struct("!BHI")  # second byte (marker | payload type), seq, timestamp
_pack_pt_seq_ts = _PT_SEQ_TS.pack_into
_WORD = struct.Struct("!I")
_pack_word = _WORD.pack_into
PADDING_SIZE = 255  # bytes of padding per probe packet (RFC 3550 allows at most 255)
_PADDING = bytes(PADDING_SIZE - 1) + bytes([PADDING_SIZE])  # the count ends the padding
_pack_seq_ts = struct.Struct("!HI").pack_into

# One scratch buffer for every consumer of the process: each packet is rendered, protected
# in place and handed to the kernel before the next one is (the event loop is single-threaded
# and ``sendto`` copies), so a viewer needs no buffer of its own. One buffer stays hot in the
# CPU cache, where a buffer per viewer (1.6 kB each) is cold at every packet of the fan-out.
_BUFFER = srtp_ffi.new("char[]", MAX_PLAINTEXT + SRTP_MAX_TRAILER_LEN)
_VIEW = memoryview(srtp_ffi.buffer(_BUFFER))
_LENGTH = srtp_ffi.new("int *")
# ``_SENDABLE[n]`` is ``_VIEW[:n]``, made once per length: slicing per packet and viewer
# allocated a memoryview each time.
_SENDABLE: list[memoryview | None] = [None] * (len(_VIEW) + 1)


def _sendable(length: int) -> memoryview:
    view = _SENDABLE[length]
    if view is None:
        view = _SENDABLE[length] = _VIEW[:length]
    return view


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

    # Slots: the hot path reads a dozen attributes per packet; slots make each read cheaper.
    __slots__ = (
        "_address",
        "_anchor_seq",
        "_clock_rate",
        "_context",
        "_ext_pos",
        "_ext_word",
        "_gate",
        "_header",
        "_header_length",
        "_history",
        "_last_seq",
        "_last_time",
        "_last_ts",
        "_mask",
        "_nacked",
        "_padding",
        "_pending",
        "_pic_off",
        "_producer",
        "_pt",
        "_retime",
        "_rtx_credit",
        "_rtx_pt",
        "_rtx_seq",
        "_sendto",
        "_seq_off",
        "_session",
        "_started",
        "_tl0_off",
        "_ts_off",
        "_wait_key",
        "bytes_sent",
        "codec",
        "kind",
        "losses",
        "nacks",
        "packets_dropped",
        "packets_sent",
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
        self._header_length = 12
        self._session: Any = None
        self._context: Any = None
        self._sendto: Any = drop
        self._address: tuple[str, int] = ("", 0)
        self._clock_rate = codec.clockRate
        self._producer: Producer | None = None
        self._started = False
        # Rewriting state (set when the sender starts, see start()).
        self._header = bytes(12)
        self._pt = 0
        self._ext_pos = 0  # audio level (audio) or abs-send-time (video) element, 0: none
        self._ext_word = 0  # the abs-send-time element's id/length byte, shifted into place
        self._padding = b""  # an RTX padding packet's header, for bandwidth probes
        self._pending: Producer | None = None  # the layer this consumer switches to
        self._pic_off = self._tl0_off = 0  # VP8 picture id and TL0PICIDX shifts (switches)
        self._rtx_pt: int | None = None
        self._rtx_seq = random.randrange(0x8000)  # noqa: S311 - not security sensitive
        # Gate: closed until the next packet that may start this consumer's stream.
        self._gate = True
        self._wait_key = kind == "video"
        self._retime = True
        self._seq_off = 0
        self._ts_off = 0
        self._anchor_seq = 0
        # Start low in the sequence space: SRTP indexes break on an early wrap (as aiortc).
        self._last_seq = random.randrange(0x8000)  # noqa: S311
        self._last_ts = random.randrange(1 << 32)  # noqa: S311
        self._last_time: float | None = None
        size = VIDEO_HISTORY if kind == "video" else AUDIO_HISTORY
        self._history: list[Entry | None] = [None] * size
        self._nacked: list[Entry | None] = [None] * size  # what each slot was NACKed for
        self._mask = size - 1
        # Counters.
        self.packets_sent = self.bytes_sent = self.packets_dropped = 0
        self.nacks = self.retransmitted = self.plis = 0
        self.padding_sent = self.switches = 0
        self.losses = 0  # distinct packets NACKed (a viewer repeats a NACK until repaired)
        self._rtx_credit: tuple[int, float] = (0, RTX_BURST)  # (bytes_sent then, bytes owed)
        self.resends_refused = 0
        self.waiting_since = 0.0  # when it last started waiting for a keyframe (monotonic)
        egress.attach(self)

    def route(self, egress: Egress) -> None:
        """Copy the subscriber's route: the hot path then reads only our own attributes."""
        # Holding the pylibsrtp session keeps the raw libsrtp context below valid.
        self._session = egress.session
        self._context = egress.context
        self._sendto = egress.sendto
        self._address = egress.address

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
        self._pt = (codec.payloadType or 0) & 0x7F
        for candidate in parameters.codecs:
            if candidate.mimeType.lower().endswith("/rtx") and (
                candidate.parameters.get("apt") == codec.payloadType
            ):
                self._rtx_pt = candidate.payloadType
        extension_ids = {ext.uri: ext.id for ext in parameters.headerExtensions}
        header, self._ext_pos = header_template(
            self.ssrc, self._pt, extension_ids, parameters.muxId, self.kind
        )
        self._header = bytes(header)
        self._header_length = len(header)
        if self.kind == "video" and self._ext_pos:
            self._ext_word = header[self._ext_pos] << 24
        if self._rtx_pt is not None and self._ext_pos:
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
        self._gate = self._retime = True
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
        # Both layers' clocks at one instant: the new layer's timestamps, shifted onto ours.
        ts_off = (
            self._ts_off + old.clock_mapping(now)[1] - target.clock_mapping(now)[1]
        ) & 0xFFFFFFFF
        last_out = (old.last_ts + self._ts_off) & 0xFFFFFFFF
        step = ((entry[1] + ts_off) - last_out) & 0xFFFFFFFF
        if step == 0 or step >= 0x80000000:  # never backwards, never the previous frame's
            ts_off = (ts_off + 1 - step) & 0xFFFFFFFF
        self._ts_off = ts_off
        picture = entry[6]
        if picture is not None:
            self._continue_picture(old, picture, entry[3])
        self._seq_off = (self._last_seq + 1 - entry[0]) & 0xFFFF
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
        mask = (1 << bits) - 1
        last = (old.last_picture + self._pic_off) & mask
        self._pic_off = (last + 1 - number) & mask
        if tl0_at:
            last_tl0 = (old.last_tl0 + self._tl0_off) & 0xFF
            self._tl0_off = (last_tl0 + 1 - payload[tl0_at]) & 0xFF

    def _renumber(self, view: Any, start: int, picture: tuple[int, int, int, int]) -> None:
        """Write the shifted picture id and TL0PICIDX into the payload at ``view[start:]``."""
        at, bits, number, tl0_at = picture
        if bits == 15:
            shifted = (number + self._pic_off) & 0x7FFF
            view[start + at] = 0x80 | shifted >> 8
            view[start + at + 1] = shifted & 0xFF
        else:
            view[start + at] = (number + self._pic_off) & 0x7F
        if tl0_at:
            view[start + tl0_at] = (view[start + tl0_at] + self._tl0_off) & 0xFF

    def send_padding(self, count: int) -> int:
        """Send ``count`` RTX padding packets (a bandwidth probe); returns how many went."""
        header, producer = self._padding, self._producer
        if not header or self._context is None or self.closed:
            return 0
        start = len(header)
        end = start + PADDING_SIZE
        ts = self._last_ts if producer is None else (producer.last_ts + self._ts_off) & 0xFFFFFFFF
        sent = 0
        for _ in range(count):
            _VIEW[:start] = header
            _pack_seq_ts(_VIEW, 2, self._rtx_seq, ts)
            _pack_word(_VIEW, self._ext_pos, self._ext_word | abs_send_time(time.monotonic()))
            _VIEW[start:end] = _PADDING
            self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
            _LENGTH[0] = end
            if srtp_protect_in_place(self._context, _BUFFER, _LENGTH):
                break
            try:
                self._sendto(_sendable(_LENGTH[0]), self._address)
            except OSError:
                break
            sent += 1
        self.padding_sent += sent
        return sent

    def _remember_position(self, producer: Producer) -> None:
        if self.state is ConsumerState.FORWARDING:
            self._last_ts = (producer.last_ts + self._ts_off) & 0xFFFFFFFF
            self._last_time = producer.last_arrival

    def await_keyframe(self, last_ts: int) -> None:
        """Hold packets until the next keyframe (after a cached keyframe was replayed)."""
        self._gate = self._wait_key = self._retime = True
        self._last_ts = (last_ts + self._ts_off) & 0xFFFFFFFF
        self._last_time = self.waiting_since = time.monotonic()
        self.state = ConsumerState.WAITING_KEYFRAME

    def _open_gate(self, seq: int, ts: int, key: bool) -> bool:
        if self._wait_key and not key:
            return False
        self._gate = self._wait_key = False
        self._seq_off = (self._last_seq + 1 - seq) & 0xFFFF
        if self._retime:
            # Continue the viewer's timeline by the wall time that passed since its last packet.
            self._retime = False
            ticks = 0
            if self._last_time is not None:
                ticks = max(1, int((time.monotonic() - self._last_time) * self._clock_rate))
            self._ts_off = (self._last_ts + ticks - ts) & 0xFFFFFFFF
        self._anchor_seq = seq
        self.state = ConsumerState.FORWARDING
        self.refresh_sender_report(time.monotonic())  # no sender report without a clock
        return True

    def forward(self, entry: Entry) -> None:
        """Rewrite one publisher packet for this viewer and send it (the hot path)."""
        if self._gate and not self._open_gate(entry[0], entry[1], entry[4]):
            return
        seq, ts, marker, payload, _, level, picture = entry
        out_seq = (seq + self._seq_off) & 0xFFFF
        # History holds the shared input entry: a NACK re-renders it, nothing is copied here.
        self._history[out_seq & self._mask] = entry
        self._last_seq = out_seq
        start = self._header_length
        end = start + len(payload)
        if end <= MAX_PLAINTEXT:
            view = _VIEW
            view[:start] = self._header
            _pack_pt_seq_ts(view, 1, self._pt | marker, out_seq, (ts + self._ts_off) & 0xFFFFFFFF)
            if level >= 0 and self._ext_pos:
                if self._ext_word:
                    _pack_word(view, self._ext_pos, self._ext_word | level)
                else:
                    view[self._ext_pos + 1] = level
            view[start:end] = payload
            if picture is not None and (self._pic_off or self._tl0_off):
                self._renumber(view, start, picture)
            _LENGTH[0] = end
            if not srtp_protect_in_place(self._context, _BUFFER, _LENGTH):
                packet = _SENDABLE[_LENGTH[0]] or _sendable(_LENGTH[0])
                try:
                    self._sendto(packet, self._address)
                    self.packets_sent += 1
                    self.bytes_sent += end - start
                    return
                except OSError:  # BlockingIOError: socket buffer full; others: socket gone
                    pass
        self.packets_dropped += 1

    def _send_packet(self, packet: bytes) -> bool:
        """Protect and send a whole plaintext packet (retransmissions)."""
        size = len(packet)
        if size > MAX_PLAINTEXT or self._context is None:
            return False
        _VIEW[:size] = packet
        _LENGTH[0] = size
        if srtp_protect_in_place(self._context, _BUFFER, _LENGTH):
            return False
        try:
            self._sendto(_sendable(_LENGTH[0]), self._address)
        except OSError:
            return False
        return True

    def repair(self, entry: Entry) -> None:
        """A packet the publisher retransmitted: send it if it belongs to our stream."""
        seq = entry[0]
        if self._gate or (seq - self._anchor_seq) & 0xFFFF >= 0x8000:
            return
        out_seq = (seq + self._seq_off) & 0xFFFF
        self._history[out_seq & self._mask] = entry
        if self._send_packet(self._render(entry)):
            self.retransmitted += 1

    def _render(self, entry: Entry) -> bytes:
        """The plaintext packet this consumer sends for ``entry``, at the current offsets."""
        seq, ts, marker, payload, _, level, picture = entry
        header = bytearray(self._header)
        out_seq, out_ts = (seq + self._seq_off) & 0xFFFF, (ts + self._ts_off) & 0xFFFFFFFF
        _PT_SEQ_TS.pack_into(header, 1, self._pt | marker, out_seq, out_ts)
        if self._ext_word:
            _WORD.pack_into(header, self._ext_pos, self._ext_word | abs_send_time(time.monotonic()))
        elif level >= 0 and self._ext_pos:
            header[self._ext_pos + 1] = level
        if picture is not None and (self._pic_off or self._tl0_off):
            body = bytearray(payload)
            self._renumber(body, 0, picture)
            return b"".join((header, body))
        return b"".join((header, payload))

    def retransmit(self, seq: int) -> None:
        """The viewer NACKed ``seq``: resend it from history (as RTX if negotiated)."""
        self.nacks += 1
        slot = seq & self._mask
        entry = self._history[slot]
        if entry is None or (entry[0] + self._seq_off) & 0xFFFF != seq:
            return  # too old, or sent before the consumer re-anchored
        if self._nacked[slot] is entry:
            return  # resent once already: on a saturated link resending again feeds the loss
        self._nacked[slot] = entry
        self.losses += 1
        packet = self._render(entry)
        counted, credit = self._rtx_credit
        credit = min(RTX_BURST, credit + (self.bytes_sent - counted) * RTX_SHARE)
        if credit < len(packet):
            self._rtx_credit = (self.bytes_sent, credit)
            self.resends_refused += 1
            return
        self._rtx_credit = (self.bytes_sent, credit - len(packet))
        if self._rtx_pt is not None:
            packet = rtx_wrap(packet, self._rtx_pt, self._rtx_seq, self.sender._rtx_ssrc)
            self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
        if self._send_packet(packet):
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
        set_sender_report_basis(
            self.sender,
            ntp,
            (rtp + self._ts_off) & 0xFFFFFFFF,
            self.packets_sent & 0xFFFFFFFF,
            self.bytes_sent & 0xFFFFFFFF,
        )

    def close(self) -> None:
        """Stop forwarding to this viewer. Idempotent."""
        if self.closed:
            return
        self._cancel_switch()
        producer, self._producer = self._producer, None
        self.state = ConsumerState.CLOSED
        self._history = [None] * len(self._history)
        self._sendto = drop  # a late packet is dropped; the libsrtp context stays valid
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
