"""Every aiortc 1.16.0 (and pylibsrtp 1.0, asyncio) private this package touches.

aiortc has no API to forward RTP without decoding and re-encoding it, so the SFU reaches into
a few private attributes. Each function here is one hook; ``tests/sfu/test_aiortc_hooks.py``
checks each of them against the installed aiortc so that an upgrade fails loudly instead of
silently decoding, dropping keyframe requests or leaking sessions.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import socket
import struct
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import aiortc
from aiortc import RTCDtlsTransport, RTCRtpReceiver, RTCRtpSender
from aiortc import codecs as aiortc_codecs
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpSendParameters
from aiortc.rtcrtpreceiver import NackGenerator, StreamStatistics
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpSrPacket,
    RtpPacket,
    pack_remb_fci,
    unpack_remb_fci,
)
from pylibsrtp import _binding as _srtp_binding

AIORTC_VERSION = "1.16.0"
logger = logging.getLogger(__name__)

RtpHandler = Callable[[bytes], None]


def check_aiortc_version() -> None:
    """Refuse to run on an aiortc whose internals were not reviewed."""
    if aiortc.__version__ != AIORTC_VERSION:
        raise RuntimeError(f"sfu needs aiortc {AIORTC_VERSION}, found {aiortc.__version__}")


# Main, constrained high and high: what OBS and phones send besides baseline. The SFU never
# decodes, so any profile a viewer's browser can decode may be forwarded as it is.
EXTRA_H264_PROFILES = ("4d001f", "640c1f", "64001f")


def allow_h264_profiles() -> None:
    """Add H.264 profiles beyond aiortc's two baseline ones to its codec list (idempotent)."""
    video = aiortc_codecs.CODECS["video"]
    known = {c.parameters.get("profile-level-id") for c in video if c.mimeType == "video/H264"}
    template = next(c for c in video if c.mimeType == "video/H264")
    next_pt = max(c.payloadType or 0 for c in video) + 1
    for profile in EXTRA_H264_PROFILES:
        if profile in known:
            continue
        video += [
            RTCRtpCodecParameters(
                mimeType="video/H264",
                clockRate=90000,
                payloadType=next_pt,
                rtcpFeedback=list(template.rtcpFeedback),
                parameters={**template.parameters, "profile-level-id": profile},
            ),
            RTCRtpCodecParameters(
                mimeType="video/rtx",
                clockRate=90000,
                payloadType=next_pt + 1,
                parameters={"apt": next_pt},
            ),
        ]
        next_pt += 2


def tap_rtp(dtls: RTCDtlsTransport, handler: RtpHandler) -> None:
    """Call ``handler`` with every decrypted RTP packet, before aiortc parses it.

    Hook: ``RTCDtlsTransport._handle_rtp_data(data, arrival_time_ms)``, awaited by
    ``_recv_next`` after SRTP unprotect. aiortc still gets the packet afterwards, for its
    receiver statistics, receiver reports and NACKs to the publisher.
    """
    original: Callable[..., Awaitable[None]] = dtls._handle_rtp_data
    failures = 0

    async def _handle_rtp_data(data: bytes, arrival_time_ms: int) -> None:
        nonlocal failures
        try:
            handler(data)
        except Exception:
            # A forwarding bug must not end the publisher's session: log it once, keep going.
            failures += 1
            if failures == 1:
                logger.exception("RTP forwarding failed")
        await original(data, arrival_time_ms=arrival_time_ms)

    setattr(dtls, "_handle_rtp_data", _handle_rtp_data)  # noqa: B010 - instance override


# Linux's SIOCGSTAMPNS: the kernel's receive time (a timespec) of the datagram last read from
# a socket. The first call on a socket only turns the stamping on (ENOENT).
_SIOCGSTAMPNS = 0x8907
_TIMESPEC = struct.Struct("qq")
_UNIX_EPOCH_NTP_MS = 2_208_988_800_000  # aiortc's clock counts milliseconds from 1900


class Arrived(bytes):
    """A datagram with the kernel's receive time, ``arrival_ms`` on aiortc's clock."""

    arrival_ms: int


def stamp_arrivals(dtls: RTCDtlsTransport) -> None:
    """Give aiortc each SRTP packet's arrival as the kernel saw it, not as the loop read it.

    aiortc stamps a packet when its DTLS task gets to it (``clock.current_ms()`` in
    ``_recv_next``), after whatever the event loop did meanwhile: a recorder's work or a
    fan-out burst delays the reads, and the delay-based estimate whose REMB the publisher
    obeys takes that wait for a queue growing on the path (measured: 2.16 Mbit/s fell below
    1 Mbit/s with the HLS ladder's three recorders on the loop). Hooks, in the order a
    datagram meets them: ``aioice.Connection.data_received(data, component)``, which the
    ``StunProtocol`` calls inside its socket's ``datagram_received``, synchronously after
    asyncio's ``recvfrom``, so the socket's last stamp is this datagram's (the shared mux
    socket's too); ``RTCIceTransport._recv`` (the connection's ``recv``, set in
    ``__init__``), which ``_recv_next`` awaits; ``RTCDtlsTransport._handle_rtp_data(data,
    arrival_time_ms)``, given the stamp of the datagram it decrypted.
    """
    ice = dtls.transport
    connection = ice._connection
    deliver: Callable[[bytes, int], None] = connection.data_received
    receive: Callable[[], Awaitable[bytes]] = ice._recv
    handle: Callable[..., Awaitable[None]] = dtls._handle_rtp_data
    stamp = bytearray(_TIMESPEC.size)
    sockets: dict[int, int] = {}  # id of a pair's protocol -> its socket's descriptor
    latest: int | None = None

    def data_received(data: bytes, component: int) -> None:
        pair = connection._nominated.get(component)
        if pair is not None and data and 127 < data[0] < 192:
            fd = sockets.get(id(pair.protocol))
            if fd is None:
                fd = sockets[id(pair.protocol)] = raw_socket(pair.protocol.transport).fileno()
            try:
                fcntl.ioctl(fd, _SIOCGSTAMPNS, stamp)
            except OSError:
                pass  # not stamped yet: aiortc's own time
            else:
                seconds, nanoseconds = _TIMESPEC.unpack(stamp)
                data = Arrived(data)
                data.arrival_ms = _UNIX_EPOCH_NTP_MS + seconds * 1000 + nanoseconds // 1_000_000
        deliver(data, component)

    async def _recv() -> bytes:
        nonlocal latest
        data = await receive()
        latest = getattr(data, "arrival_ms", None)
        return data

    async def _handle_rtp_data(data: bytes, arrival_time_ms: int) -> None:
        await handle(data, arrival_time_ms=arrival_time_ms if latest is None else latest)

    setattr(connection, "data_received", data_received)  # noqa: B010
    setattr(ice, "_recv", _recv)  # noqa: B010
    setattr(dtls, "_handle_rtp_data", _handle_rtp_data)  # noqa: B010


def tap_sender_reports(receiver: RTCRtpReceiver, handler: Callable[[int, int, int], None]) -> None:
    """Call ``handler(ssrc, ntp_timestamp, rtp_timestamp)`` for each sender report received.

    Hook: ``RTCRtpReceiver._handle_rtcp_packet(packet)``, awaited by the DTLS transport.
    """
    original: Callable[[Any], Awaitable[None]] = receiver._handle_rtcp_packet

    async def _handle_rtcp_packet(packet: Any) -> None:
        if isinstance(packet, RtcpSrPacket):
            info = packet.sender_info
            handler(packet.ssrc, info.ntp_timestamp, info.rtp_timestamp)
        await original(packet)

    setattr(receiver, "_handle_rtcp_packet", _handle_rtcp_packet)  # noqa: B010


def receive_layers(
    receiver: RTCRtpReceiver,
    *,
    payload_type: int,
    rtx_payload_type: int | None,
    clock_rate: int,
    media_ssrc: Callable[[int], int | None],
) -> None:
    """Receiver reports, NACKs and REMB per SSRC for a simulcast track's receiver.

    Hook: replaces ``RTCRtpReceiver._handle_rtp_packet(packet, arrival_time_ms)``. aiortc's
    keeps one NACK generator and one jitter buffer per receiver: fed the layers' interleaved
    sequence numbers, it would NACK thousands of packets and ask for keyframes without end.
    This one keeps a ``StreamStatistics`` per SSRC in the private ``__remote_streams`` (which
    aiortc's RTCP loop turns into report blocks), a ``NackGenerator`` per SSRC (sent with
    ``_send_rtcp_nack``), feeds ``__remote_bitrate_estimator`` and sends its REMB through
    ``_send_rtcp`` from ``__rtcp_ssrc``, as aiortc does. ``media_ssrc`` maps a layer's SSRC to
    itself and its RTX SSRC to it (None for an SSRC the SFU has not routed: ignored). Nothing
    is depayloaded: the SFU forwards the packets it tapped before this runs.
    """
    streams: dict[int, StreamStatistics] = getattr(receiver, "_RTCRtpReceiver__remote_streams")  # noqa: B009
    nacks: dict[int, NackGenerator] = {}

    async def _handle_rtp_packet(packet: RtpPacket, arrival_time_ms: int) -> None:
        estimator = getattr(receiver, "_RTCRtpReceiver__remote_bitrate_estimator", None)
        if estimator is not None and packet.extensions.abs_send_time is not None:
            remb = estimator.add(
                abs_send_time=packet.extensions.abs_send_time,
                arrival_time_ms=arrival_time_ms,
                payload_size=len(packet.payload) + packet.padding_size,
                ssrc=packet.ssrc,
            )
            rtcp_ssrc = getattr(receiver, "_RTCRtpReceiver__rtcp_ssrc", None)
            if rtcp_ssrc is not None and remb is not None:
                await receiver._send_rtcp(
                    RtcpPsfbPacket(
                        fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0, fci=pack_remb_fci(*remb)
                    )
                )
        ssrc = media_ssrc(packet.ssrc)
        if ssrc is None:
            return
        if packet.ssrc not in streams:
            streams[packet.ssrc] = StreamStatistics(clock_rate)
        streams[packet.ssrc].add(packet)
        generator = nacks.setdefault(ssrc, NackGenerator())
        if packet.payload_type == rtx_payload_type:
            if len(packet.payload) >= 2:
                generator.missing.discard(packet.payload[0] << 8 | packet.payload[1])
        elif packet.payload_type == payload_type and generator.add(packet):
            await receiver._send_rtcp_nack(ssrc, sorted(generator.missing))

    setattr(receiver, "_handle_rtp_packet", _handle_rtp_packet)  # noqa: B010


def report_round_trip(sender: RTCRtpSender, report: RtcpReceiverInfo) -> float | None:
    """The round trip one receiver report measures (RFC 3550, 6.4.1): from our last sender
    report leaving to this report arriving, less the receiver's delay in between; None when
    the report names an older sender report, or none.

    Hook: ``RTCRtpSender.__lsr`` and ``__lsr_time`` (aiortc keeps only a smoothed RTT, which
    moves by 15 % a report: too slowly to see a queue grow during a probe).
    """
    sent_at: float | None = getattr(sender, "_RTCRtpSender__lsr_time", None)
    last = getattr(sender, "_RTCRtpSender__lsr", None)
    if sent_at is None or not report.dlsr or report.lsr != last:
        return None
    return time.time() - sent_at - report.dlsr / 65536


def hook_feedback(
    sender: RTCRtpSender,
    *,
    on_remb: Callable[[int], None],
    on_report: Callable[[float, float | None], None],
    on_rtx_report: Callable[[float], None],
) -> None:
    """A viewer's congestion signals: its REMB (bit/s), the fraction lost (0-1) its reports
    give for the media SSRC (with the round trip the report measures, seconds) and for the RTX
    SSRC (which carries our probes' padding).

    Hook: ``RTCRtpSender._handle_rtcp_packet(packet)``, and ``_ssrc``/``_rtx_ssrc``; aiortc
    still handles every packet (its router hands a sender the reports that name its media
    SSRC, the RTX block rides in the same packet).
    """
    original: Callable[[Any], Awaitable[None]] = sender._handle_rtcp_packet

    async def _handle_rtcp_packet(packet: Any) -> None:
        await original(packet)
        ssrc = sender._ssrc
        if isinstance(packet, RtcpRrPacket | RtcpSrPacket):
            report: RtcpReceiverInfo
            for report in packet.reports:
                if report.ssrc == ssrc:
                    on_report(report.fraction_lost / 256, report_round_trip(sender, report))
                elif report.ssrc == sender._rtx_ssrc:
                    on_rtx_report(report.fraction_lost / 256)
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            try:
                bitrate, ssrcs = unpack_remb_fci(packet.fci)
            except ValueError:
                return
            if ssrc in ssrcs:
                on_remb(bitrate)

    setattr(sender, "_handle_rtcp_packet", _handle_rtcp_packet)  # noqa: B010


def disable_decoding(receiver: RTCRtpReceiver) -> None:
    """Stop the decoder thread ``RTCRtpReceiver.receive()`` starts, as soon as it starts.

    Hook: the name-mangled ``RTCRtpReceiver.__stop_decoder()``. Without it every publisher
    costs a full H.264 decode. With the thread gone aiortc drops reassembled frames.
    """
    original: Callable[[Any], Awaitable[None]] = receiver.receive
    stop_decoder: Callable[[], None] = getattr(receiver, "_RTCRtpReceiver__stop_decoder")  # noqa: B009

    async def receive(parameters: Any) -> None:
        await original(parameters)
        stop_decoder()

    setattr(receiver, "receive", receive)  # noqa: B010


def send_pli(receiver: RTCRtpReceiver, media_ssrc: int) -> Coroutine[Any, Any, None]:
    """Ask the publisher for a keyframe. Hook: ``RTCRtpReceiver._send_rtcp_pli``."""
    coroutine: Coroutine[Any, Any, None] = receiver._send_rtcp_pli(media_ssrc)
    return coroutine


def hook_sender(
    sender: RTCRtpSender,
    *,
    on_started: Callable[[RTCRtpSendParameters], None],
    on_nack: Callable[[int], None],
    on_keyframe_request: Callable[[], None],
) -> None:
    """Take over what a viewer's sender does with media while aiortc keeps its RTCP.

    - ``send(parameters)`` (public) is called once DTLS is up, with the negotiated payload
      type, MID and header-extension ids: ``on_started`` gets them.
    - ``_retransmit(seq)``: aiortc looks NACKed packets up in its own history, which is empty
      on a forwarding path; ``on_nack`` serves them from the consumer's history instead.
    - ``_send_keyframe()``: PLI/FIR would only set a flag for aiortc's encoder, so they would
      be silently dropped; ``on_keyframe_request`` routes them to the publisher.
    """
    original_send: Callable[[RTCRtpSendParameters], Awaitable[None]] = sender.send

    async def send(parameters: RTCRtpSendParameters) -> None:
        await original_send(parameters)
        on_started(parameters)

    async def _retransmit(sequence_number: int) -> None:
        on_nack(sequence_number)

    setattr(sender, "send", send)  # noqa: B010
    setattr(sender, "_retransmit", _retransmit)  # noqa: B010
    setattr(sender, "_send_keyframe", on_keyframe_request)  # noqa: B010


def set_sender_report_basis(
    sender: RTCRtpSender, ntp_timestamp: int, rtp_timestamp: int, packets: int, octets: int
) -> None:
    """Feed the sender's RTCP loop what it puts in its next sender report.

    Hook: the name-mangled ``__ntp_timestamp``, ``__rtp_timestamp``, ``__packet_count`` and
    ``__octet_count`` that ``RTCRtpSender._run_rtp`` would maintain if it sent the media.
    """
    setattr(sender, "_RTCRtpSender__ntp_timestamp", ntp_timestamp)  # noqa: B010
    setattr(sender, "_RTCRtpSender__rtp_timestamp", rtp_timestamp)  # noqa: B010
    setattr(sender, "_RTCRtpSender__packet_count", packets)  # noqa: B010
    setattr(sender, "_RTCRtpSender__octet_count", octets)  # noqa: B010


def sender_round_trip_time(sender: RTCRtpSender) -> float | None:
    """Smoothed RTT from the viewer's receiver reports (``RTCRtpSender.__rtt``), seconds."""
    rtt: float | None = getattr(sender, "_RTCRtpSender__rtt", None)
    return rtt


def nominated_pairs(dtls: RTCDtlsTransport) -> dict[int, Any]:
    """aioice's live map of component -> nominated ``CandidatePair`` under this transport.

    Hook: ``RTCIceTransport._connection`` (an ``aioice.Connection``) and its ``_nominated``.
    A pair has ``protocol.transport`` (an asyncio datagram transport) and ``remote_addr``.
    """
    pairs: dict[int, Any] = dtls.transport._connection._nominated
    return pairs


def local_ports(dtls: RTCDtlsTransport) -> list[int]:
    """UDP ports of the transport's local candidates (tests aim junk at them)."""
    return [c.port for c in dtls.transport.iceGatherer.getLocalCandidates()]


def guard_against_junk(dtls: RTCDtlsTransport) -> None:
    """Keep a datagram aiortc cannot digest from ending the session.

    Hook: ``RTCDtlsTransport._recv_next()``, awaited in a loop by the transport's ``__run``
    task and by the handshake. An empty datagram makes it raise ``IndexError``, which ends
    ``__run`` and closes the connection. Only ``ConnectionError`` (the ICE connection is
    gone, or the peer's authenticated close_notify) and cancellation may pass.
    """
    original: Callable[[], Awaitable[None]] = dtls._recv_next

    async def _recv_next() -> None:
        try:
            await original()
        except (ConnectionError, asyncio.CancelledError):
            raise
        except Exception:
            logger.debug("ignored an undigestible datagram", exc_info=True)

    setattr(dtls, "_recv_next", _recv_next)  # noqa: B010


def set_dtls_role(dtls: RTCDtlsTransport, role: str) -> None:
    """Make this transport answer, and then handshake, as DTLS ``role`` ("client" or "server").

    Hook: ``RTCDtlsTransport._set_role(role)``, which sets ``_role``. ``createAnswer`` writes
    ``_role`` into the answer's ``a=setup`` ("auto", what an actpass or passive offer leaves,
    becomes ``active``), and ``start()`` handshakes in that role (it resolves only "auto",
    from the ICE role). Call it after ``setRemoteDescription``, which sets the role itself.
    """
    dtls._set_role(role)


def dtls_transports(pc: aiortc.RTCPeerConnection) -> list[RTCDtlsTransport]:
    """The distinct DTLS transports under a peer connection's transceivers (one if bundled)."""
    seen: list[RTCDtlsTransport] = []
    for transceiver in pc.getTransceivers():
        transport = transceiver.receiver.transport
        if transport not in seen:
            seen.append(transport)
    return seen


def raw_socket(transport: asyncio.DatagramTransport) -> socket.socket:
    """The socket under an asyncio datagram transport (``TransportSocket._sock``).

    Sending on it directly skips asyncio's per-call checks and, above all, its unbounded
    write buffer: a full socket buffer raises ``BlockingIOError`` and the packet is dropped.
    """
    wrapper = transport.get_extra_info("socket")
    sock: socket.socket = getattr(wrapper, "_sock", wrapper)
    return sock


def srtp_context(dtls: RTCDtlsTransport) -> Any:
    """The libsrtp ``srtp_t`` of the transport's outbound session (pylibsrtp 1.0 ``_srtp``).

    With :data:`srtp_protect_in_place` it protects packets in a buffer we own, without the
    per-call allocations and copies of ``pylibsrtp.Session.protect``.
    """
    return dtls._tx_srtp._srtp[0]


# libsrtp's ``srtp_protect(srtp_t, void *packet, int *length)``, through pylibsrtp's binding.
srtp_protect_in_place: Callable[[Any, Any, Any], int] = _srtp_binding.lib.srtp_protect
srtp_ffi: Any = _srtp_binding.ffi
SRTP_MAX_TRAILER_LEN = 16 + 128  # pylibsrtp's bound on what protect appends


def srtp_protect_address() -> int:
    """The C address of libsrtp's ``srtp_protect`` inside pylibsrtp's binding.

    The native fan-out (sfu/_fanout.c) calls it through this pointer, so nothing links
    against libsrtp: the library pylibsrtp ships is the one both paths use.
    """
    pointer = srtp_ffi.addressof(_srtp_binding.lib, "srtp_protect")
    return int(srtp_ffi.cast("uintptr_t", pointer))


def srtp_context_address(context: Any) -> int:
    """The address of a libsrtp ``srtp_t`` (from :func:`srtp_context`), for the native path."""
    return int(srtp_ffi.cast("uintptr_t", context))
