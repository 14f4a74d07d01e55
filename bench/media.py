"""Media processing speed: seconds of uploaded video turned into an HLS ladder per CPU-second.

`python -m bench.media` encodes a 720p and a 1080p test clip (H.264 + AAC in MP4), runs the
ladder on each in this process and prints how many seconds of video one CPU-second
processes (user + system time of every thread; FFmpeg's own threads included).
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av

from recorder.ladder import build_ladder


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


def measure(width: int, height: int, seconds: float) -> tuple[float, float]:
    """Seconds of video per CPU-second, and wall seconds, for one source size."""
    with tempfile.TemporaryDirectory() as directory:
        source = write_test_video(
            Path(directory) / "source.mp4", width=width, height=height, seconds=seconds
        )
        cpu, wall = time.process_time(), time.perf_counter()
        result = build_ladder(source, Path(directory) / "out")
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return result.metadata.duration / cpu, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each test clip")
    args = parser.parse_args()
    for name, width, height in (("720p", 1280, 720), ("1080p", 1920, 1080)):
        speed, wall = measure(width, height, args.seconds)
        print(
            f"{name} source, {args.seconds:.0f} s: {speed:.2f} s of video per CPU-second "
            f"({wall:.1f} s wall)"
        )


if __name__ == "__main__":
    main()
