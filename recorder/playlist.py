"""The media playlist: live (LL-HLS, a DVR window, delta updates) and VOD renderings."""

from __future__ import annotations

import bisect
import enum
from datetime import UTC, datetime, timedelta

from .config import RecorderConfig
from .cue import Cue, format_date, quoted
from .files import INIT
from .segmenter import PartRecord, SegmentRecord, part_name


class Skip(enum.Enum):
    """Delta update requests: `_HLS_skip=YES` skips segments, `v2` also date ranges."""

    NO = "NO"
    YES = "YES"
    V2 = "v2"


def _seconds(value: float) -> str:
    return f"{value:.5f}"


class Playlist:
    """Segments, parts and cues of one recording, rendered as HLS text.

    States: empty (no media yet) -> live (segments and parts arrive) -> ended (ENDLIST).
    Not thread-safe: the recorder mutates it on the event loop only.
    """

    def __init__(self, config: RecorderConfig) -> None:
        self._config = config
        self.start: datetime | None = None  # wall-clock time of media time zero
        self.segments: list[SegmentRecord] = []  # the whole show, for the VOD playlist
        self.parts: list[PartRecord] = []  # of the segment in progress
        self.cues: list[Cue] = []
        self.ended = False
        self._first_live = 0  # index of the oldest segment still in the live playlist
        self._live_duration = 0.0  # of segments[_first_live:]
        self._ends: list[float] = []  # media time at which each segment ends, for cues
        self._texts: dict[int, str] = {}  # segment index -> its lines without parts

    # Changes ------------------------------------------------------------------------------

    def add_part(self, part: PartRecord) -> None:
        self.parts.append(part)

    def add_segment(self, segment: SegmentRecord) -> None:
        self.segments.append(segment)
        self.parts = [part for part in self.parts if part.msn != segment.msn]
        self._ends.append(segment.start + segment.duration)
        self._live_duration += segment.duration
        self._slide()

    def _slide(self) -> None:
        """The DVR window: the oldest segment leaves the live playlist once the others, without
        it, still last `dvr_seconds` (never less than three target durations: RFC 8216bis)."""
        window = self._config.dvr_seconds
        while self._live_duration - self.segments[self._first_live].duration >= window:
            self._live_duration -= self.segments[self._first_live].duration
            self._first_live += 1

    def add_cue(self, cue: Cue) -> None:
        for known in self.cues:
            if known.id == cue.id and known.class_ != cue.class_:
                raise ValueError(f"cue {cue.id!r} already exists with another class")
        self.cues.append(cue)

    def end(self) -> None:
        """Close the playlist; a part-built segment that never completed is dropped."""
        self.parts = []
        self.ended = True

    # Queries ------------------------------------------------------------------------------

    @property
    def next_msn(self) -> int:
        return self.segments[-1].msn + 1 if self.segments else 0

    @property
    def duration(self) -> float:
        return sum(segment.duration for segment in self.segments)

    @property
    def media(self) -> tuple[datetime, datetime] | None:
        """The program date times of its first media and of the end of its last, if known:
        what a player of the playlist sees as its time 0 and its end."""
        if self.start is None or not self.segments:
            return None
        first, last = self.segments[0], self.segments[-1]
        return (
            self.start + timedelta(seconds=first.start),
            self.start + timedelta(seconds=last.start + last.duration),
        )

    def has(self, msn: int, part: int | None) -> bool:
        """Whether a blocking request for (_HLS_msn, _HLS_part) can be answered now."""
        if self.ended or msn < self.next_msn:
            return True
        if part is None or msn > self.next_msn:
            return False
        return part < len(self.parts)

    def too_far(self, msn: int, part: int | None) -> bool:
        """Requests this far ahead get 400 (RFC 8216bis: more than two segments ahead)."""
        return not self.ended and msn > self.next_msn + 1

    # Rendering ----------------------------------------------------------------------------

    def render(self, skip: Skip = Skip.NO) -> str:
        """The live playlist (or, once ended, the closed live playlist).

        It has no EXT-X-PLAYLIST-TYPE: an EVENT playlist only grows (RFC 8216 4.3.3.5), yet
        segments leave this one at the DVR window, and the tag cannot be dropped later (6.2.1).
        """
        first = self._first_live
        if self.ended:
            return self._render_closed(first, None)
        config = self._config
        skipped = self._skippable(first) if skip is not Skip.NO else 0
        lines = self._header(first, None, version=10 if skipped and skip is Skip.V2 else 9)
        lines.append(
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,"
            f"CAN-SKIP-UNTIL={config.skip_until:.1f},CAN-SKIP-DATERANGES=YES,"
            f"PART-HOLD-BACK={config.part_hold_back:.3f}"
        )
        lines.append(f"#EXT-X-PART-INF:PART-TARGET={config.part_target:.3f}")
        lines.append(f"#EXT-X-MAP:URI={quoted(INIT)}")
        cues = self._placed_cues(first)
        if skipped:
            removed = ',RECENTLY-REMOVED-DATERANGES=""' if skip is Skip.V2 else ""
            lines.append(f"#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}{removed}")
            if skip is not Skip.V2:  # the skipped segments' date ranges are still listed
                for position in sorted(p for p in cues if p < skipped):
                    lines.extend(cue.to_tag() for cue in cues[position])
        with_parts = len(self.segments) - config.parts_window
        for index in range(first + skipped, len(self.segments)):
            lines.extend(cue.to_tag() for cue in cues.get(index - first, []))
            lines.append(self._segment_text(index, parts=index >= with_parts))
        lines.extend(cue.to_tag() for cue in cues.get(len(self.segments) - first, []))
        lines.extend(self._part_lines(self.parts))
        lines.append(f"#EXT-X-PRELOAD-HINT:TYPE=PART,URI={quoted(self._next_part_uri())}")
        return "\n".join(lines) + "\n"

    def render_vod(self) -> str:
        """The whole show, whatever the DVR window."""
        return self._render_closed(0, "VOD")

    def _render_closed(self, first: int, kind: str | None) -> str:
        """`segments[first:]` as a closed playlist, with `EXT-X-PLAYLIST-TYPE:<kind>` if any."""
        lines = self._header(first, kind, version=9)
        lines.append(f"#EXT-X-MAP:URI={quoted(INIT)}")
        cues = self._placed_cues(first)
        for index in range(first, len(self.segments)):
            lines.extend(cue.to_tag() for cue in cues.get(index - first, []))
            lines.append(self._segment_text(index, parts=False))
        lines.extend(cue.to_tag() for cue in cues.get(len(self.segments) - first, []))
        lines.append("#EXT-X-ENDLIST")
        return "\n".join(lines) + "\n"

    def _header(self, first: int, kind: str | None, version: int) -> list[str]:
        # No segment ever carries EXT-X-DISCONTINUITY (a publisher that reconnects continues
        # the same timeline and init segment), so the discontinuity sequence stays 0, the
        # value RFC 8216 gives a playlist without EXT-X-DISCONTINUITY-SEQUENCE.
        segments = self.segments
        lines = [
            "#EXTM3U",
            f"#EXT-X-VERSION:{version}",
            f"#EXT-X-TARGETDURATION:{self._config.target_duration}",
            f"#EXT-X-MEDIA-SEQUENCE:{segments[first].msn if first < len(segments) else 0}",
        ]
        if kind is not None:
            lines.append(f"#EXT-X-PLAYLIST-TYPE:{kind}")
        return lines

    def _segment_text(self, index: int, *, parts: bool) -> str:
        """The lines of `segments[index]`; without parts they never change, so they are kept."""
        known = None if parts else self._texts.get(index)
        if known is not None:
            return known
        segment = self.segments[index]
        lines = []
        if self.start is not None:
            moment = self.start + timedelta(seconds=segment.start)
            lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{format_date(moment)}")
        if parts:
            lines.extend(self._part_lines(segment.parts))
        lines.append(f"#EXTINF:{_seconds(segment.duration)},")
        lines.append(segment.uri)
        text = "\n".join(lines)
        if not parts and self.start is not None:
            self._texts[index] = text
        return text

    @staticmethod
    def _part_lines(parts: list[PartRecord]) -> list[str]:
        return [
            f"#EXT-X-PART:DURATION={_seconds(part.duration)},URI={quoted(part.uri)}"
            + (",INDEPENDENT=YES" if part.independent else "")
            for part in parts
        ]

    def _next_part_uri(self) -> str:
        if self.parts:
            return part_name(self.parts[-1].number + 1)
        if self.segments:
            return part_name(self.segments[-1].parts[-1].number + 1)
        return part_name(0)

    def _skippable(self, first: int) -> int:
        """How many leading segments of `segments[first:]` a delta update may replace with
        EXT-X-SKIP."""
        kept = 0.0
        for index in range(len(self.segments) - 1, first - 1, -1):
            kept += self.segments[index].duration
            if kept >= self._config.skip_until:
                return index - first
        return 0

    def _placed_cues(self, first: int) -> dict[int, list[Cue]]:
        """Positions in `segments[first:]`: each cue goes before the segment its START-DATE
        falls in (or after the last); a cue older than the first segment goes before it, for
        a pin outlives the DVR window."""
        placed: dict[int, list[Cue]] = {}
        for cue in self.cues:
            placed.setdefault(max(0, self._index(cue.start) - first), []).append(cue)
        return placed

    def _index(self, moment: datetime) -> int:
        """The index of the segment that holds `moment` (`len(segments)` after the last)."""
        if self.start is None:
            return 0
        offset = (moment.astimezone(UTC) - self.start).total_seconds()
        return bisect.bisect_right(self._ends, offset)
