"""The files of one recording on local disk, and what running out of disk looks like."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from .segmenter import PartRecord

INIT = "init.mp4"
LIVE_PLAYLIST = "index.m3u8"
VOD_PLAYLIST = "vod.m3u8"
POSTER = "poster.jpg"
META = "recording.json"
CUES = "cues.jsonl"
_FULL = {errno.ENOSPC, errno.EDQUOT}


class DiskFull(Exception):
    """The disk (or the recording's quota) is full: recording must stop writing."""


class RecordingFiles:
    """Writes a recording's init segment, parts, segments and small text files.

    Segments are appended part by part, so a crash leaves at most one segment whose
    tail is incomplete (see `repair`). Text files are replaced atomically. ENOSPC and
    EDQUOT, and going past the optional `max_bytes` quota, raise `DiskFull`.
    """

    def __init__(self, directory: Path, max_bytes: int | None = None) -> None:
        self.directory = directory
        self._max_bytes = max_bytes
        self.bytes_written = 0

    def prepare(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)

    def path(self, name: str) -> Path:
        return self.directory / name

    def write_init(self, data: bytes) -> None:
        self._write(INIT, data, "wb")

    def write_part(self, part: PartRecord, segment_uri: str, data: bytes) -> None:
        self._write(part.uri, data, "wb")
        self._write(segment_uri, data, "ab")

    def remove_parts(self, parts: list[PartRecord]) -> None:
        for part in parts:
            self.path(part.uri).unlink(missing_ok=True)

    def remove(self, name: str) -> None:
        self.path(name).unlink(missing_ok=True)

    def remove_all_parts(self) -> None:
        for path in self.directory.glob("part-*.m4s"):
            path.unlink(missing_ok=True)

    def write_text(self, name: str, text: str) -> None:
        self.write_bytes(name, text.encode())

    def write_bytes(self, name: str, data: bytes) -> None:
        """Replace a small file atomically (write a temporary file, then rename)."""
        temporary = self.path(f".{name}.tmp")
        self._write(temporary.name, data, "wb")
        os.replace(temporary, self.path(name))

    def append_text(self, name: str, text: str) -> None:
        self._write(name, text.encode(), "ab")

    def _write(self, name: str, data: bytes, mode: str) -> None:
        if self._max_bytes is not None and self.bytes_written + len(data) > self._max_bytes:
            raise DiskFull(f"recording quota of {self._max_bytes} bytes reached")
        try:
            with open(self.path(name), mode) as file:
                file.write(data)
        except OSError as error:
            if error.errno in _FULL:
                raise DiskFull(str(error)) from error
            raise
        self.bytes_written += len(data)
