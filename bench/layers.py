"""The per-packet cost of simulcast on the forwarding path, in one process, in one run.

    python -m bench.layers --viewers 200 --packets 3000

Feeds recorded-shaped H.264 packets (1,100-byte payloads, a keyframe every 60) straight into
``Producer.receive`` and times the fan-out to real ``Consumer`` objects, each with its own
libsrtp context, sending with ``sendto`` to a loopback socket that is drained between rounds:

- **one layer**: a publisher without simulcast, viewers that did not negotiate abs-send-time
  (the path before simulcast);
- **one layer + abs-send-time**: what every Chromium viewer gets now (one 4-byte write more);
- **three layers**: a simulcast publisher (packets routed by SSRC through ``Layers``), the
  viewers spread evenly over the layers, each layer's packets interleaved as they arrive.

Beside them, the kernel floor: a plain ``sendto`` of the same datagrams. Figures are printed,
never asserted; absolute values vary 2-3x between days on these machines, the ratios less.
"""

from __future__ import annotations

import argparse
import os
import socket
import struct
import time
from collections.abc import Callable
from types import SimpleNamespace

from aiortc import RTCRtpCodecCapability, RTCRtpCodecParameters
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpSendParameters
from pylibsrtp import Policy, Session

from bench import emit
from sfu.consumer import Consumer
from sfu.egress import Egress
from sfu.producer import Producer
from sfu.rtp import ABS_SEND_TIME_URI, MID_URI
from sfu.simulcast import Layers

CODEC = RTCRtpCodecCapability(
    mimeType="video/H264",
    clockRate=90000,
    parameters={"packetization-mode": "1", "profile-level-id": "42e01f"},
)
RID_ID = 10
PAYLOAD = 1100


def producer(rid: str | None, request_pli: Callable[[int], None] = lambda ssrc: None) -> Producer:
    return Producer(
        kind="video",
        codec=CODEC,
        payload_type=102,
        audio_level_id=0,
        request_pli=request_pli,
        on_first_packet=lambda p: None,
        keyframe_interval=0.3,
        rid=rid,
    )


def consumer(index: int, sink: socket.socket, target: tuple[str, int], abs_time: bool) -> Consumer:
    """A started video consumer with its own SRTP context, sending to ``target``."""
    policy = Policy(
        key=os.urandom(28),
        ssrc_type=Policy.SSRC_ANY_OUTBOUND,
        srtp_profile=Policy.SRTP_PROFILE_AEAD_AES_128_GCM,  # what browsers negotiate
    )
    policy.allow_repeat_tx = True
    session = Session(policy)
    sender: object = SimpleNamespace(_ssrc=0x1000 + index, _rtx_ssrc=0x9000 + index)
    built = Consumer(kind="video", codec=CODEC, sender=sender, egress=Egress())  # type: ignore[arg-type]
    route = SimpleNamespace(
        session=session,
        context=session._srtp[0],
        socket=sink,  # the native path sends on the socket itself (sendmmsg)
        sendto=sink.sendto,
        address=target,
    )
    built.route(route)  # type: ignore[arg-type]
    extensions = [RTCRtpHeaderExtensionParameters(id=4, uri=MID_URI)]
    if abs_time:
        extensions.append(RTCRtpHeaderExtensionParameters(id=3, uri=ABS_SEND_TIME_URI))
    built.start(
        RTCRtpSendParameters(
            codecs=[RTCRtpCodecParameters(mimeType="video/H264", clockRate=90000, payloadType=96)],
            headerExtensions=extensions,
            muxId="1",
        )
    )
    return built


def packet(ssrc: int, seq: int, rid: str | None) -> bytes:
    """An H.264 RTP packet as a browser sends it (RID extension on every packet, as in a
    layer's first packets; a key frame's IDR slice every 60 packets)."""
    nal = bytes([0x65 if seq % 60 == 0 else 0x41])
    header = struct.pack("!BBHII", 0x80, 102, seq & 0xFFFF, (seq // 4) * 3000, ssrc)
    if rid is not None:
        raw = rid.encode()
        block = bytes([RID_ID << 4 | (len(raw) - 1)]) + raw
        block += bytes(-len(block) % 4)
        header = bytes([0x90]) + header[1:] + struct.pack("!HH", 0xBEDE, len(block) // 4) + block
    return header + nal + bytes(PAYLOAD - 1)


def timed(feed: Callable[[bytes], None], packets: list[bytes], drain: Callable[[], None]) -> float:
    """Seconds of CPU to feed every packet, the drain of the sink excluded."""
    spent = 0.0
    for start in range(0, len(packets), 50):
        begin = time.process_time()
        for data in packets[start : start + 50]:
            feed(data)
        spent += time.process_time() - begin
        drain()
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", type=int, default=200)
    parser.add_argument("--packets", type=int, default=3000)
    args = parser.parse_args()
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.setblocking(False)
    target = sink.getsockname()

    def drain() -> None:
        sink.setblocking(False)
        try:
            while True:
                sink.recv(2048)
        except BlockingIOError:
            pass

    results: dict[str, float] = {}
    viewers, count = args.viewers, args.packets

    one = [packet(0xA, seq, None) for seq in range(count)]
    floor = timed(lambda data: [sender.sendto(data, target) for _ in range(viewers)], one, drain)
    results["kernel floor (sendto)"] = floor

    for name, abs_time in (("one layer", False), ("one layer + abs-send-time", True)):
        single = producer(None)
        for index in range(viewers):
            consumer(index, sender, target, abs_time).bind(single)
        results[name] = timed(single.receive, one, drain)

    rids = ("q", "h", "f")
    layers = Layers([producer(rid) for rid in rids], RID_ID, 0)
    for index in range(viewers):
        consumer(index, sender, target, True).bind(layers.producers[index % 3])
    mixed = [packet(0xB + seq % 3, seq // 3, rids[seq % 3]) for seq in range(count * 3)]
    results["three layers"] = timed(layers.receive, mixed, drain)  # each to a third

    print(f"{viewers} viewers, {count} packets per layer; µs of CPU per forwarded packet:")
    figures = {}
    for name, seconds in results.items():
        per_packet = seconds / (count * viewers) * 1e6
        ratio = seconds / results["one layer"]
        print(f"  {name:28} {per_packet:6.2f} µs  ({ratio:.2f}x one layer)")
        figures[name.split(" (")[0].replace(" ", "_").replace("+", "with").replace("-", "_")] = (
            round(per_packet, 3)
        )
    emit(**figures)


if __name__ == "__main__":
    main()
