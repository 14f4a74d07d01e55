"""Relaying a publisher's packets to the SFU's worker processes over a loopback UDP pipe.

The process that holds the WHIP session copies each decrypted RTP packet and sender report
of a room into one datagram per worker that has viewers of the room (:class:`RelayLink`).
The worker feeds them to a :class:`RelaySource`: producers rebuilt from the publisher's
:class:`~sfu.producer.TrackSpec` s, so its viewers get the same keyframe cache, NACK history
and sender reports as the origin's. Keyframe requests travel back the same way.

Datagram: ``!IB`` header (channel, type) then an RTP packet, a sender report ``!IQI``
(ssrc, NTP, RTP timestamp), or the track a keyframe is asked for (``audio``, ``video``, or
``video:<rid>`` for a simulcast layer: :attr:`~sfu.producer.Producer.key`).
"""

from __future__ import annotations

import secrets
import struct
import time
from collections.abc import Callable

from .events import GoneReason
from .ingest import Ingest
from .producer import Producer, TrackSpec
from .simulcast import Layers
from .stats import SessionStats

HEADER = struct.Struct("!IB")
SENDER_REPORT = struct.Struct("!IQI")
RTP_HEADER = struct.Struct("!BBHII")
RTP, SR, PLI = 0, 1, 2

Send = Callable[[bytes], None]


class RelayLink:
    """The origin's end of one room's pipe to one worker (a publisher's relay)."""

    def __init__(self, channel: int, send: Send) -> None:
        self.channel = channel
        self._send = send
        self._rtp = HEADER.pack(channel, RTP)
        self._sr = HEADER.pack(channel, SR)

    def rtp(self, data: bytes) -> None:
        self._send(self._rtp + data)

    def sender_report(self, ssrc: int, ntp: int, rtp: int) -> None:
        self._send(self._sr + SENDER_REPORT.pack(ssrc, ntp, rtp))

    def replay_keyframe(self, producer: Producer) -> None:
        """Send the origin's cached keyframe first, so a worker's first viewer starts at once.

        Called once per producer (each simulcast layer's: the worker knows its SSRCs).
        """
        ssrc = producer.ssrc
        if ssrc is None:
            return
        for seq, ts, marker, payload, *_ in producer.keyframe_packets():
            self.rtp(RTP_HEADER.pack(0x80, marker | producer.payload_type, seq, ts, ssrc) + payload)


def keyframe_request(channel: int, kind: str) -> bytes:
    """The datagram a worker sends upstream when its viewers need a keyframe."""
    return HEADER.pack(channel, PLI) + kind.encode()


class RelaySource:
    """A room's publisher as a worker process sees it: producers fed from the pipe.

    States: open -> closed; ``live`` once the first packet arrived. It stands in for a
    :class:`~sfu.publisher.Publisher` in the worker's room (same producers, timeouts, stats).
    """

    def __init__(
        self,
        tracks: list[TrackSpec],
        *,
        keyframe_interval: float,
        request_keyframe: Callable[[str], None],
        on_closed: Callable[[RelaySource, GoneReason], None],
        on_media_started: Callable[[RelaySource], None],
    ) -> None:
        self.id = secrets.token_urlsafe(16)
        self.live = False
        self.closed = False
        self.created_at = time.monotonic()
        self.ingest = Ingest()
        self.producers = self.ingest.producers
        self._on_closed = on_closed
        self._on_media_started = on_media_started
        layered: dict[str, list[tuple[Producer, TrackSpec]]] = {}
        for spec in tracks:
            producer = Producer(
                kind=spec.kind,
                codec=spec.codec(),
                payload_type=spec.payload_type,
                audio_level_id=spec.audio_level_id,
                request_pli=_asker(request_keyframe, spec),
                on_first_packet=self._first_packet,
                keyframe_interval=keyframe_interval,
                rid=spec.rid,
            )
            producer.rtx_payload_type = spec.rtx_payload_type
            if spec.rid:
                layered.setdefault(spec.kind, []).append((producer, spec))
            else:
                self.ingest.add(producer)
        for pairs in layered.values():
            first = pairs[0][1]
            layers = Layers([p for p, _ in pairs], first.rid_id, first.rrid_id)
            for producer, spec in pairs:
                layers.seed(producer, spec.ssrc, spec.rtx_ssrc)
            self.ingest.add_layers(layers)

    def _first_packet(self, producer: Producer) -> None:
        if not self.live:
            self.live = True
            self._on_media_started(self)

    def last_media_at(self) -> float:
        return max([self.created_at, *(p.last_arrival for p in self.ingest.every())])

    async def close(self, reason: GoneReason = GoneReason.CLOSED) -> None:
        """Stop feeding the producers; the room's viewers go idle. Idempotent."""
        if self.closed:
            return
        self.closed = True
        self.ingest.clear()
        for producer in self.ingest.every():
            producer.close()
        self._on_closed(self, reason)

    def stats(self) -> SessionStats:
        return SessionStats(
            session_id=self.id,
            state="closed" if self.closed else "live" if self.live else "connecting",
            tracks=[p.stats() for p in self.ingest.every()],
        )


def _asker(request_keyframe: Callable[[str], None], spec: TrackSpec) -> Callable[[int], None]:
    key = f"{spec.kind}:{spec.rid}" if spec.rid else spec.kind

    def ask(ssrc: int) -> None:
        request_keyframe(key)

    return ask
