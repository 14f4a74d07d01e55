"""What the muxer tells the recorder (delivered on the event loop)."""

from __future__ import annotations

from dataclasses import dataclass

from .segmenter import PartRecord, SegmentRecord


@dataclass(frozen=True, slots=True)
class Started:
    """Muxing began: media time `start` (seconds after the timeline origin) is playlist zero;
    `size` is the video's picture (None without video)."""

    start: float
    size: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class PartWritten:
    part: PartRecord


@dataclass(frozen=True, slots=True)
class SegmentWritten:
    segment: SegmentRecord


@dataclass(frozen=True, slots=True)
class KeyframeWanted:
    """The decoder lost its reference (transcode path): ask the publisher for a keyframe."""


@dataclass(frozen=True, slots=True)
class Truncated:
    """The disk filled up: nothing more is written; the in-progress segment is discarded."""

    reason: str


@dataclass(frozen=True, slots=True)
class Stopped:
    """The muxer flushed everything and exited."""

    poster: bool
    error: str | None = None


MuxerEvent = Started | PartWritten | SegmentWritten | KeyframeWanted | Truncated | Stopped
