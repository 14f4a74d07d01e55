"""Every aiortc/aioice private the SFU relies on, checked against the installed version.

If one of these fails after an upgrade, read the matching function in sfu/aiortc_hooks.py
(or sfu/candidates.py) and the new aiortc source before changing anything.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from dataclasses import replace

import aioice.ice
import aiortc
import pytest
from aiortc import RTCDtlsTransport, RTCRtpReceiver, RTCRtpSender, clock
from aiortc import codecs as aiortc_codecs
from aiortc.rtcpeerconnection import is_codec_compatible
from aiortc.rtp import RtcpReceiverInfo, RtpPacket

from peers.webrtc import PublisherPeer, wait_until
from sfu import PortSettings
from sfu.aiortc_hooks import (
    AIORTC_VERSION,
    EXTRA_H264_PROFILES,
    allow_h264_profiles,
    nominated_pairs,
    report_round_trip,
    sender_round_trip_time,
)
from sfu.candidates import _ORIGINAL_GET_HOST_ADDRESSES
from tests.faults.netns import LoopThread

from .conftest import Harness, HarnessFactory

pytestmark = pytest.mark.timeout(30)


def parameters(function: object) -> list[str]:
    return list(inspect.signature(function).parameters)  # type: ignore[arg-type]


def source(function: object) -> str:
    return inspect.getsource(function)  # type: ignore[arg-type]


def test_aiortc_is_the_reviewed_version() -> None:
    assert aiortc.__version__ == AIORTC_VERSION


def test_dtls_transport_hooks() -> None:
    assert inspect.iscoroutinefunction(RTCDtlsTransport._handle_rtp_data)
    assert parameters(RTCDtlsTransport._handle_rtp_data) == ["self", "data", "arrival_time_ms"]
    assert inspect.iscoroutinefunction(RTCDtlsTransport._recv_next)
    assert parameters(RTCDtlsTransport._recv_next) == ["self"]
    recv_next = source(RTCDtlsTransport._recv_next)
    # Looked up on the instance, so our per-transport overrides take effect.
    assert "await self._handle_rtp_data(data, arrival_time_ms=arrival_time_ms)" in recv_next
    assert "first_byte = data[0]" in recv_next  # why an empty datagram needs the guard
    assert "await self._recv_next()" in source(RTCDtlsTransport._RTCDtlsTransport__run)  # type: ignore[attr-defined]
    init = source(RTCDtlsTransport.__init__)
    assert "self._tx_srtp: Session = None" in init
    assert "self._rx_srtp: Session = None" in init


def test_receiver_hooks() -> None:
    assert parameters(RTCRtpReceiver._handle_rtcp_packet) == ["self", "packet"]
    assert parameters(RTCRtpReceiver.receive) == ["self", "parameters"]
    assert parameters(RTCRtpReceiver._send_rtcp_pli) == ["self", "media_ssrc"]
    assert callable(RTCRtpReceiver._RTCRtpReceiver__stop_decoder)  # type: ignore[attr-defined]
    receive = source(RTCRtpReceiver.receive)
    assert "self.__decoder_thread.start()" in receive
    handle = source(RTCRtpReceiver._handle_rtp_packet)
    assert "if encoded_frame is not None and self.__decoder_thread:" in handle


def test_sender_hooks() -> None:
    assert parameters(RTCRtpSender.send) == ["self", "parameters"]
    assert parameters(RTCRtpSender._retransmit) == ["self", "sequence_number"]
    assert parameters(RTCRtpSender._send_keyframe) == ["self"]
    handle = source(RTCRtpSender._handle_rtcp_packet)
    assert "await self._retransmit(seq)" in handle
    assert "self._send_keyframe()" in handle
    rtcp = source(RTCRtpSender._run_rtcp)
    for name in ("__ntp_timestamp", "__rtp_timestamp", "__packet_count", "__octet_count"):
        assert f"self.{name}" in rtcp
    assert "self.__rtt" in source(RTCRtpSender._handle_rtcp_packet)
    init = source(RTCRtpSender.__init__)
    assert "self._ssrc = random32()" in init
    assert "self._rtx_ssrc = random32()" in init


def test_semi_public_aiortc_functions() -> None:
    from aiortc import clock, sdp

    assert parameters(clock.current_ntp_time) == []
    assert parameters(sdp.candidate_from_sdp) == ["sdp"]
    assert parameters(sdp.SessionDescription.parse) == ["sdp"]
    assert parameters(RTCRtpReceiver.getCapabilities) == ["kind"]


def test_aioice_hooks() -> None:
    assert parameters(_ORIGINAL_GET_HOST_ADDRESSES) == ["use_ipv4", "use_ipv6"]
    gather = source(aioice.ice.Connection.gather_candidates)
    assert "addresses = get_host_addresses(" in gather  # looked up by name at call time
    assert "self._nominated: dict[int, CandidatePair] = {}" in source(
        aioice.ice.Connection.__init__
    )
    assert "def remote_addr" in source(aioice.ice.CandidatePair)
    # stamp_arrivals: data reaches the connection inside the socket's datagram_received.
    assert "self.receiver.data_received(data, self.local_candidate.component)" in source(
        aioice.ice.StunProtocol.datagram_received
    )
    assert parameters(aioice.ice.Connection.data_received) == ["self", "data", "component"]
    assert "self._recv = self._connection.recv" in source(aiortc.RTCIceTransport.__init__)
    assert "data = await self.transport._recv()" in source(RTCDtlsTransport._recv_next)
    assert parameters(is_codec_compatible) == ["a", "b"]


async def test_hooks_hold_on_live_sessions(harness: Harness) -> None:
    _, publisher = await harness.live()
    viewer, subscriber = await harness.view()
    await wait_until(lambda: len(viewer.video_packets()) > 10)
    await asyncio.sleep(2.0)  # a couple of RTCP intervals
    # No decoder threads on the SFU's publisher receivers.
    for transceiver in publisher.pc.getTransceivers():
        assert transceiver.receiver._RTCRtpReceiver__decoder_thread is None
    # Our overrides are installed on the instances.
    dtls = publisher.pc.getTransceivers()[0].receiver.transport
    assert "_handle_rtp_data" in vars(dtls) and "_recv_next" in vars(dtls)
    sender = subscriber.consumers["video"].sender
    assert {"send", "_retransmit", "_send_keyframe"} <= set(vars(sender))
    # The viewer's transport has a nominated pair with a socket and an address.
    pair = nominated_pairs(sender.transport)[1]
    assert pair.protocol.transport.get_extra_info("sockname")[0] == "127.0.0.1"
    assert pair.remote_addr[0] == "127.0.0.1"
    # The sender reports carry our bookkeeping; receiver reports give an RTT back.
    assert sender._RTCRtpSender__packet_count > 0
    assert sender._RTCRtpSender__ntp_timestamp > 0
    audio_sender = subscriber.consumers["audio"].sender
    rtts = [sender_round_trip_time(s) for s in (sender, audio_sender)]
    assert any(rtt is not None and 0 <= rtt < 0.5 for rtt in rtts)
    # One report's own round trip: since our last sender report left, less the viewer's delay.
    last = sender._RTCRtpSender__lsr
    report = RtcpReceiverInfo(
        ssrc=sender._ssrc, fraction_lost=0, packets_lost=0, highest_sequence=0, jitter=0,
        lsr=last, dlsr=65536 // 10,
    )  # fmt: skip
    trip = report_round_trip(sender, report)
    since = time.time() - sender._RTCRtpSender__lsr_time
    assert trip is not None and abs(trip - (since - 0.1)) < 0.05
    assert report_round_trip(sender, replace(report, lsr=last ^ 1)) is None  # an older one
    assert not [t for t in threading.enumerate() if t.name.endswith("-decoder")]


def test_pylibsrtp_and_asyncio_hooks() -> None:
    import os

    import pylibsrtp
    from pylibsrtp import Policy, Session

    from sfu.aiortc_hooks import SRTP_MAX_TRAILER_LEN, srtp_ffi, srtp_protect_in_place

    assert pylibsrtp.__version__ == "1.0.0"
    assert SRTP_MAX_TRAILER_LEN == pylibsrtp.SRTP_MAX_TRAILER_LEN
    key = os.urandom(28)
    policy = Policy(
        key=key,
        ssrc_type=Policy.SSRC_ANY_OUTBOUND,
        srtp_profile=Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
    )
    session = Session(policy)
    packet = bytes([0x80, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 7]) + b"x" * 100
    # In-place protection through pylibsrtp's private binding equals Session.protect.
    reference = Session(
        Policy(
            key=key,
            ssrc_type=Policy.SSRC_ANY_OUTBOUND,
            srtp_profile=Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
        )
    )
    cdata = srtp_ffi.new("char[]", 1500 + SRTP_MAX_TRAILER_LEN)
    length = srtp_ffi.new("int *")
    srtp_ffi.buffer(cdata)[: len(packet)] = packet
    length[0] = len(packet)
    assert srtp_protect_in_place(session._srtp[0], cdata, length) == 0
    assert srtp_ffi.buffer(cdata)[: length[0]] == reference.protect(packet)


async def test_raw_socket_of_a_datagram_transport() -> None:
    import socket

    from sfu.aiortc_hooks import raw_socket

    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
    )
    try:
        sock = raw_socket(transport)
        assert isinstance(sock, socket.socket) and type(sock) is socket.socket
        assert sock.getsockname() == transport.get_extra_info("sockname")
        assert not sock.getblocking()  # a full buffer raises instead of blocking the loop
    finally:
        transport.close()


def test_extra_h264_profiles_join_aiortcs_codec_list() -> None:
    allow_h264_profiles()
    allow_h264_profiles()  # idempotent
    video = aiortc_codecs.CODECS["video"]
    profiles = [c.parameters.get("profile-level-id") for c in video if c.mimeType == "video/H264"]
    assert profiles == ["42001f", "42e01f", *EXTRA_H264_PROFILES]
    payload_types = [c.payloadType for c in video]
    assert len(payload_types) == len(set(payload_types))
    for codec in video:
        if codec.mimeType == "video/rtx":
            assert any(c.payloadType == codec.parameters["apt"] for c in video)


@pytest.mark.parametrize("mux", [False, True], ids=["own-socket", "shared-socket"])
async def test_packets_carry_the_time_the_kernel_received_them(
    make_harness: HarnessFactory, mux: bool
) -> None:
    """A packet the loop reads late (it was busy) reaches aiortc's estimator with the time it
    arrived, not the time it was read: the publisher's REMB does not see the loop's work."""
    harness = await make_harness(ports=PortSettings(udp_mux=mux))
    sending = LoopThread()  # the publisher keeps sending while the SFU's loop is blocked
    peer: PublisherPeer = await sending.run(_publisher())
    try:
        session, answer = await harness.sfu.publish("room", await sending.run(peer.offer()))
        await sending.run(peer.accept(answer))
        await wait_until(lambda: session.live)
        receiver = session.pc.getTransceivers()[0].receiver
        original = receiver._handle_rtp_packet
        seen: list[tuple[int, int]] = []  # (arrival_time_ms given, clock when handled)

        async def observed(packet: RtpPacket, arrival_time_ms: int) -> None:
            seen.append((arrival_time_ms, clock.current_ms()))
            await original(packet, arrival_time_ms=arrival_time_ms)

        setattr(receiver, "_handle_rtp_packet", observed)  # noqa: B010
        await wait_until(lambda: len(seen) > 10)
        assert all(abs(now - at) < 50 for at, now in seen)  # on time: read as they came
        backlog = len(seen)
        # The loop is busy for 0.3 s (the next callback blocks it); the packets wait in the socket.
        asyncio.get_running_loop().call_soon(time.sleep, 0.3)
        await wait_until(lambda: len(seen) > backlog + 5)
        lags = [now - at for at, now in seen[backlog:]]
        assert max(lags) >= 250, lags
    finally:
        await sending.run(peer.close())
        sending.close()


async def _publisher() -> PublisherPeer:
    return PublisherPeer(audio=False)
