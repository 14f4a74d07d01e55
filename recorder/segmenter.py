"""Groups parts (fragments) into HLS media segments."""

from __future__ import annotations

from dataclasses import dataclass, field

from .fragmenter import Fragment


def segment_name(msn: int) -> str:
    return f"segment-{msn:05d}.m4s"


def part_name(number: int) -> str:
    """Parts are numbered across segments, so a preload hint always names the next one."""
    return f"part-{number:06d}.m4s"


@dataclass(frozen=True, slots=True)
class PartRecord:
    msn: int
    index: int  # within its segment
    number: int  # across the recording
    uri: str
    start: float
    duration: float
    independent: bool
    size: int = 0  # bytes of media


@dataclass(slots=True)
class SegmentRecord:
    msn: int
    uri: str
    start: float
    independent: bool
    parts: list[PartRecord] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return sum(part.duration for part in self.parts)

    @property
    def size(self) -> int:
        return sum(part.size for part in self.parts)


class Segmenter:
    """Decides where segments start: at a keyframe part once the segment is long enough,
    or, lacking a keyframe, before the segment would exceed its maximum duration (such a
    segment is not independent; it still decodes after the one before it).
    """

    def __init__(self, segment_min: float, segment_max: float) -> None:
        self._min = segment_min
        self._max = segment_max
        self.current: SegmentRecord | None = None
        self.next_msn = 0
        self.next_part = 0

    def place(self, fragment: Fragment) -> tuple[SegmentRecord | None, PartRecord]:
        """Assign a fragment to a segment; return (the segment it closed, if any, its part)."""
        closed: SegmentRecord | None = None
        current = self.current
        if current is not None and current.parts:
            elapsed = current.duration
            if (fragment.independent and elapsed >= self._min) or (
                elapsed + fragment.duration > self._max + 1e-3
            ):
                closed = self.close()
        if self.current is None:
            msn = self.next_msn
            self.current = SegmentRecord(
                msn, segment_name(msn), fragment.start, fragment.independent
            )
        segment = self.current
        index = len(segment.parts)
        number = self.next_part
        self.next_part += 1
        part = PartRecord(
            segment.msn,
            index,
            number,
            part_name(number),
            fragment.start,
            fragment.duration,
            fragment.independent,
            len(fragment.data),
        )
        segment.parts.append(part)
        return closed, part

    def close(self) -> SegmentRecord | None:
        """Close the segment in progress (at a boundary, or at the end of the recording)."""
        segment, self.current = self.current, None
        if segment is None or not segment.parts:
            return None
        self.next_msn = segment.msn + 1
        return segment
