"""Closing a recording whose process died mid-show (SIGKILL, power loss)."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from pathlib import Path

from .boxes import TrackDefaults, fragments, is_sync, read_fragment, read_init
from .config import RecorderConfig
from .cue import Cue
from .files import CUES, INIT, LIVE_PLAYLIST, META, POSTER, VOD_PLAYLIST, RecordingFiles
from .playlist import Playlist
from .poster import poster_from_mp4
from .result import RecordingResult
from .segmenter import PartRecord, SegmentRecord, part_name

log = logging.getLogger(__name__)

_SEGMENT = re.compile(r"^segment-(\d{5})\.m4s$")


def needs_repair(directory: Path) -> bool:
    """A recording that has media but was never closed (no VOD playlist)."""
    return (directory / INIT).exists() and not (directory / VOD_PLAYLIST).exists()


def repair(directory: Path) -> RecordingResult:
    """Keep every complete fragment, close the playlists and return the recording.

    A segment's file is appended part by part, so after a crash the last one may end in
    a partial moof/mdat pair: it is cut back to its last complete pair (by box sizes), and
    dropped if nothing complete is left. Blocking file work: call it via asyncio.to_thread.
    """
    files = RecordingFiles(directory)
    init = files.path(INIT)
    if not init.exists():
        return RecordingResult(directory, 0.0, 0, truncated=True, error="no init segment")
    tracks = read_init(init.read_bytes())
    video = [track for track in tracks.values() if track.handler == "vide"]
    primary = video[0] if video else next(iter(tracks.values()), None)
    if primary is None:
        return RecordingResult(directory, 0.0, 0, truncated=True, error="no tracks")
    meta = _read_meta(directory)
    playlist = Playlist(_config(meta))
    start = meta.get("start")
    if isinstance(start, int | float):
        playlist.start = datetime.fromtimestamp(start, UTC)
    part_number = 0
    for msn, path in _segment_files(directory):
        segment = _repair_segment(path, msn, part_number, tracks, primary.track_id)
        if segment is not None:
            playlist.add_segment(segment)
            part_number += len(segment.parts)
    for cue in _read_cues(directory):
        playlist.add_cue(cue)
    playlist.end()
    files.remove_all_parts()
    for temporary in directory.glob(".*.tmp"):
        temporary.unlink(missing_ok=True)
    files.write_text(LIVE_PLAYLIST, playlist.render())
    files.write_text(VOD_PLAYLIST, playlist.render_vod())
    poster = _ensure_poster(directory, playlist)
    return _result(directory, playlist, poster)


def _segment_files(directory: Path) -> list[tuple[int, Path]]:
    found = []
    for path in directory.iterdir():
        match = _SEGMENT.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def _repair_segment(
    path: Path, msn: int, first_part: int, defaults: dict[int, TrackDefaults], primary: int
) -> SegmentRecord | None:
    data = path.read_bytes()
    timescale = defaults[primary].timescale if primary in defaults else 1
    parts: list[PartRecord] = []
    end = 0
    for moof, mdat in fragments(data):
        runs = read_fragment(data, moof, defaults).runs
        run = runs.get(primary) or next(iter(runs.values()), None)
        if run is None:
            continue
        number = first_part + len(parts)
        start, duration = run.base_time / timescale, run.duration / timescale
        independent = is_sync(run.first_flags) or run.track_id != primary
        parts.append(
            PartRecord(msn, len(parts), number, part_name(number), start, duration, independent)
        )
        end = mdat.end
    if end < len(data):
        log.warning("repair: %s cut from %d to %d bytes", path.name, len(data), end)
        if end == 0:
            path.unlink()
            return None
        path.write_bytes(data[:end])
    if not parts:
        return None
    return SegmentRecord(msn, path.name, parts[0].start, parts[0].independent, parts)


def _read_meta(directory: Path) -> dict[str, object]:
    try:
        meta = json.loads((directory / META).read_text())
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def _config(meta: dict[str, object]) -> RecorderConfig:
    summary = meta.get("config")
    defaults = RecorderConfig()
    if not isinstance(summary, dict):
        return defaults
    return RecorderConfig(
        part_target=float(summary.get("part_target", defaults.part_target)),
        segment_max=float(summary.get("segment_max", defaults.segment_max)),
        dvr_seconds=float(summary.get("dvr_seconds", defaults.dvr_seconds)),
    )


def _read_cues(directory: Path) -> list[Cue]:
    path = directory / CUES
    if not path.exists():
        return []
    cues = []
    for line in path.read_text().splitlines():
        try:
            cues.append(Cue.from_json(line))
        except (ValueError, KeyError, TypeError):
            continue  # the line being written when the process died
    return cues


def _ensure_poster(directory: Path, playlist: Playlist) -> bool:
    if (directory / POSTER).exists():
        return True
    if not playlist.segments:
        return False
    init = (directory / INIT).read_bytes()
    first = (directory / playlist.segments[0].uri).read_bytes()
    jpeg = poster_from_mp4(init + first)
    if jpeg is None:
        return False
    RecordingFiles(directory).write_bytes(POSTER, jpeg)
    return True


def _result(directory: Path, playlist: Playlist, poster: bool) -> RecordingResult:
    names = [INIT, *(segment.uri for segment in playlist.segments), LIVE_PLAYLIST, VOD_PLAYLIST]
    names += [name for name in (POSTER, CUES) if (directory / name).exists()]
    return RecordingResult(
        directory=directory,
        duration=playlist.duration,
        segments=len(playlist.segments),
        files=[name for name in names if (directory / name).exists()],
        truncated=True,
        media=playlist.media,
        poster=POSTER if poster else None,
    )
