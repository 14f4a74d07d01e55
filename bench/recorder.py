"""Recorder CPU at real-time pace: 720p30 H.264 ~1.5 Mbit/s + Opus, remuxed to LL-HLS.

    python -m bench.recorder --seconds 20

Prints the process CPU (all threads) as a percentage of one core, for the feeding loop
alone and with the recorder attached; the difference is the recorder's cost. Also prints
the muxer thread's own share and part/segment timing.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import av
from aiortc.codecs.h264 import H264Encoder
from aiortc.rtp import HeaderExtensionsMap, RtpPacket
from av.filter import Graph
from av.video.frame import PictureType

from recorder.recorder import Recorder
from recorder.track import TrackInfo

VIDEO_PT, AUDIO_PT = 102, 111
TRACKS = [TrackInfo("video", "H264", VIDEO_PT, 90000), TrackInfo("audio", "opus", AUDIO_PT, 48000)]
_EXT = HeaderExtensionsMap()


@dataclass
class Burst:
    """Packets sent together (one video frame or one audio frame) at media time `at`."""

    at: float
    kind: str
    packets: list[bytearray]
    ts_step: int  # RTP clock units per loop of the clip, for rewriting timestamps


def _source(spec: str, sink_name: str) -> Graph:
    graph = Graph()
    source = graph.add(*spec.split(" ", 1))
    sink = graph.add(sink_name)
    source.link_to(sink)
    graph.configure()
    return graph


def h264_clip(seconds: float, bitrate: int) -> list[Burst]:
    graph = _source("testsrc2 size=1280x720:rate=30", "buffersink")
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = 1280, 720, "yuv420p"
    encoder.time_base, encoder.framerate = Fraction(1, 90000), Fraction(30, 1)
    encoder.bit_rate, encoder.gop_size, encoder.max_b_frames = bitrate, 45, 0
    encoder.options = {"preset": "ultrafast", "tune": "zerolatency"}
    packer, bursts, seq = H264Encoder(), [], 0
    frames = round(seconds * 30)
    for index in range(frames):
        frame = graph.pull().reformat(format="yuv420p")  # type: ignore[union-attr]
        frame.pict_type, frame.pts, frame.time_base = (
            PictureType.NONE,
            index * 3000,
            Fraction(1, 90000),
        )
        for packet in encoder.encode(frame):
            payloads, _ = packer.pack(packet)
            pts = int(packet.pts or 0)
            rtp = [
                _packet(VIDEO_PT, seq + i, pts, i == len(payloads) - 1, p)
                for i, p in enumerate(payloads)
            ]
            seq += len(payloads)
            bursts.append(Burst(pts / 90000, "video", rtp, frames * 3000))
    return bursts


def opus_clip(seconds: float) -> list[Burst]:
    graph = _source("sine frequency=440:sample_rate=48000:samples_per_frame=960", "abuffersink")
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate, encoder.layout, encoder.format = 48000, "mono", "s16"
    encoder.time_base, encoder.bit_rate = Fraction(1, 48000), 32000
    resampler = av.AudioResampler(format="s16", layout="mono", rate=48000)
    bursts: list[Burst] = []
    count = round(seconds * 50)
    for _ in range(count):
        for frame in resampler.resample(graph.pull()):  # type: ignore[arg-type]
            frame.pts = None
            for packet in encoder.encode(frame):
                index = len(bursts)
                rtp = [_packet(AUDIO_PT, index, index * 960, True, bytes(packet))]
                bursts.append(Burst(index * 960 / 48000, "audio", rtp, count * 960))
    return bursts


def _packet(pt: int, seq: int, ts: int, marker: bool, payload: bytes) -> bytearray:
    packet = RtpPacket(
        payload_type=pt,
        marker=marker,
        sequence_number=seq & 0xFFFF,
        timestamp=ts,
        ssrc=0x1234 + pt,
        payload=payload,
    )
    return bytearray(packet.serialize(_EXT))


def _rewrite(packet: bytearray, seq_offset: int, ts_offset: int) -> bytes:
    seq = (int.from_bytes(packet[2:4], "big") + seq_offset) & 0xFFFF
    ts = (int.from_bytes(packet[4:8], "big") + ts_offset) & 0xFFFFFFFF
    packet[2:4], packet[4:8] = seq.to_bytes(2, "big"), ts.to_bytes(4, "big")
    data = bytes(packet)
    packet[2:4] = ((seq - seq_offset) & 0xFFFF).to_bytes(2, "big")
    packet[4:8] = ((ts - ts_offset) & 0xFFFFFFFF).to_bytes(4, "big")
    return data


class RtpSink(Protocol):
    def on_rtp(self, kind: str, packet: bytes) -> None: ...


async def feed(bursts: list[Burst], clip: float, seconds: float, sink: RtpSink) -> float:
    """Send the looped clip at real-time pace; return the wall time it took."""
    on_rtp = sink.on_rtp
    counts = {
        "video": sum(len(b.packets) for b in bursts if b.kind == "video"),
        "audio": sum(len(b.packets) for b in bursts if b.kind == "audio"),
    }
    loop = asyncio.get_running_loop()
    start = loop.time()
    loops = int(seconds // clip) + 1
    for round_ in range(loops):
        for burst in bursts:
            at = round_ * clip + burst.at
            if at >= seconds:
                break
            delay = start + at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            for packet in burst.packets:
                on_rtp(
                    burst.kind,
                    _rewrite(packet, round_ * counts[burst.kind], round_ * burst.ts_step),
                )
    return loop.time() - start


class NullSink:
    def on_rtp(self, kind: str, packet: bytes) -> None:
        return None


def thread_cpu(native_id: int) -> float:
    fields = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(seconds: float, bitrate: int) -> None:
    clip = 6.0
    print(f"encoding a {clip:.0f} s 720p30 clip (looped to {seconds:.0f} s) ...", flush=True)
    bursts = sorted(h264_clip(clip, bitrate) + opus_clip(clip), key=lambda b: b.at)
    video_bytes = sum(len(p) for b in bursts if b.kind == "video" for p in b.packets)
    print(
        f"video RTP bitrate: {video_bytes * 8 / clip / 1e6:.2f} Mbit/s, "
        f"{sum(len(b.packets) for b in bursts) / clip:.0f} packets/s"
    )

    cpu0, wall = time.process_time(), await feed(bursts, clip, seconds, NullSink())
    baseline = (time.process_time() - cpu0) / wall * 100

    with tempfile.TemporaryDirectory() as directory:
        recorder = Recorder(Path(directory), TRACKS)
        worker = recorder._muxer._thread
        cpu0 = time.process_time()
        wall = await feed(bursts, clip, seconds, recorder)
        total = (time.process_time() - cpu0) / wall * 100
        worker_cpu = thread_cpu(worker.native_id or 0) / wall * 100
        result = await recorder.finish()
        report(recorder, result.duration, result.segments, baseline, total, worker_cpu)


def report(
    recorder: Recorder, duration: float, segments: int, baseline: float, total: float, worker: float
) -> None:
    playlist = recorder.playlist
    parts = [p.duration for s in playlist.segments for p in s.parts]
    seg = [s.duration for s in playlist.segments]
    gaps = [b - a for a, b in itertools.pairwise(recorder.part_times)]
    print(f"feeder alone:           {baseline:5.2f} % of one core")
    print(f"feeder + recorder:      {total:5.2f} % of one core")
    print(
        f"recorder (difference):  {total - baseline:5.2f} % of one core "
        f"(muxer thread: {worker:.2f} %)"
    )
    print(
        f"recorded {duration:.2f} s in {segments} segments: "
        f"segment {min(seg):.2f}-{max(seg):.2f} s (mean {statistics.mean(seg):.2f}), "
        f"part {min(parts):.3f}-{max(parts):.3f} s (mean {statistics.mean(parts):.3f})"
    )
    if gaps:
        print(
            f"parts published every {statistics.mean(gaps) * 1000:.0f} ms "
            f"(max gap {max(gaps) * 1000:.0f} ms); keyframe requests sent: "
            f"{sum(p.requests for p in recorder._policies)}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--bitrate", type=int, default=1_500_000)
    args = parser.parse_args()
    asyncio.run(measure(args.seconds, args.bitrate))


if __name__ == "__main__":
    main()
