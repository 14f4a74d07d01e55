"""What a finished (or repaired) recording produced."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path


@dataclass(frozen=True, slots=True)
class RecordingResult:
    """The outcome of a recording: its files (relative names), length and how it ended.

    `truncated` is True when the disk filled up or the recording had to be repaired after
    a crash: the files are playable but end early. `files` lists everything to upload.
    """

    directory: Path
    duration: float
    segments: int
    files: list[str] = field(default_factory=list)
    truncated: bool = False
    media: tuple[datetime, datetime] | None = None  # its first and last media (Playlist.media)
    poster: str | None = None
    playlist: str = "index.m3u8"
    vod_playlist: str = "vod.m3u8"
    error: str | None = None
