"""Real media for recorder tests: encoded with PyAV, packetized into RTP with aiortc."""

from __future__ import annotations

import random
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtp import HeaderExtensionsMap, RtpPacket
from av.filter import Graph
from av.video.frame import PictureType

VIDEO_PT, VP8_PT, AUDIO_PT = 102, 96, 111
_EXTENSIONS = HeaderExtensionsMap()


@dataclass(frozen=True)
class Timed:
    """One RTP packet and the media time (seconds) at which a real sender would send it."""

    at: float
    kind: str
    data: bytes


def _video_frames(seconds: float, width: int, height: int, fps: int) -> list[av.VideoFrame]:
    graph = Graph()
    source = graph.add("testsrc2", f"size={width}x{height}:rate={fps}")
    sink = graph.add("buffersink")
    source.link_to(sink)
    graph.configure()
    frames = []
    for _ in range(round(seconds * fps)):
        frame = sink.pull()
        assert isinstance(frame, av.VideoFrame)
        frame = frame.reformat(format="yuv420p")
        frame.pict_type = PictureType.NONE  # the test source marks every frame intra
        frames.append(frame)
    return frames


def _rtp(payloads: list[bytes], pt: int, seq: int, ts: int, ssrc: int) -> list[bytes]:
    out = []
    for index, payload in enumerate(payloads):
        packet = RtpPacket(
            payload_type=pt,
            marker=index == len(payloads) - 1,
            sequence_number=(seq + index) & 0xFFFF,
            timestamp=ts & 0xFFFFFFFF,
            ssrc=ssrc,
            payload=payload,
        )
        out.append(packet.serialize(_EXTENSIONS))
    return out


def video_rtp(
    seconds: float,
    codec: str = "H264",
    *,
    width: int = 640,
    height: int = 360,
    fps: int = 30,
    gop: int = 30,
    bitrate: int = 800_000,
    ts_base: int | None = None,
) -> list[Timed]:
    """RTP packets of an encoded test picture, keyframe every `gop` frames."""
    rng = random.Random(7)
    encoder = av.CodecContext.create("libx264" if codec == "H264" else "libvpx", "w")
    assert isinstance(encoder, av.VideoCodecContext)
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.time_base = Fraction(1, 90000)
    encoder.framerate = Fraction(fps, 1)
    encoder.gop_size = gop
    encoder.max_b_frames = 0
    encoder.bit_rate = bitrate
    if codec == "H264":
        encoder.options = {"preset": "ultrafast", "tune": "zerolatency"}
        packer: H264Encoder | Vp8Encoder = H264Encoder()
    else:
        encoder.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
        packer = Vp8Encoder()
    pt = VIDEO_PT if codec == "H264" else VP8_PT
    seq, ssrc = rng.randrange(65536), rng.randrange(1 << 32)
    base = rng.randrange(1 << 32) if ts_base is None else ts_base
    out: list[Timed] = []
    frames = _video_frames(seconds, width, height, fps)
    step = 90000 // fps
    for index, frame in enumerate(frames):
        frame.pts, frame.time_base = index * step, Fraction(1, 90000)
        for packet in encoder.encode(frame):
            payloads, _ = packer.pack(packet)
            assert packet.pts is not None
            for data in _rtp(payloads, pt, seq, base + packet.pts, ssrc):
                out.append(Timed(packet.pts / 90000, "video", data))
            seq += len(payloads)
    return out


def opus_rtp(seconds: float, *, ts_base: int | None = None) -> list[Timed]:
    """RTP packets of a 440 Hz tone in 20 ms Opus frames."""
    rng = random.Random(11)
    graph = Graph()
    source = graph.add("sine", "frequency=440:sample_rate=48000:samples_per_frame=960")
    sink = graph.add("abuffersink")
    source.link_to(sink)
    graph.configure()
    encoder = av.CodecContext.create("libopus", "w")
    assert isinstance(encoder, av.AudioCodecContext)
    encoder.sample_rate, encoder.layout, encoder.format = 48000, "stereo", "s16"
    encoder.time_base = Fraction(1, 48000)
    encoder.bit_rate = 48000
    resampler = av.AudioResampler(format="s16", layout="stereo", rate=48000)
    seq, ssrc = rng.randrange(65536), rng.randrange(1 << 32)
    base = rng.randrange(1 << 32) if ts_base is None else ts_base
    out: list[Timed] = []
    index = 0
    for _ in range(round(seconds * 50)):
        tone = sink.pull()
        assert isinstance(tone, av.AudioFrame)
        for frame in resampler.resample(tone):
            frame.pts = None
            for packet in encoder.encode(frame):
                data = _rtp([bytes(packet)], AUDIO_PT, seq, base + index * 960, ssrc)[0]
                out.append(Timed(index * 960 / 48000, "audio", data))
                seq, index = seq + 1, index + 1
    return out


def interleave(*streams: list[Timed]) -> list[Timed]:
    return sorted((p for stream in streams for p in stream), key=lambda p: p.at)


def decode_recording(directory: Path, playlist: str = "vod.m3u8") -> dict[str, float]:
    """Decode init + every listed segment; return frame counts and media durations."""
    names = [
        line
        for line in (directory / playlist).read_text().splitlines()
        if line and not line.startswith("#")
    ]
    joined = directory / "joined.mp4"
    with open(joined, "wb") as out:
        out.write((directory / "init.mp4").read_bytes())
        for name in names:
            out.write((directory / name).read_bytes())
    stats = {"video_frames": 0.0, "audio_frames": 0.0, "video_end": 0.0, "audio_end": 0.0}
    with av.open(str(joined)) as container:
        for frame in container.decode(*container.streams):
            assert frame.pts is not None and frame.time_base is not None
            end = float(frame.pts * frame.time_base)
            if isinstance(frame, av.VideoFrame):
                stats["video_frames"] += 1
                stats["video_end"] = max(stats["video_end"], end)
            else:
                stats["audio_frames"] += 1
                stats["audio_end"] = max(stats["audio_end"], end)
    joined.unlink()
    return stats
