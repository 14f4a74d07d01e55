"""The WHEP side: one viewer's peer connection and its consumers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcrtpparameters import RTCRtpSendParameters
from av.frame import Frame

from .aiortc_hooks import dtls_transports, guard_against_junk, hook_sender
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

    @classmethod
    async def negotiate(
        cls,
        offer: Offer,
        producers: Mapping[str, Producer],
        ice: IceSettings,
        *,
        on_closed: Callable[[Session, GoneReason], None],
    ) -> tuple[Subscriber, str]:
        """Answer a validated WHEP offer with the room's current producers' codecs."""
        plan: list[Producer | None] = []
        for section in offer.media:
            producer = producers.get(section.kind)
            if producer is not None and section.direction in ("recvonly", "sendrecv"):
                if not accepts(section, producer.codec):
                    raise UnsupportedMediaError(
                        f"viewer cannot receive {producer.codec.mimeType} in {section.mid!r}"
                    )
                plan.append(producer)
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

    async def _answer(self, offer: Offer, plan: list[Producer | None], ice: IceSettings) -> str:
        pc = self.pc
        for section, producer in zip(offer.media, plan, strict=True):
            if producer is None:
                pc.addTransceiver(section.kind, direction="inactive")
                continue
            transceiver = pc.addTransceiver(IdleTrack(section.kind), direction="sendonly")
            transceiver.setCodecPreferences(preferences(section, producer.codec))
            consumer = Consumer(
                kind=section.kind,
                codec=producer.codec,
                sender=transceiver.sender,
                egress=self.egress,
            )
            consumer.bind(producer)
            hook_sender(
                transceiver.sender,
                on_started=self._starter(consumer),
                on_nack=consumer.retransmit,
                on_keyframe_request=consumer.request_keyframe,
            )
            self.consumers[section.kind] = consumer
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

    def rebind(self, producers: Mapping[str, Producer]) -> None:
        """Follow a new publisher; a track whose codec changed cannot follow and is closed."""
        for kind, consumer in self.consumers.items():
            producer = producers.get(kind)
            if producer is not None and not _same_codec(consumer, producer):
                consumer.close()
            else:
                consumer.bind(producer)

    def _release(self) -> None:
        for consumer in self.consumers.values():
            consumer.close()
        self.egress.close()

    @property
    def packets_dropped(self) -> int:
        return sum(c.packets_dropped for c in self.consumers.values())

    def stats(self) -> SessionStats:
        return SessionStats(
            session_id=self.id,
            state=self.state.value,
            tracks=[c.stats() for c in self.consumers.values()],
        )


def _same_codec(consumer: Consumer, producer: Producer) -> bool:
    return (
        consumer.codec.mimeType.lower() == producer.codec.mimeType.lower()
        and consumer.codec.parameters == producer.codec.parameters
    )
