"""Consumers render, protect and send through one scratch buffer shared by the process."""

from __future__ import annotations

import os
import struct
from types import SimpleNamespace

import pytest
from aiortc import RTCRtpCodecCapability, RTCRtpCodecParameters
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpSendParameters
from pylibsrtp import Policy, Session

from sfu.consumer import RTX_BURST, RTX_SHARE, Consumer
from sfu.egress import Egress
from sfu.rtp import MID_URI, find_extension, header_length

KEY = os.urandom(28)
PROFILE = Policy.SRTP_PROFILE_AEAD_AES_128_GCM


def session(direction: int) -> Session:
    policy = Policy(key=KEY, ssrc_type=direction, srtp_profile=PROFILE)
    policy.allow_repeat_tx = True  # as aiortc sets it: a NACK resends an index already sent
    return Session(policy)


class Viewer:
    """A consumer wired to an in-memory "socket" and the SRTP session that decrypts it."""

    def __init__(self, ssrc: int, payload_type: int, mid: str) -> None:
        self.packets: list[bytes] = []  # as the viewer decrypts them
        sender: object = SimpleNamespace(_ssrc=ssrc, _rtx_ssrc=ssrc + 1)
        codec = RTCRtpCodecCapability(mimeType="video/H264", clockRate=90000)
        self.consumer = Consumer(kind="video", codec=codec, sender=sender, egress=Egress())  # type: ignore[arg-type]
        tx = session(Policy.SSRC_ANY_OUTBOUND)
        route = SimpleNamespace(
            session=tx, context=tx._srtp[0], sendto=self._sendto, address=("127.0.0.1", 9)
        )
        self.consumer.route(route)  # type: ignore[arg-type]
        self.consumer.start(
            RTCRtpSendParameters(
                codecs=[
                    RTCRtpCodecParameters(
                        mimeType="video/H264", clockRate=90000, payloadType=payload_type
                    )
                ],
                headerExtensions=[RTCRtpHeaderExtensionParameters(id=3, uri=MID_URI)],
                muxId=mid,
            )
        )

    def _sendto(self, data: memoryview, address: tuple[str, int]) -> None:
        # Decrypt at once, as the kernel copies at once: the buffer is reused for the next one.
        # A fresh session each time: a viewer's replay check would drop the retransmission.
        self.packets.append(session(Policy.SSRC_ANY_INBOUND).unprotect(bytes(data)))


def test_interleaved_viewers_and_retransmissions_keep_their_own_headers() -> None:
    a, b = Viewer(0x0A0A0A0A, 102, "1"), Viewer(0x0B0B0B0B, 96, "22")
    payloads = [os.urandom(size) for size in (1100, 40, 700)]
    for index, payload in enumerate(payloads):
        entry = (
            1000 + index,
            90_000 + 3000 * index,
            0x80 * (index == 2),
            payload,
            index == 0,
            -1,
            None,
        )
        a.consumer.forward(entry)
        b.consumer.forward(entry)
        if index == 1:
            # A NACK served between two viewers' packets must not leak into the next render.
            first = struct.unpack_from("!H", a.packets[0], 2)[0]
            a.consumer.retransmit(first)
    for viewer, ssrc, pt, mid, expected in (
        (a, 0x0A0A0A0A, 102, b"1", [*payloads[:2], payloads[0], payloads[2]]),
        (b, 0x0B0B0B0B, 96, b"22", payloads),
    ):
        packets = viewer.packets
        assert [p[header_length(p) :] for p in packets] == expected
        for packet in packets:
            _, second, _, _, packet_ssrc = struct.unpack_from("!BBHII", packet)
            assert packet_ssrc == ssrc and second & 0x7F == pt
            assert find_extension(packet, 12, header_length(packet), 3) == mid[0]
        sequence = [struct.unpack_from("!H", p, 2)[0] for p in packets]
        live = sequence[:2] + sequence[3:] if viewer is a else sequence
        assert [(s - live[0]) & 0xFFFF for s in live] == [0, 1, 2]
        assert packets[-1][1] & 0x80  # marker of the last packet
    assert a.consumer.packets_sent == 3 and a.consumer.retransmitted == 1
    assert b.consumer.packets_sent == 3 and b.consumer.packets_dropped == 0
    assert b.consumer.bytes_sent == sum(map(len, payloads))


def test_retransmissions_are_held_to_a_share_of_what_is_forwarded() -> None:
    viewer = Viewer(0x0C0C0C0C, 96, "1")
    consumer = viewer.consumer
    sent = []

    def forward(count: int) -> None:
        for _ in range(count):
            index = len(sent)
            consumer.forward((2000 + index, 3000 * index, 0, bytes(1000), index == 0, -1, None))
            sent.append(struct.unpack_from("!H", viewer.packets[-1], 2)[0])

    # A link losing everything: the viewer NACKs every packet it was sent.
    forward(100)
    for seq in sent:
        consumer.retransmit(seq)
    burst = consumer.retransmitted
    assert 0 < burst <= RTX_BURST // 1000 and consumer.resends_refused == 100 - burst
    # Saved up: then RTX_SHARE of what was forwarded since.
    forward(100)
    for seq in sent[100:]:
        consumer.retransmit(seq)
    assert consumer.retransmitted - burst == pytest.approx(100 * RTX_SHARE, abs=2)
    assert consumer.losses == 200  # every packet lost counts, resent or not
