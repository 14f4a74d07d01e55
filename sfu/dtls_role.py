"""The DTLS role the SFU takes in an answer: passive (the DTLS server) whenever it may choose.

An offer's ``a=setup`` is ``actpass`` (either role), ``active`` (the offerer will be the DTLS
client) or ``passive``; the answer takes the other role, or either for ``actpass`` (RFC 8842).
Left alone, aiortc answers ``actpass`` with ``active``, so the client becomes the DTLS server;
aiortc's DTLS client offers only ECDHE-ECDSA cipher suites, and a server with an RSA
certificate, such as GStreamer's webrtcbin, fails with "no shared cipher" (issue 15). As the
server the SFU uses its own ECDSA certificate with TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
which every WebRTC endpoint must support (RFC 8827). RFC 5763 recommends ``active`` so that
DTLS can start before the answer arrives; here DTLS waits for ICE, which cannot connect before
the client has the answer and our candidates, so ``passive`` costs no round trip. A passive
offer is answered ``active`` explicitly: aiortc would otherwise pick the role from the ICE
role at connection time, which contradicts the answer if the offerer is ICE-lite.
"""

from __future__ import annotations

from typing import Literal

from aiortc import RTCDtlsTransport, RTCPeerConnection
from aiortc.sdp import SessionDescription

from .aiortc_hooks import set_dtls_role

# aiortc's names: "auto" is actpass, "client" is active, "server" is passive.
DtlsRole = Literal["client", "server"]
_ANSWERED: dict[str, DtlsRole] = {"auto": "server", "client": "server", "server": "client"}


def answering_roles(offer_sdp: str) -> dict[str, DtlsRole]:
    """The role the SFU answers with, per ``a=mid`` of the offer's audio and video sections."""
    description = SessionDescription.parse(offer_sdp)
    return {
        media.rtp.muxId: _ANSWERED[media.dtls.role]
        for media in description.media
        if media.kind in ("audio", "video") and media.dtls is not None and media.dtls.role
    }


def take_answering_role(pc: RTCPeerConnection, offer_sdp: str) -> None:
    """Set each DTLS transport's role for the answer, between setting the offer and answering.

    A bundled transport takes the role of the first section on it (the offer repeats one
    ``a=setup`` in every section anyway).
    """
    roles = answering_roles(offer_sdp)
    done: list[RTCDtlsTransport] = []
    for transceiver in pc.getTransceivers():
        dtls = transceiver.receiver.transport
        role = roles.get(transceiver.mid or "")
        if role is not None and dtls not in done:
            set_dtls_role(dtls, role)
            done.append(dtls)
