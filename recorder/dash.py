"""A static DASH manifest (MPD) over CMAF tracks that HLS playlists already describe.

Each track is a folder of fMP4 files with one media each, as FFmpeg's HLS muxer writes them
(`index.m3u8`, `init.mp4`, `segment-NNNNN.m4s`): the MPD names the same files, so HLS and DASH
players fetch one set of segments. Segment durations come from the playlist's `#EXTINF`
lines, in the track's own timescale.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from xml.etree.ElementTree import Element, SubElement, indent, tostring

DASH_MANIFEST = "manifest.mpd"
MIME_TYPE = "application/dash+xml"
_EXTINF = re.compile(r"^#EXTINF:([0-9.]+),", re.M)
_SEGMENTS = "segment-$Number%05d$.m4s"


@dataclass(frozen=True, slots=True)
class Track:
    """One CMAF track: its folder (relative to the MPD), codec and nominal bandwidth."""

    folder: str
    codecs: str
    bandwidth: int
    timescale: int
    width: int = 0
    height: int = 0
    frame_rate: Fraction | None = None

    @property
    def is_video(self) -> bool:
        return self.width > 0


def segment_durations(playlist: Path) -> list[float]:
    """The `#EXTINF` durations of a VOD media playlist, in seconds, in order."""
    return [float(value) for value in _EXTINF.findall(playlist.read_text())]


def dash_manifest(root: Path, video: list[Track], audio: Track | None) -> str:
    """The MPD of `video` (one adaptation set: players switch between them) and `audio`."""
    tracks = [*video, *([audio] if audio else [])]
    timelines = {t.folder: segment_durations(root / t.folder / "index.m3u8") for t in tracks}
    duration = max(sum(durations) for durations in timelines.values())
    mpd = Element(
        "MPD",
        xmlns="urn:mpeg:dash:schema:mpd:2011",
        profiles="urn:mpeg:dash:profile:isoff-live:2011,urn:mpeg:dash:profile:cmaf:2019",
        type="static",
        mediaPresentationDuration=_iso_duration(duration),
        minBufferTime="PT2S",
    )
    period = SubElement(mpd, "Period", id="0", start="PT0S")
    _adaptation_set(period, "0", "video", video, timelines)
    if audio is not None:
        _adaptation_set(period, "1", "audio", [audio], timelines)
    indent(mpd)
    xml = tostring(mpd, encoding="unicode")
    return '<?xml version="1.0" encoding="utf-8"?>\n' + xml + "\n"


def _adaptation_set(
    period: Element, number: str, kind: str, tracks: list[Track], timelines: dict[str, list[float]]
) -> None:
    adaptation = SubElement(
        period,
        "AdaptationSet",
        id=number,
        contentType=kind,
        mimeType=f"{kind}/mp4",
        segmentAlignment="true",
        startWithSAP="1",
    )
    for track in tracks:
        attributes = {"id": track.folder, "codecs": track.codecs, "bandwidth": str(track.bandwidth)}
        if track.is_video:
            attributes.update(width=str(track.width), height=str(track.height), sar="1:1")
            if track.frame_rate:
                attributes["frameRate"] = str(track.frame_rate)
        else:
            attributes["audioSamplingRate"] = str(track.timescale)
        representation = SubElement(adaptation, "Representation", attributes)
        template = SubElement(
            representation,
            "SegmentTemplate",
            timescale=str(track.timescale),
            initialization=f"{track.folder}/init.mp4",
            media=f"{track.folder}/{_SEGMENTS}",
            startNumber="0",
        )
        _timeline(SubElement(template, "SegmentTimeline"), timelines[track.folder], track)


def _timeline(timeline: Element, durations: list[float], track: Track) -> None:
    """`S` elements from the segments' start times, rounded once each so they never drift."""
    start, elapsed = 0, 0.0
    runs: list[list[int]] = []  # [start, duration, repeats]
    for seconds in durations:
        elapsed += seconds
        end = round(elapsed * track.timescale)
        length = end - start
        if runs and runs[-1][1] == length:
            runs[-1][2] += 1
        else:
            runs.append([start, length, 0])
        start = end
    for at, length, repeats in runs:
        attributes = {"t": str(at), "d": str(length)}
        if repeats:
            attributes["r"] = str(repeats)
        SubElement(timeline, "S", attributes)


def _iso_duration(seconds: float) -> str:
    return f"PT{seconds:.3f}S"
