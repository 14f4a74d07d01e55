"""Recorder tunables, with the defaults the design asks for (segments <= 2 s, LL-HLS parts)."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RecorderConfig:
    """Segment and part timing, transcode settings and limits for one recording."""

    part_target: float = 0.5
    segment_min: float = 1.0
    segment_max: float = 2.0
    keyframe_request_after: float = 1.2  # remux: ask for a keyframe this long after the last
    forced_keyframe_interval: float = 1.8  # transcode: our own encoder's keyframe cadence
    parts_window: int = 3  # segments (before the one in progress) that keep EXT-X-PART lines
    audio_channels: int = 1  # browsers send mono Opus; mono AAC costs a fifth of stereo
    audio_bitrate: int = 64000
    transcode_bitrate: int = 1_500_000
    worker_batch: float = 0.1  # seconds the muxer sleeps between batches of frames
    max_queue: int = 3000  # frames waiting for the muxer before it is considered stuck
    poster_at: float = 2.0  # first keyframe at or after this media time makes the poster
    max_bytes: int | None = None  # optional disk quota for the recording, treated as disk full

    @property
    def target_duration(self) -> int:
        return math.ceil(self.segment_max)

    @property
    def part_hold_back(self) -> float:
        return round(3 * self.part_target, 3)

    @property
    def skip_until(self) -> float:
        return float(6 * self.target_duration)

    @property
    def fragment_duration(self) -> float:
        # The muxer cuts at the first packet past this, so aim below the part target.
        return self.part_target * 0.8
