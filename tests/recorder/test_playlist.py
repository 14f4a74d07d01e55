"""The live playlist's DVR window: which segments it lists, its sequence numbers, its cues."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from recorder.config import DVR_CAP_SECONDS, RecorderConfig
from recorder.cue import Cue
from recorder.playlist import Playlist, Skip
from recorder.segmenter import PartRecord, SegmentRecord, part_name, segment_name

START = datetime(2026, 12, 1, 18, 0, tzinfo=UTC)
PARTS_PER_SEGMENT = 3


def segment(msn: int, duration: float) -> SegmentRecord:
    """Segment `msn` of a recording whose segments all last `duration` seconds."""
    begin = msn * duration
    part = duration / PARTS_PER_SEGMENT
    record = SegmentRecord(msn, segment_name(msn), begin, True)
    for index in range(PARTS_PER_SEGMENT):
        number = msn * PARTS_PER_SEGMENT + index
        at = begin + index * part
        record.parts.append(PartRecord(msn, index, number, part_name(number), at, part, index == 0))
    return record


def recording(config: RecorderConfig, count: int, duration: float) -> Playlist:
    playlist = Playlist(config)
    playlist.start = START
    for msn in range(count):
        playlist.add_segment(segment(msn, duration))
    return playlist


def listed(text: str) -> list[str]:
    return re.findall(r"^segment-\d{5}\.m4s$", text, re.MULTILINE)


def media_sequence(text: str) -> int:
    return int(re.search(r"^#EXT-X-MEDIA-SEQUENCE:(\d+)$", text, re.MULTILINE).group(1))  # type: ignore[union-attr]


def test_the_live_playlist_slides_while_the_vod_keeps_the_show() -> None:
    playlist = Playlist(RecorderConfig(dvr_seconds=6.0))
    playlist.start = START
    previous = 0
    for msn in range(20):
        playlist.add_segment(segment(msn, 1.5))
        live = playlist.render()
        names = listed(live)
        first = media_sequence(live)
        # The first segment listed is the one EXT-X-MEDIA-SEQUENCE numbers; none is skipped.
        assert names == [segment_name(n) for n in range(first, msn + 1)]
        assert first >= previous, "the media sequence never goes back"
        previous = first
        # At least the window (or all there is), and never a whole segment more.
        assert len(names) * 1.5 >= min(6.0, (msn + 1) * 1.5)
        assert (len(names) - 1) * 1.5 < 6.0
    assert previous == 20 - 4, "6 s of 1.5 s segments: the last four"
    assert "#EXT-X-PLAYLIST-TYPE" not in live, "an EVENT playlist may not drop segments"
    assert "#EXT-X-DISCONTINUITY" not in live
    assert live.count("#EXT-X-PROGRAM-DATE-TIME:") == 4
    assert "#EXT-X-PROGRAM-DATE-TIME:2026-12-01T18:00:24.000Z" in live
    vod = playlist.render_vod()
    assert listed(vod) == [segment_name(n) for n in range(20)]
    assert media_sequence(vod) == 0 and "#EXT-X-PLAYLIST-TYPE:VOD" in vod
    playlist.end()
    closed = playlist.render()
    assert listed(closed) == listed(live) and media_sequence(closed) == 16
    assert closed.rstrip().endswith("#EXT-X-ENDLIST") and "#EXT-X-PLAYLIST-TYPE" not in closed


def test_by_default_the_whole_show_up_to_the_cap() -> None:
    assert RecorderConfig().dvr_seconds == DVR_CAP_SECONDS == 4 * 3600
    show = recording(RecorderConfig(), 500, 2.0)  # 1000 s
    live = show.render()
    assert media_sequence(live) == 0 and len(listed(live)) == 500
    long_show = recording(RecorderConfig(), int(DVR_CAP_SECONDS / 2.0) + 10, 2.0)
    text = long_show.render()
    assert media_sequence(text) == 10 and len(listed(text)) == DVR_CAP_SECONDS / 2.0
    assert len(listed(long_show.render_vod())) == DVR_CAP_SECONDS / 2.0 + 10


def test_a_window_shorter_than_three_target_durations_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 6"):
        RecorderConfig(dvr_seconds=5.9)
    assert RecorderConfig(dvr_seconds=6.0).dvr_seconds == 6.0


def test_delta_updates_skip_within_the_window() -> None:
    playlist = recording(RecorderConfig(dvr_seconds=20.0), 30, 1.0)  # segments 10-29 listed
    delta = playlist.render(Skip.YES)
    skipped = int(re.search(r"#EXT-X-SKIP:SKIPPED-SEGMENTS=(\d+)", delta).group(1))  # type: ignore[union-attr]
    assert media_sequence(delta) == 10
    assert skipped == 20 - 12, "CAN-SKIP-UNTIL=12.0 keeps the last 12 s"
    assert listed(delta) == [segment_name(n) for n in range(10 + skipped, 30)]


def test_cues_older_than_the_window_stay_before_its_first_segment() -> None:
    playlist = recording(RecorderConfig(dvr_seconds=20.0), 30, 1.0)
    early_pin = Cue("pin-early", START + timedelta(seconds=2), attributes={"X-ACTION": "pin"})
    late_tag = Cue("tag-late", START + timedelta(seconds=25.5), attributes={"X-ACTION": "tag"})
    playlist.add_cue(early_pin)
    playlist.add_cue(late_tag)
    lines = playlist.render().splitlines()
    early = next(i for i, line in enumerate(lines) if 'ID="pin-early"' in line)
    assert lines.index("segment-00010.m4s") > early > lines.index('#EXT-X-MAP:URI="init.mp4"')
    late = next(i for i, line in enumerate(lines) if 'ID="tag-late"' in line)
    assert lines.index("segment-00024.m4s") < late < lines.index("segment-00025.m4s")
    assert 'ID="pin-early"' in playlist.render(Skip.YES)
    assert 'ID="pin-early"' not in playlist.render(Skip.V2)
    vod = playlist.render_vod().splitlines()
    vod_early = next(i for i, line in enumerate(vod) if 'ID="pin-early"' in line)
    assert vod.index("segment-00001.m4s") < vod_early < vod.index("segment-00002.m4s")


def test_its_media_span_is_what_its_program_dates_say() -> None:
    playlist = Playlist(RecorderConfig())
    assert playlist.media is None
    playlist.start = START
    # Its first media comes 4.5 s after playlist zero (segments 0-2 lost), and segment 5 is
    # missing: the span runs from segment 3's date to segment 6's end, not zero plus the sum.
    for msn in (3, 4, 6):
        playlist.add_segment(segment(msn, 1.5))
    first, end = playlist.media  # type: ignore[misc]
    dates = [
        datetime.fromisoformat(line.split(":", 1)[1])
        for line in playlist.render_vod().splitlines()
        if line.startswith("#EXT-X-PROGRAM-DATE-TIME:")
    ]
    assert first == dates[0] == START + timedelta(seconds=4.5)
    assert end == dates[-1] + timedelta(seconds=1.5) == START + timedelta(seconds=10.5)
