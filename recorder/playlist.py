"""The media playlist: live (LL-HLS, EVENT, delta updates) and VOD renderings."""

from __future__ import annotations

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
        self.segments: list[SegmentRecord] = []
        self.parts: list[PartRecord] = []  # of the segment in progress
        self.cues: list[Cue] = []
        self.ended = False

    # Changes ------------------------------------------------------------------------------

    def add_part(self, part: PartRecord) -> None:
        self.parts.append(part)

    def add_segment(self, segment: SegmentRecord) -> None:
        self.segments.append(segment)
        self.parts = [part for part in self.parts if part.msn != segment.msn]

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
        """The live playlist (or, once ended, the closed EVENT playlist)."""
        if self.ended:
            return self._render_closed("EVENT")
        config = self._config
        skipped = self._skippable() if skip is not Skip.NO else 0
        lines = self._header("EVENT", version=10 if skipped and skip is Skip.V2 else 9)
        lines.append(
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,"
            f"CAN-SKIP-UNTIL={config.skip_until:.1f},CAN-SKIP-DATERANGES=YES,"
            f"PART-HOLD-BACK={config.part_hold_back:.3f}"
        )
        lines.append(f"#EXT-X-PART-INF:PART-TARGET={config.part_target:.3f}")
        lines.append(f"#EXT-X-MAP:URI={quoted(INIT)}")
        if skipped:
            removed = ',RECENTLY-REMOVED-DATERANGES=""' if skip is Skip.V2 else ""
            lines.append(f"#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}{removed}")
        with_parts = len(self.segments) - config.parts_window
        cues = self._placed_cues()
        for position, segment in enumerate(self.segments):
            if position < skipped:
                if skip is not Skip.V2:
                    lines.extend(cue.to_tag() for cue in cues.get(position, []))
                continue
            lines.extend(cue.to_tag() for cue in cues.get(position, []))
            lines.extend(self._segment_lines(segment, parts=position >= with_parts))
        lines.extend(cue.to_tag() for cue in cues.get(len(self.segments), []))
        lines.extend(self._part_lines(self.parts))
        lines.append(f"#EXT-X-PRELOAD-HINT:TYPE=PART,URI={quoted(self._next_part_uri())}")
        return "\n".join(lines) + "\n"

    def render_vod(self) -> str:
        return self._render_closed("VOD")

    def _render_closed(self, kind: str) -> str:
        lines = self._header(kind, version=9)
        lines.append(f"#EXT-X-MAP:URI={quoted(INIT)}")
        cues = self._placed_cues()
        for position, segment in enumerate(self.segments):
            lines.extend(cue.to_tag() for cue in cues.get(position, []))
            lines.extend(self._segment_lines(segment, parts=False))
        lines.extend(cue.to_tag() for cue in cues.get(len(self.segments), []))
        lines.append("#EXT-X-ENDLIST")
        return "\n".join(lines) + "\n"

    def _header(self, kind: str, version: int) -> list[str]:
        return [
            "#EXTM3U",
            f"#EXT-X-VERSION:{version}",
            f"#EXT-X-TARGETDURATION:{self._config.target_duration}",
            f"#EXT-X-MEDIA-SEQUENCE:{self.segments[0].msn if self.segments else 0}",
            f"#EXT-X-PLAYLIST-TYPE:{kind}",
        ]

    def _segment_lines(self, segment: SegmentRecord, *, parts: bool) -> list[str]:
        lines = []
        if self.start is not None:
            moment = self.start + timedelta(seconds=segment.start)
            lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{format_date(moment)}")
        if parts:
            lines.extend(self._part_lines(segment.parts))
        lines.append(f"#EXTINF:{_seconds(segment.duration)},")
        lines.append(segment.uri)
        return lines

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

    def _skippable(self) -> int:
        """How many leading segments a delta update may replace with EXT-X-SKIP."""
        kept = 0.0
        for position in range(len(self.segments) - 1, -1, -1):
            kept += self.segments[position].duration
            if kept >= self._config.skip_until:
                return position
        return 0

    def _placed_cues(self) -> dict[int, list[Cue]]:
        """Each cue goes before the segment its START-DATE falls in (or after the last)."""
        placed: dict[int, list[Cue]] = {}
        for cue in self.cues:
            placed.setdefault(self._position(cue.start), []).append(cue)
        return placed

    def _position(self, moment: datetime) -> int:
        if self.start is None:
            return 0
        offset = (moment.astimezone(UTC) - self.start).total_seconds()
        for position, segment in enumerate(self.segments):
            if offset < segment.start + segment.duration:
                return position
        return len(self.segments)
