"""The WHEP side: one viewer's peer connection and its consumers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence

from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcrtpparameters import RTCRtpSendParameters
from av.frame import Frame

from .adaptation import Adaptation
from .aiortc_hooks import dtls_transports, guard_against_junk, hook_feedback, hook_sender
from .candidates import IceSettings, announce, gathering_on
from .consumer import Consumer
from .dtls_role import take_answering_role
from .egress import Egress
from .errors import UnsupportedMediaError
from .events import GoneReason
from .offer import Offer, accepts, preferences
from .producer import Producer
from .session import Session, new_peer_connection
from .stats import SessionStats


class IdleTrack(MediaStreamTrack):
    """A track whose ``recv()`` never returns.

    A viewer's RTCRtpSender runs an RTP loop that pulls frames from its track to encode them;
    ours is parked here forever (cancelled when the sender stops), while the sender's RTCP
    loop keeps sending reports and BYE. Media goes around it, see :class:`Consumer`.
    """

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    async def recv(self) -> Frame:
        await asyncio.get_running_loop().create_future()
        raise AssertionError("unreachable")


class Subscriber(Session):
    """A WHEP viewer's peer connection, with one Consumer per track it plays.

    States: connecting -> connected -> closed. Closing it closes its consumers.
    """

    def __init__(
        self,
        pc: RTCPeerConnection,
        *,
        on_closed: Callable[[Session, GoneReason], None],
    ) -> None:
        super().__init__(pc, on_closed)
        self.egress = Egress()
        self.consumers: dict[str, Consumer] = {}
        self.adaptation: Adaptation | None = None  # of the video consumer

    @classmethod
    async def negotiate(
        cls,
        offer: Offer,
        tracks: Mapping[str, Sequence[Producer]],
        ice: IceSettings,
        *,
        on_closed: Callable[[Session, GoneReason], None],
    ) -> tuple[Subscriber, str]:
        """Answer a validated WHEP offer with the room's current tracks' codecs.

        ``tracks`` maps each kind to its producers: one, or a simulcast track's layers.
        """
        plan: list[Sequence[Producer] | None] = []
        for section in offer.media:
            layers = tracks.get(section.kind)
            if layers and section.direction in ("recvonly", "sendrecv"):
                codec = layers[0].codec
                if not accepts(section, codec):
                    raise UnsupportedMediaError(
                        f"viewer cannot receive {codec.mimeType} in {section.mid!r}"
                    )
                plan.append(layers)
            else:
                plan.append(None)
        if not any(plan):
            raise UnsupportedMediaError("the viewer receives none of the room's tracks")
        subscriber = cls(new_peer_connection(), on_closed=on_closed)
        try:
            answer = await subscriber._answer(offer, plan, ice)
        except BaseException:
            await subscriber.close()
            raise
        return subscriber, answer

    async def _answer(
        self, offer: Offer, plan: list[Sequence[Producer] | None], ice: IceSettings
    ) -> str:
        pc = self.pc
        for section, layers in zip(offer.media, plan, strict=True):
            if layers is None:
                pc.addTransceiver(section.kind, direction="inactive")
                continue
            codec = layers[0].codec
            transceiver = pc.addTransceiver(IdleTrack(section.kind), direction="sendonly")
            transceiver.setCodecPreferences(preferences(section, codec))
            consumer = Consumer(
                kind=section.kind, codec=codec, sender=transceiver.sender, egress=self.egress
            )
            consumer.bind(_lowest(layers))
            hook_sender(
                transceiver.sender,
                on_started=self._starter(consumer),
                on_nack=consumer.retransmit,
                on_keyframe_request=consumer.request_keyframe,
            )
            if section.kind == "video":
                self.adaptation = adaptation = Adaptation(consumer, layers)
                hook_feedback(
                    transceiver.sender,
                    on_remb=adaptation.on_remb,
                    on_report=adaptation.on_report,
                    on_rtx_report=adaptation.on_probe_report,
                )
            self.consumers[section.kind] = consumer
        if self.adaptation is not None:
            video = self.adaptation.consumer
            self.adaptation.companions = tuple(c for c in self.consumers.values() if c is not video)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer.sdp, type="offer"))
        for dtls in dtls_transports(pc):
            guard_against_junk(dtls)
        take_answering_role(pc, offer.sdp)
        with gathering_on(ice.host_addresses):
            await pc.setLocalDescription(await pc.createAnswer())
        self._remote_ufrag = offer.ice_ufrag
        return announce(pc.localDescription.sdp, ice.host_addresses, ice.announced_address)

    def _starter(self, consumer: Consumer) -> Callable[[RTCRtpSendParameters], None]:
        def start(parameters: RTCRtpSendParameters) -> None:
            # aiortc calls send() once DTLS is connected: the SRTP keys exist now.
            if self.closed:
                return
            self.egress.bind(consumer.sender.transport)
            consumer.start(parameters)

        return start

    def rebind(self, tracks: Mapping[str, Sequence[Producer]]) -> None:
        """Follow a new publisher; a track whose codec changed cannot follow and is closed."""
        for kind, consumer in self.consumers.items():
            layers = tracks.get(kind) or ()
            producer = _lowest(layers) if layers else None
            if producer is not None and not _same_codec(consumer, producer):
                consumer.close()
                continue
            consumer.bind(producer)
            adaptation = self.adaptation
            if adaptation is not None and adaptation.consumer is consumer:
                adaptation.follow(layers)

    def adapt(self, now: float) -> None:
        """Let the video follow the viewer's link (a simulcast publisher's layers)."""
        if self.adaptation is not None:
            self.adaptation.tick(now)

    def _release(self) -> None:
        if self.adaptation is not None:
            self.adaptation.stop_probe()
        for consumer in self.consumers.values():
            consumer.close()
        self.egress.close()

    @property
    def packets_dropped(self) -> int:
        return sum(c.packets_dropped for c in self.consumers.values())

    def stats(self) -> SessionStats:
        tracks = [c.stats() for c in self.consumers.values()]
        adaptation = self.adaptation
        if adaptation is not None and len(adaptation.layers) > 1:
            for track in tracks:
                if track.kind == "video":
                    track.available_bps = adaptation.estimator.estimate
        return SessionStats(session_id=self.id, state=self.state.value, tracks=tracks)


def _lowest(layers: Sequence[Producer]) -> Producer:
    """Where a viewer starts: the smallest picture among the layers that send (the first
    offered before sizes are known); it moves up as soon as its link shows it can."""
    now = time.monotonic()
    sending = [p for p in layers if p.ssrc is not None and now - p.last_arrival < 1.0]
    return min(sending or layers, key=lambda p: (p.width or 0) * (p.height or 0))


def _same_codec(consumer: Consumer, producer: Producer) -> bool:
    return (
        consumer.codec.mimeType.lower() == producer.codec.mimeType.lower()
        and consumer.codec.parameters == producer.codec.parameters
    )
