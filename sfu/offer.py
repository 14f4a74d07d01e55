"""Check an SDP offer and pick the codecs of the answer, before any peer connection exists."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiortc import RTCRtpCodecCapability, RTCRtpCodecParameters, RTCRtpReceiver
from aiortc.rtcpeerconnection import is_codec_compatible
from aiortc.sdp import SessionDescription

from .candidates import strip_mdns_candidates
from .errors import SdpError, UnsupportedMediaError
from .simulcast import RID_URI, offered_rids

MAX_SDP_BYTES = 64 * 1024
# H.264 first: every browser and phone sends it, and the recorder can remux it (DESIGN.md #3).
# Constrained baseline before baseline: the profile every decoder supports.
_VIDEO_ORDER = (
    ("video/h264", "42e01f"),
    ("video/h264", "42001f"),
    ("video/h264", "640c1f"),
    ("video/h264", "4d001f"),
    ("video/h264", "64001f"),
    ("video/vp8", None),
)
_AUDIO_ORDER = (("audio/opus", None),)


@dataclass(frozen=True)
class MediaSection:
    """One audio or video m-line of an offer."""

    kind: str
    mid: str
    direction: str
    codecs: tuple[RTCRtpCodecParameters, ...]
    extension_ids: dict[str, int] = field(default_factory=dict)  # header extension URI -> id
    rids: tuple[str, ...] = ()  # simulcast layers a video section sends, in offer order

    @property
    def offers_rtx(self) -> bool:
        return any(codec.mimeType.lower().endswith("/rtx") for codec in self.codecs)


@dataclass(frozen=True)
class Offer:
    """A validated offer: its SDP (mDNS candidates removed) and its media sections."""

    sdp: str
    media: tuple[MediaSection, ...]
    ice_ufrag: str | None


def parse_offer(text: str) -> Offer:
    """Validate ``text`` as a WebRTC offer; raise :class:`SdpError` if it is not one."""
    if not isinstance(text, str) or len(text) > MAX_SDP_BYTES:
        raise SdpError("offer must be an SDP string of at most 64 KiB")
    if not text.lstrip().startswith("v=0"):
        raise SdpError("offer does not start with v=0")
    try:
        description = SessionDescription.parse(text)
    except Exception as exc:  # aiortc's parser raises assorted errors on junk
        raise SdpError(f"malformed SDP: {exc!s:.200}") from exc
    sections = []
    ufrag = None
    chunks = ("\n" + text).split("\nm=")[1:]
    for media, chunk in zip(description.media, chunks, strict=False):
        if media.kind not in ("audio", "video"):
            continue
        if not media.rtp.muxId:
            raise SdpError("every media section needs a=mid")
        if media.ice is None or not media.ice.usernameFragment or not media.ice.password:
            raise SdpError("offer lacks ICE credentials")
        if media.dtls is None or not media.dtls.fingerprints:
            raise SdpError("offer lacks a DTLS fingerprint")
        # aiortc refuses these later, in the middle of answering (a server error then).
        if not media.rtcp_mux:
            raise SdpError("every media section needs a=rtcp-mux")
        if media.direction is None:
            raise SdpError("every media section needs a direction (a=sendonly, a=recvonly, ...)")
        ufrag = ufrag or media.ice.usernameFragment
        extension_ids = {e.uri: e.id for e in media.rtp.headerExtensions}
        rids = offered_rids(chunk) if media.kind == "video" and RID_URI in extension_ids else ()
        sections.append(
            MediaSection(
                media.kind,
                media.rtp.muxId,
                media.direction,
                tuple(media.rtp.codecs),
                extension_ids,
                rids,
            )
        )
    if not sections:
        raise SdpError("offer has no audio or video section")
    if len({section.mid for section in sections}) != len(sections):
        raise SdpError("two media sections share one a=mid")
    # aiortc keeps the last of several a=mid lines, and fails while answering (a server error)
    # on a section that is missing from the BUNDLE group.
    if any(chunk.count("\na=mid:") > 1 for chunk in ("\n" + text).split("\nm=")[1:]):
        raise SdpError("a media section has more than one a=mid")
    bundle = next((g for g in description.group if g.semantic == "BUNDLE"), None)
    if bundle is not None and (loose := [s.mid for s in sections if s.mid not in bundle.items]):
        raise SdpError(f"media section(s) {', '.join(loose)} not in the BUNDLE group")
    return Offer(strip_mdns_candidates(text), tuple(sections), ufrag)


def _as_parameters(capability: RTCRtpCodecCapability) -> RTCRtpCodecParameters:
    return RTCRtpCodecParameters(
        mimeType=capability.mimeType,
        clockRate=capability.clockRate,
        channels=capability.channels,
        parameters=dict(capability.parameters),
    )


def _capabilities(kind: str) -> list[RTCRtpCodecCapability]:
    capabilities = RTCRtpReceiver.getCapabilities(kind)
    return list(capabilities.codecs) if capabilities else []


def _rtx_capability(kind: str) -> RTCRtpCodecCapability | None:
    return next((c for c in _capabilities(kind) if c.mimeType.lower().endswith("/rtx")), None)


def accepts(section: MediaSection, capability: RTCRtpCodecCapability) -> bool:
    """Whether the section offers a codec aiortc would negotiate as ``capability``."""
    local = _as_parameters(capability)
    return any(is_codec_compatible(local, remote) for remote in section.codecs)


def preferences(
    section: MediaSection, chosen: RTCRtpCodecCapability
) -> list[RTCRtpCodecCapability]:
    """Codec preferences that make the answer carry exactly ``chosen`` (+ RTX for video)."""
    rtx = _rtx_capability(section.kind) if section.kind == "video" else None
    return [chosen, rtx] if rtx is not None and section.offers_rtx else [chosen]


def choose_publisher_codec(section: MediaSection) -> RTCRtpCodecCapability:
    """The codec we receive in this section: H.264 preferred, then VP8; Opus for audio."""
    order = _VIDEO_ORDER if section.kind == "video" else _AUDIO_ORDER
    for mime, profile in order:
        for capability in _capabilities(section.kind):
            if capability.mimeType.lower() != mime:
                continue
            if profile and capability.parameters.get("profile-level-id") != profile:
                continue
            if accepts(section, capability):
                return capability
    names = ", ".join(sorted({c.mimeType for c in section.codecs})) or "none"
    raise UnsupportedMediaError(
        f"{section.kind} section {section.mid!r} offers no supported codec ({names})"
    )
