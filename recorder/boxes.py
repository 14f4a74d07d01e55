"""ISO BMFF (MP4) box reading: enough to split fMP4 output and check it after a crash."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from struct import pack_into, unpack_from

_NON_SYNC = 0x00010000  # sample_is_non_sync_sample in ISO/IEC 14496-12 sample flags
_CONTAINERS = {"moov", "trak", "mdia", "minf", "stbl", "mvex", "moof", "traf"}


@dataclass(frozen=True, slots=True)
class Box:
    type: str
    start: int
    end: int
    body: int  # offset of the payload, after the header


@dataclass(slots=True)
class TrackDefaults:
    """What the init segment says about one track."""

    track_id: int
    timescale: int = 1
    handler: str = ""
    sample_duration: int = 0
    sample_flags: int = 0


@dataclass(slots=True)
class TrackRun:
    """One track's samples in one fragment."""

    track_id: int
    base_time: int = 0
    duration: int = 0
    first_flags: int | None = None


@dataclass(slots=True)
class FragmentRuns:
    runs: dict[int, TrackRun] = field(default_factory=dict)


def iter_boxes(data: bytes | bytearray, start: int = 0, end: int | None = None) -> Iterator[Box]:
    """Yield the complete boxes in data[start:end]; stop at the first incomplete or bad one."""
    end = len(data) if end is None else end
    offset = start
    while offset + 8 <= end:
        size, kind = unpack_from(">I4s", data, offset)
        header = 8
        if size == 1:
            if offset + 16 > end:
                return
            size = unpack_from(">Q", data, offset + 8)[0]
            header = 16
        elif size == 0:
            return  # "to end of file" boxes are never complete while the file may grow
        if size < header or offset + size > end:
            return
        yield Box(kind.decode("latin-1"), offset, offset + size, offset + header)
        offset += size


def find(data: bytes | bytearray, box: Box, kind: str) -> list[Box]:
    """Direct children of `box` of one type."""
    return [child for child in iter_boxes(data, box.body, box.end) if child.type == kind]


def walk(data: bytes, box: Box) -> Iterator[Box]:
    """`box` and every box nested in it, through the container types fMP4 uses."""
    yield box
    if box.type in _CONTAINERS:
        for child in iter_boxes(data, box.body, box.end):
            yield from walk(data, child)


def read_init(data: bytes) -> dict[int, TrackDefaults]:
    """Track ids, timescales, handler types and fragment defaults from an init segment."""
    tracks: dict[int, TrackDefaults] = {}
    for top in iter_boxes(data):
        if top.type != "moov":
            continue
        for trak in find(data, top, "trak"):
            _read_trak(data, trak, tracks)
        for mvex in find(data, top, "mvex"):
            for trex in find(data, mvex, "trex"):
                track_id, _, duration, _, flags = unpack_from(">5I", data, trex.body + 4)
                track = tracks.setdefault(track_id, TrackDefaults(track_id))
                track.sample_duration, track.sample_flags = duration, flags
    return tracks


def _read_trak(data: bytes, trak: Box, tracks: dict[int, TrackDefaults]) -> None:
    track = TrackDefaults(0)
    for box in walk(data, trak):
        version = data[box.body] if box.body < box.end else 0
        if box.type == "tkhd":
            track.track_id = unpack_from(">I", data, box.body + (20 if version else 12))[0]
        elif box.type == "mdhd":
            track.timescale = unpack_from(">I", data, box.body + (20 if version else 12))[0]
        elif box.type == "hdlr":
            track.handler = data[box.body + 8 : box.body + 12].decode("latin-1")
    tracks[track.track_id] = track


def read_fragment(data: bytes, moof: Box, defaults: dict[int, TrackDefaults]) -> FragmentRuns:
    """Per-track start time, duration and first-sample flags of one moof."""
    result = FragmentRuns()
    for traf in find(data, moof, "traf"):
        run = _read_traf(data, traf, defaults)
        result.runs[run.track_id] = run
    return result


def _read_traf(data: bytes, traf: Box, defaults: dict[int, TrackDefaults]) -> TrackRun:
    tfhd = find(data, traf, "tfhd")[0]
    flags = unpack_from(">I", data, tfhd.body)[0] & 0xFFFFFF
    track_id = unpack_from(">I", data, tfhd.body + 4)[0]
    known = defaults.get(track_id, TrackDefaults(track_id))
    offset = tfhd.body + 8 + (8 if flags & 0x01 else 0) + (4 if flags & 0x02 else 0)
    duration = known.sample_duration
    if flags & 0x08:
        duration = unpack_from(">I", data, offset)[0]
    offset += (4 if flags & 0x08 else 0) + (4 if flags & 0x10 else 0)
    sample_flags = unpack_from(">I", data, offset)[0] if flags & 0x20 else known.sample_flags
    run = TrackRun(track_id)
    for tfdt in find(data, traf, "tfdt"):
        fmt = ">Q" if data[tfdt.body] == 1 else ">I"
        run.base_time = unpack_from(fmt, data, tfdt.body + 4)[0]
    for trun in find(data, traf, "trun"):
        _read_trun(data, trun, duration, sample_flags, run)
    return run


def _read_trun(data: bytes, trun: Box, duration: int, sample_flags: int, run: TrackRun) -> None:
    flags = unpack_from(">I", data, trun.body)[0] & 0xFFFFFF
    count = unpack_from(">I", data, trun.body + 4)[0]
    offset = trun.body + 8 + (4 if flags & 0x01 else 0)
    first_flags = None
    if flags & 0x04:
        first_flags = unpack_from(">I", data, offset)[0]
        offset += 4
    fields = [bit for bit in (0x100, 0x200, 0x400, 0x800) if flags & bit]
    for index in range(count):
        values = dict(zip(fields, unpack_from(f">{len(fields)}I", data, offset), strict=True))
        offset += 4 * len(fields)
        run.duration += values.get(0x100, duration)
        if index == 0 and run.first_flags is None:
            run.first_flags = values.get(
                0x400, sample_flags if first_flags is None else first_flags
            )
    if count == 0 and run.first_flags is None:
        run.first_flags = first_flags


def is_sync(flags: int | None) -> bool:
    return flags is not None and not flags & _NON_SYNC


def fragments(data: bytes, start: int = 0) -> Iterator[tuple[Box, Box]]:
    """Complete (moof, mdat) pairs from `start`; stops before a truncated pair."""
    pending: Box | None = None
    for box in iter_boxes(data, start):
        if box.type == "moof":
            pending = box
        elif box.type == "mdat" and pending is not None:
            yield pending, box
            pending = None


def shift_decode_times(data: bytearray, moof: Box, shift: Callable[[int, int], int]) -> None:
    """Move each track fragment's decode time (tfdt) in place, by ``shift(track id, decode
    time)`` units of the track's timescale."""
    for traf in find(data, moof, "traf"):
        track_id = unpack_from(">I", data, find(data, traf, "tfhd")[0].body + 4)[0]
        for tfdt in find(data, traf, "tfdt"):
            fmt = ">Q" if data[tfdt.body] == 1 else ">I"
            base = unpack_from(fmt, data, tfdt.body + 4)[0]
            pack_into(fmt, data, tfdt.body + 4, base + shift(track_id, base))
