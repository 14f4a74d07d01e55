"""Layer-switch time: from the switch to the new layer's keyframe forwarded to every viewer.

    python -m bench.switch --viewers 1,50,200 --switches 20 --rtt 0.05

A viewer moves to another simulcast layer at that layer's next keyframe, which the SFU asks the
publisher for (a PLI); until then the old layer keeps flowing. The time a switch takes is the
publisher's (the PLI's way there, the next frame it encodes as a keyframe, the way back) plus
the SFU's (the keyframe's packets fanned out to every viewer that switches, each re-anchored to
its own sequence numbers and timestamps, protected and sent). This runs the SFU's own
``Producer`` and ``Consumer`` objects in real time on one event loop: two layers at 30 frames a
second (a keyframe of 20 packets on the top layer, 6 on the low one; deltas of 3 and 1), a
publisher that answers a PLI with its next frame as a keyframe, ``--rtt`` seconds of round trip
between them, and viewers with their own libsrtp contexts sending to a loopback socket. All the
viewers switch at once, up (low to top) and then down, ``--switches`` times each.

Printed per viewer count, never asserted: median and p90 of the switch time (switch called to
the keyframe's last packet sent to the last viewer), the SFU's share (first keyframe packet
received to that), and the CPU the keyframe's fan-out took per viewer. The estimator's time to
decide (a link cut or restored, to the switch) is the field's: ``tests/net/test_simulcast.py``
prints it.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import struct
import time
from dataclasses import dataclass, field

from bench import emit
from bench.layers import consumer, producer
from bench.sfu import percentile
from sfu.consumer import Consumer
from sfu.producer import Producer

FPS = 30
TICKS = 90000 // FPS
PACKET = 1100  # payload bytes
# Packets per frame: (keyframe, delta) of each layer.
SHAPES = {"q": (6, 1), "f": (20, 3)}


@dataclass
class Layer:
    """One layer as a publisher sends it: paced frames, a keyframe when a PLI has arrived."""

    rid: str
    ssrc: int
    rtt: float
    producer: Producer = field(init=False)
    seq: int = 0
    frames: int = 0
    keyframe_due: bool = False
    keyframe_started: float | None = None  # when the SFU received the asked-for keyframe
    keyframe_sent: float | None = None  # when its last packet had gone to every viewer
    delivered: asyncio.Event = field(default_factory=asyncio.Event)
    cpu: float = 0.0  # process time spent in the asked-for keyframes' fan-out

    def __post_init__(self) -> None:
        self.producer = producer(self.rid, self._pli)

    def _pli(self, ssrc: int) -> None:
        # The PLI reaches the publisher after half the round trip; its next frame is a keyframe.
        asyncio.get_running_loop().call_later(self.rtt / 2, self._ask)

    def _ask(self) -> None:
        self.keyframe_due = True

    def frame(self) -> None:
        """Encode and send one frame; an asked-for keyframe arrives half a round trip later."""
        key = self.keyframe_due or self.frames == 0
        self.keyframe_due = False
        packets = self._packets(key)
        self.frames += 1
        if key and self.frames > 1:
            asyncio.get_running_loop().call_later(self.rtt / 2, self._deliver_keyframe, packets)
        else:
            for data in packets:
                self.producer.receive(data)

    def _deliver_keyframe(self, packets: list[bytes]) -> None:
        self.keyframe_started = time.perf_counter()
        cpu = time.process_time()
        for data in packets:
            self.producer.receive(data)
        self.cpu += time.process_time() - cpu
        self.keyframe_sent = time.perf_counter()
        self.delivered.set()

    def _packets(self, key: bool) -> list[bytes]:
        """The frame's RTP packets: H.264 FU-A fragments of an IDR slice, or one delta slice
        per packet."""
        count = SHAPES[self.rid][0 if key else 1]
        ts = (self.frames * TICKS) & 0xFFFFFFFF
        packets = []
        for index in range(count):
            last = index == count - 1
            if key:
                fu_header = (0x80 if index == 0 else 0) | (0x40 if last else 0) | 5
                payload = bytes([0x7C, fu_header]) + bytes(PACKET - 2)
            else:
                payload = bytes([0x41]) + bytes(PACKET - 1)
            marker = 0x80 if last else 0
            header = struct.pack("!BBHII", 0x80, marker | 102, self.seq, ts, self.ssrc)
            self.seq = (self.seq + 1) & 0xFFFF
            packets.append(header + payload)
        return packets


async def measure(viewers: int, switches: int, rtt: float) -> dict[str, list[float]]:
    """Switch times (s), SFU shares (s) and CPU per viewer switched (s), both directions."""
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.setblocking(False)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.setblocking(False)
    loop = asyncio.get_running_loop()

    def drain() -> None:
        try:
            while True:
                sink.recv(2048)
        except BlockingIOError:
            pass

    loop.add_reader(sink.fileno(), drain)
    low, top = Layer("q", 0x1111, rtt), Layer("f", 0x2222, rtt)
    consumers: list[Consumer] = []
    for index in range(viewers):
        built = consumer(index, sender, sink.getsockname(), True)
        built.bind(low.producer)
        consumers.append(built)

    async def publish() -> None:
        start = time.perf_counter()
        while True:
            low.frame()
            top.frame()
            next_frame = start + (low.frames / FPS)
            await asyncio.sleep(max(0.0, next_frame - time.perf_counter()))

    results: dict[str, list[float]] = {"time": [], "sfu": [], "cpu": []}
    publishing = asyncio.create_task(publish())
    try:
        await asyncio.sleep(0.5)
        for index in range(switches * 2):
            target = top if index % 2 == 0 else low
            target.delivered.clear()
            cpu = target.cpu
            begin = time.perf_counter()
            for each in consumers:
                each.switch(target.producer)
            await asyncio.wait_for(target.delivered.wait(), 5)
            if (
                target.keyframe_sent is None
                or target.keyframe_started is None
                or not all(each.producer is target.producer for each in consumers)
            ):
                raise RuntimeError("a viewer did not switch at the keyframe")
            results["time"].append(target.keyframe_sent - begin)
            results["sfu"].append(target.keyframe_sent - target.keyframe_started)
            results["cpu"].append((target.cpu - cpu) / viewers)
            await asyncio.sleep(0.3 + (index % 5) / FPS / 5)  # switch at varied frame phases
    finally:
        publishing.cancel()
        loop.remove_reader(sink.fileno())
        for each in consumers:
            each.close()
        low.producer.close()
        top.producer.close()
        sink.close()
        sender.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", default="1,50,200", help="comma-separated viewer counts")
    parser.add_argument("--switches", type=int, default=20, help="up and down, each")
    parser.add_argument("--rtt", type=float, default=0.05, help="publisher round trip, s")
    args = parser.parse_args()
    print(
        f"layer switch, {args.switches} up and {args.switches} down, publisher round trip "
        f"{args.rtt * 1000:.0f} ms, {FPS} fps (a frame every {1000 / FPS:.0f} ms):"
    )
    figures: dict[str, float] = {}
    for viewers in (int(n) for n in args.viewers.split(",")):
        found = asyncio.run(measure(viewers, args.switches, args.rtt))
        ms = {name: [value * 1000 for value in values] for name, values in found.items()}
        median, p90 = statistics.median(ms["time"]), percentile(ms["time"], 0.9)
        share = statistics.median(ms["sfu"])
        cpu = statistics.median(ms["cpu"]) * 1000
        print(
            f"  {viewers:4} viewers: switch {median:6.1f} ms median, {p90:6.1f} ms p90; "
            f"the SFU's share {share:5.2f} ms; keyframe fan-out {cpu:5.1f} µs of CPU a viewer"
        )
        # The table of `make bench` takes the last (largest) count's.
        figures = {
            "switch_ms": round(median, 1),
            "switch_p90_ms": round(p90, 1),
            "sfu_share_ms": round(share, 2),
        }
    emit(**figures)


if __name__ == "__main__":
    main()
