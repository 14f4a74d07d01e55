"""Recorder tunables, with the defaults the design asks for (segments <= 2 s, LL-HLS parts)."""

from __future__ import annotations

import math
from dataclasses import dataclass

# The longest DVR window: a 4 h live playlist is ~1 MB of text, loaded whole by every player
# that joins and rendered on every poll (docs/recorder.md, "DVR window").
DVR_CAP_SECONDS = 4 * 3600.0


@dataclass(frozen=True, slots=True)
class RecorderConfig:
    """Segment and part timing, transcode settings and limits for one recording."""

    part_target: float = 1 / 3  # PART-HOLD-BACK 1 s: bench/hls_latency.py, docs/recorder.md
    segment_min: float = 1.0
    segment_max: float = 2.0
    keyframe_request_after: float = 1.2  # remux: ask for a keyframe this long after the last
    forced_keyframe_interval: float = 1.8  # transcode: our own encoder's keyframe cadence
    parts_window: int = 3  # segments (before the one in progress) that keep EXT-X-PART lines
    dvr_seconds: float = DVR_CAP_SECONDS  # the live playlist keeps about this much, the VOD all
    audio_channels: int = 1  # browsers send mono Opus; mono AAC costs a fifth of stereo
    audio_bitrate: int = 64000
    transcode_bitrate: int = 1_500_000
    worker_batch: float = 0.1  # seconds the muxer sleeps between batches of frames
    max_queue: int = 3000  # frames waiting for the muxer before it is considered stuck
    poster_at: float = 2.0  # first keyframe at or after this media time makes the poster
    max_bytes: int | None = None  # optional disk quota for the recording, treated as disk full
    # Media time zero is the timeline's origin, not the first keyframe: the renditions of a
    # ladder share one Origin, so their timestamps match and a player can switch between them.
    zero_at_origin: bool = False

    def __post_init__(self) -> None:
        # RFC 8216bis 6.2.2: a live playlist never gets shorter than three target durations.
        if self.dvr_seconds < self.min_dvr_seconds:
            raise ValueError(f"dvr_seconds must be at least {self.min_dvr_seconds}")

    @property
    def min_dvr_seconds(self) -> float:
        return float(3 * self.target_duration)

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
