"""Fixtures for recorder tests: real encoded media, a real SeaweedFS S3 server."""

from __future__ import annotations

import asyncio

import pytest

from recorder.recorder import Recorder
from tests.seaweed import ACCESS_KEY, SECRET_KEY, Seaweed, seaweed

from .media import Timed, interleave, opus_rtp, video_rtp

__all__ = ["ACCESS_KEY", "SECRET_KEY", "Seaweed", "seaweed"]


@pytest.fixture(scope="session")
def h264_av() -> list[Timed]:
    """Six seconds of 640x360 30 fps H.264 (keyframe every second) and Opus, interleaved."""
    return interleave(video_rtp(6.0, "H264"), opus_rtp(6.0))


@pytest.fixture(scope="session")
def h264_long() -> list[Timed]:
    """Ten seconds of 320x180 H.264 and Opus: enough segments for delta updates."""
    return interleave(video_rtp(10.0, "H264", width=320, height=180), opus_rtp(10.0))


@pytest.fixture(scope="session")
def vp8_av() -> list[Timed]:
    return interleave(video_rtp(5.0, "VP8"), opus_rtp(5.0))


async def feed(recorder: Recorder, packets: list[Timed], speed: float = 8.0) -> None:
    """Feed packets at `speed` times real time, yielding to the loop between bursts."""
    start = asyncio.get_running_loop().time()
    for index, packet in enumerate(packets):
        recorder.on_rtp(packet.kind, packet.data)
        if index % 20 == 19:
            due = start + packet.at / speed
            await asyncio.sleep(max(0.0, due - asyncio.get_running_loop().time()))
