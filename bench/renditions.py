"""Media processing speed: seconds of uploaded video turned into HLS and DASH tracks per CPU-second.

`python -m bench.renditions` encodes a 720p and a 1080p test clip (H.264 + AAC in MP4), runs the
ladder on each in this process and prints how many seconds of video one CPU-second
processes (user + system time of every thread; FFmpeg's own threads included).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from api.catalog.renditions import build_ladder
from peers.video import write_test_video


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
