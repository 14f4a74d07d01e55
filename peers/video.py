"""A test video file, made with PyAV: what product-video tests and benchmarks upload."""

from __future__ import annotations

import math
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av


def moving_pattern(width: int, height: int, seconds: float, fps: int) -> Iterator[av.VideoFrame]:
    """FFmpeg's moving test pattern (``testsrc2``): 4:2:0 frames with their timestamps."""
    graph = av.filter.Graph()
    source = graph.add("testsrc2", f"size={width}x{height}:rate={fps}")
    sink = graph.add("buffersink")
    source.link_to(sink)
    graph.configure()
    for index in range(round(seconds * fps)):
        frame = sink.pull()
        assert isinstance(frame, av.VideoFrame)
        frame = frame.reformat(format="yuv420p")
        frame.pts, frame.time_base = index, Fraction(1, fps)
        yield frame


def write_test_video(
    path: Path,
    *,
    width: int = 640,
    height: int = 360,
    seconds: float = 3.0,
    fps: int = 30,
    audio: bool = True,
) -> Path:
    """A moving test pattern (H.264) with a tone (AAC) in an MP4 file, made with PyAV."""
    with av.open(str(path), "w", format="mp4") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.codec_context.options = {"preset": "ultrafast"}
        sound = container.add_stream("aac", rate=48000) if audio else None
        for frame in moving_pattern(width, height, seconds, fps):
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if sound is not None:
            tones = av.filter.Graph()
            sine = tones.add("sine", "frequency=440:sample_rate=48000:samples_per_frame=1024")
            stereo = tones.add("aformat", "sample_fmts=fltp:channel_layouts=stereo")
            out = tones.add("abuffersink")
            sine.link_to(stereo)
            stereo.link_to(out)
            tones.configure()
            for _ in range(math.ceil(seconds * 48000 / 1024)):
                chunk = out.pull()
                assert isinstance(chunk, av.AudioFrame)
                container.mux(sound.encode(chunk))
            container.mux(sound.encode(None))
    return path
