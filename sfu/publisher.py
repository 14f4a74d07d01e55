"""The WHIP side: one publisher peer connection and its producers."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiortc import (
    RTCPeerConnection,
    RTCRtpCodecCapability,
    RTCRtpReceiver,
    RTCSessionDescription,
)
from aiortc.sdp import MediaDescription, SessionDescription

from .aiortc_hooks import (
    disable_decoding,
    dtls_transports,
    guard_against_junk,
    nominated_pairs,
    raw_socket,
    receive_layers,
    send_pli,
    stamp_arrivals,
    tap_rtp,
    tap_sender_reports,
)
from .candidates import IceSettings, announce, gathering_on
from .dtls_role import take_answering_role
from .errors import UnsupportedMediaError
from .events import GoneReason
from .ingest import Ingest
from .offer import MediaSection, Offer, choose_publisher_codec, preferences
from .producer import Producer
from .rtp import AUDIO_LEVEL_URI
from .session import Session, SessionState, new_peer_connection
from .simulcast import REPAIRED_RID_URI, RID_URI, Layers, answer_simulcast
from .stats import SessionStats

INGEST_RECEIVE_BUFFER = 4 * 1024 * 1024


@dataclass(frozen=True)
class PublishOptions:
    """What a publisher needs from the SFU's settings."""

    ice: IceSettings
    keyframe_interval: float


@dataclass(frozen=True)
class PublishedTrack:
    """One track a publisher sends, as a recorder needs it."""

    kind: str
    codec: str  # RTP encoding name: H264, VP8, opus
    payload_type: int
    clock_rate: int
    rids: tuple[str, ...] = ()  # a simulcast video track's layers, as offered, smallest first


class Publisher(Session):
    """The WHIP peer connection of a room, with one Producer per received track.

    States: connecting -> connected -> closed; ``live`` once the first RTP packet arrived.
    Closing it closes its producers (their consumers go idle, they are not closed).
    """

    def __init__(
        self,
        pc: RTCPeerConnection,
        *,
        on_closed: Callable[[Session, GoneReason], None],
        on_media_started: Callable[[Publisher], None],
    ) -> None:
        super().__init__(pc, on_closed)
        self.ingest = Ingest()
        self.producers = self.ingest.producers
        self.live = False
        self.created_at = time.monotonic()
        self._on_media_started = on_media_started
        self._receivers: dict[str, RTCRtpReceiver] = {}

    @classmethod
    async def negotiate(
        cls,
        offer: Offer,
        options: PublishOptions,
        *,
        on_closed: Callable[[Session, GoneReason], None],
        on_media_started: Callable[[Publisher], None],
    ) -> tuple[Publisher, str]:
        """Answer a validated WHIP offer; codecs are checked before any connection exists."""
        kinds = [section.kind for section in offer.media]
        if len(set(kinds)) != len(kinds):
            raise UnsupportedMediaError("a publisher sends at most one audio and one video track")
        for section in offer.media:
            if section.direction not in ("sendonly", "sendrecv"):
                raise UnsupportedMediaError(f"section {section.mid!r} sends nothing")
        chosen = [choose_publisher_codec(section) for section in offer.media]
        publisher = cls(
            new_peer_connection(), on_closed=on_closed, on_media_started=on_media_started
        )
        try:
            answer = await publisher._answer(offer, chosen, options)
        except BaseException:
            await publisher.close()
            raise
        return publisher, answer

    async def _answer(
        self, offer: Offer, chosen: list[RTCRtpCodecCapability], options: PublishOptions
    ) -> str:
        pc = self.pc
        for section, codec in zip(offer.media, chosen, strict=True):
            transceiver = pc.addTransceiver(section.kind, direction="recvonly")
            transceiver.setCodecPreferences(preferences(section, codec))
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer.sdp, type="offer"))
        # BUNDLE has merged the transports by now; hook before any packet can arrive.
        for dtls in dtls_transports(pc):
            guard_against_junk(dtls)
            tap_rtp(dtls, self.ingest.rtp)
            stamp_arrivals(dtls)
        take_answering_role(pc, offer.sdp)
        with gathering_on(options.ice.host_addresses):
            await pc.setLocalDescription(await pc.createAnswer())
        self._remote_ufrag = offer.ice_ufrag
        sdp = pc.localDescription.sdp
        answer = SessionDescription.parse(sdp)
        for section, transceiver, codec in zip(
            offer.media, pc.getTransceivers(), chosen, strict=True
        ):
            media = next(m for m in answer.media if m.rtp.muxId == transceiver.mid)
            self._add_track(transceiver.receiver, section, media, codec, options)
            if section.rids:
                sdp = answer_simulcast(sdp, section.mid, section.rids, section.extension_ids)
        return announce(sdp, options.ice.host_addresses, options.ice.announced_address)

    def _add_track(
        self,
        receiver: RTCRtpReceiver,
        section: MediaSection,
        media: MediaDescription,
        codec: RTCRtpCodecCapability,
        options: PublishOptions,
    ) -> None:
        rtp, kind = media.rtp, media.kind
        level_id = next((e.id for e in rtp.headerExtensions if e.uri == AUDIO_LEVEL_URI), 0)
        main = rtp.codecs[0].payloadType or 0
        rtx_pt = next(
            (
                c.payloadType
                for c in rtp.codecs[1:]
                if c.mimeType.lower().endswith("/rtx") and c.parameters.get("apt") == main
            ),
            None,
        )
        producers = [
            Producer(
                kind=kind,
                codec=codec,
                payload_type=main,
                audio_level_id=level_id if kind == "audio" else 0,
                request_pli=lambda ssrc: self.spawn(send_pli(receiver, ssrc)),
                on_first_packet=self._first_packet,
                keyframe_interval=options.keyframe_interval,
                rid=rid,
            )
            for rid in section.rids or (None,)
        ]
        for producer in producers:
            producer.rtx_payload_type = rtx_pt
        if section.rids:
            ids = section.extension_ids
            layers = Layers(producers, ids[RID_URI], ids.get(REPAIRED_RID_URI, 0))
            self.ingest.add_layers(layers)
            receive_layers(
                receiver,
                payload_type=main,
                rtx_payload_type=rtx_pt,
                clock_rate=codec.clockRate,
                media_ssrc=layers.media_ssrc,
            )
        else:
            self.ingest.add(producers[0])
        disable_decoding(receiver)
        tap_sender_reports(receiver, self.ingest.sender_report)
        self._receivers[kind] = receiver

    def tracks(self) -> list[PublishedTrack]:
        return [
            PublishedTrack(
                p.kind,
                p.codec.mimeType.split("/")[1],
                p.payload_type,
                p.clock_rate,
                layers.rids if (layers := self.ingest.layers.get(p.kind)) else (),
            )
            for p in self.producers.values()
        ]

    def tap(self, listener: Callable[[str, bytes], None] | None) -> None:
        """Also hand each track's RTP packets, as received, to ``listener(kind, packet)``.

        For the recorder: it reads the same packets the viewers get, and costs nothing when
        there is no listener (the routes are rebuilt rather than checked per packet).
        """
        for kind, producer in self.producers.items():
            layers = self.ingest.layers.get(kind)
            if layers is not None:
                layers.tap(listener)
                continue
            receive = producer.receive
            self.ingest.route(
                producer.payload_type,
                receive if listener is None else _teed(receive, kind, listener),
            )

    def tap_layer(self, rid: str, listener: Callable[[str, bytes], None] | None) -> bool:
        """Also hand the packets of video layer ``rid`` to ``listener``; False if none."""
        layers = self.ingest.layers.get("video")
        return layers is not None and layers.tap_layer(rid, listener)

    def _first_packet(self, producer: Producer) -> None:
        if not self.live:
            self.live = True
            self._enlarge_receive_buffers()
            self._on_media_started(self)

    def _enlarge_receive_buffers(self) -> None:
        """Let the ingest socket absorb a keyframe while the loop fans the previous one out.

        A 100-viewer fan-out of one packet takes ~2 ms, a keyframe is ~50 packets: with the
        default ~200 KiB buffer the publisher's packets were dropped in bursts. The kernel
        caps the request at net.core.rmem_max.
        """
        for dtls in dtls_transports(self.pc):
            pair = nominated_pairs(dtls).get(1)
            if pair is not None:
                with contextlib.suppress(OSError):
                    sock = raw_socket(pair.protocol.transport)
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, INGEST_RECEIVE_BUFFER)

    def last_media_at(self) -> float:
        """Monotonic time of the newest packet (or of the session's creation)."""
        return max([self.created_at, *(p.last_arrival for p in self.ingest.every())])

    def _release(self) -> None:
        self.ingest.clear()
        for producer in self.ingest.every():
            producer.close()

    def stats(self) -> SessionStats:
        return SessionStats(
            session_id=self.id,
            state="live" if self.live and not self.closed else self.state.value,
            tracks=[p.stats() for p in self.ingest.every()],
        )


def _teed(
    receive: Callable[[bytes], None], kind: str, listener: Callable[[str, bytes], None]
) -> Callable[[bytes], None]:
    def both(data: bytes) -> None:
        receive(data)
        listener(kind, data)

    return both


__all__ = ["PublishOptions", "Publisher", "SessionState"]
