"""What a node's recordings have done so far, for monitoring: read at scrape time."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class RecordingTally:
    """Running totals over every recording of a node, counted on the event loop (never per
    packet: per segment and per uploaded file). One is shared by the node's recorders and
    upload queues; a metrics collector reads it."""

    segments: int = 0  # completed HLS segments written to disk
    segment_bytes: int = 0  # their media bytes
    uploads: int = 0  # files stored and checked
    upload_bytes: int = 0
    upload_seconds: float = 0.0  # the time those stores took, in total
    upload_failures: int = 0  # tries that failed (each is retried)

    def segment(self, size: int) -> None:
        self.segments += 1
        self.segment_bytes += size

    def uploaded(self, size: int, seconds: float) -> None:
        self.uploads += 1
        self.upload_bytes += size
        self.upload_seconds += seconds
