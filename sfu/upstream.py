"""Cascade: this node watches a show on the node that carries it, and serves its own viewers.

An :class:`Upstream` is a WHEP client peer connection (receive-only audio and video). The HTTP
exchange is the caller's (the SFU has no HTTP): it gets :meth:`Upstream.offer`, posts it to the
origin's ``/whep/{id}``, and hands the answer to :meth:`Upstream.accept`, which returns the
negotiated formats. The packets the origin sends (already rewritten for this one viewer: one
SSRC and a gapless sequence per track, whatever happens to the publisher there) then feed a
:class:`~sfu.relay.RelaySource` in a local room, exactly like a worker process's relay.
"""

from __future__ import annotations

from collections.abc import Callable

from aiortc import RTCRtpReceiver, RTCSessionDescription
from aiortc.sdp import SessionDescription

from .aiortc_hooks import (
    disable_decoding,
    dtls_transports,
    guard_against_junk,
    send_pli,
    stamp_arrivals,
    tap_rtp,
    tap_sender_reports,
)
from .candidates import IceSettings, gathering_on
from .errors import SdpError, UnsupportedMediaError
from .events import GoneReason
from .producer import TrackSpec
from .relay import RelaySource
from .rtp import AUDIO_LEVEL_URI
from .session import Session, new_peer_connection


class Upstream(Session):
    """This node's viewer session on the show's origin node.

    States: connecting -> connected -> closed (the origin ended it, or the connection failed:
    the owner of this object closes the local room then).
    """

    def __init__(self, on_closed: Callable[[Session, GoneReason], None]) -> None:
        super().__init__(new_peer_connection(), on_closed)
        self._receivers: dict[str, RTCRtpReceiver] = {}
        self._source: RelaySource | None = None
        for kind in ("audio", "video"):
            transceiver = self.pc.addTransceiver(kind, direction="recvonly")
            disable_decoding(transceiver.receiver)

    async def offer(self, ice: IceSettings) -> str:
        with gathering_on(ice.host_addresses):
            await self.pc.setLocalDescription(await self.pc.createOffer())
        sdp: str = self.pc.localDescription.sdp
        return sdp

    async def accept(self, answer: str) -> list[TrackSpec]:
        """Apply the origin's answer; the formats of the tracks it will send."""
        try:
            parsed = SessionDescription.parse(answer)
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        except ValueError as exc:
            raise SdpError(f"the origin's answer: {exc}") from None
        tracks: list[TrackSpec] = []
        for transceiver in self.pc.getTransceivers():
            media = next((m for m in parsed.media if m.rtp.muxId == transceiver.mid), None)
            if media is None or media.direction not in ("sendonly", "sendrecv"):
                continue
            codecs = media.rtp.codecs
            main = codecs[0]
            rtx = next(
                (
                    c.payloadType
                    for c in codecs[1:]
                    if c.mimeType.lower().endswith("/rtx")
                    and c.parameters.get("apt") == main.payloadType
                ),
                None,
            )
            level = next((e.id for e in media.rtp.headerExtensions if e.uri == AUDIO_LEVEL_URI), 0)
            tracks.append(
                TrackSpec(
                    kind=media.kind,
                    mime_type=main.mimeType,
                    clock_rate=main.clockRate,
                    channels=main.channels,
                    parameters=dict(main.parameters),
                    payload_type=main.payloadType or 0,
                    rtx_payload_type=rtx,
                    audio_level_id=level if media.kind == "audio" else 0,
                )
            )
            self._receivers[media.kind] = transceiver.receiver
            tap_sender_reports(transceiver.receiver, self._sender_report)
        if not tracks:
            raise UnsupportedMediaError("the origin sends no track")
        for dtls in dtls_transports(self.pc):
            guard_against_junk(dtls)
            tap_rtp(dtls, self._on_rtp)
            stamp_arrivals(dtls)
        return tracks

    def feed(self, source: RelaySource) -> None:
        self._source = source

    def request_keyframe(self, kind: str) -> None:
        """The local viewers need a keyframe: a PLI to the origin."""
        receiver = self._receivers.get(kind)
        producer = self._source.producers.get(kind) if self._source is not None else None
        if receiver is not None and producer is not None and producer.ssrc is not None:
            self.spawn(send_pli(receiver, producer.ssrc))

    def _on_rtp(self, data: bytes) -> None:
        if self._source is not None:
            self._source.ingest.rtp(data)

    def _sender_report(self, ssrc: int, ntp: int, rtp: int) -> None:
        if self._source is not None:
            self._source.ingest.sender_report(ssrc, ntp, rtp)

    def _release(self) -> None:
        self._source = None
