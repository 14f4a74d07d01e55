"""A pre-encoded 720p30 H.264 clip replayed at real time, and an Opus tone.

The clip is encoded once with libx264 (constant bitrate, fixed GOP) so the publisher's CPU
goes to sending, not encoding; aiortc packetizes the Annex-B packets (``Encoder.pack``).
"""

from __future__ import annotations

import asyncio
import fractions
import math
import os
import struct
import time

import av
from aiortc import AudioStreamTrack, MediaStreamTrack
from av.frame import Frame
from av.packet import Packet

VIDEO_CLOCK = 90_000
_TONE = struct.pack(
    "<160h", *(int(8000 * math.sin(2 * math.pi * 400 * i / 8000)) for i in range(160))
)


def encode_clip(
    *,
    width: int = 1280,
    height: int = 720,
    fps: int = 30,
    seconds: int = 10,
    bitrate: int = 1_500_000,
    gop: int = 60,
) -> list[tuple[bytes, bool]]:
    """Encode a moving test pattern; returns (Annex-B access unit, is keyframe) per frame."""
    codec = av.CodecContext.create("libx264", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
    codec.time_base = fractions.Fraction(1, fps)
    codec.framerate = fractions.Fraction(fps, 1)
    codec.bit_rate = bitrate
    codec.options = {
        "preset": "veryfast",
        "tune": "zerolatency",
        "profile": "baseline",
        "maxrate": str(bitrate),
        "bufsize": str(bitrate // 2),
        "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:nal-hrd=cbr:filler=1",
    }
    stripes = bytes((x * 3) & 0xFF for x in range(width * 2))
    patch_w, patch_h = width // 4, height // 4
    frames: list[tuple[bytes, bool]] = []
    for index in range(fps * seconds):
        frame = av.VideoFrame(width, height, "yuv420p")
        shift = (index * 8) % width
        rows = bytearray(stripes[shift : shift + width] * height)
        noise = os.urandom(patch_w * patch_h)  # fresh detail every frame: real bits to send
        top = (index * 4) % (height - patch_h)
        for row in range(patch_h):
            start = (top + row) * width + width // 3
            rows[start : start + patch_w] = noise[row * patch_w : (row + 1) * patch_w]
        frame.planes[0].update(bytes(rows))
        frame.planes[1].update(bytes([128]) * (width * height // 4))
        frame.planes[2].update(bytes([(index * 2) & 0xFF]) * (width * height // 4))
        frame.pts = index
        frames.extend((bytes(p), bool(p.is_keyframe)) for p in codec.encode(frame))
    frames.extend((bytes(p), bool(p.is_keyframe)) for p in codec.encode(None))
    return frames


class ClipTrack(MediaStreamTrack):
    """Replays encoded frames in a loop at ``fps`` as ``av.Packet`` (aiortc sends them as is)."""

    kind = "video"

    def __init__(self, frames: list[tuple[bytes, bool]], fps: int = 30) -> None:
        super().__init__()
        self._frames = frames
        self._fps = fps
        self._index = 0
        self._start: float | None = None

    async def recv(self) -> Frame | Packet:  # type: ignore[type-arg]
        if self._start is None:
            self._start = time.monotonic()
        index = self._index
        self._index += 1
        delay = self._start + index / self._fps - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        data, _ = self._frames[index % len(self._frames)]
        packet = av.Packet(data)
        packet.pts = index * VIDEO_CLOCK // self._fps
        packet.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        return packet


class ToneTrack(AudioStreamTrack):
    """A 400 Hz tone, so that Opus packets have realistic sizes (silence compresses to ~3 B)."""

    async def recv(self) -> Frame:
        frame = await super().recv()
        assert isinstance(frame, av.AudioFrame)
        frame.planes[0].update(_TONE)
        return frame
