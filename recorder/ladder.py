"""The HLS ladder: renditions of one show listed by a master playlist.

A simulcast publisher's encoder has already made the ladder: each H.264 layer is recorded as it
arrives, by a Recorder of its own, and is one rendition here. Nothing is transcoded.
"""

from __future__ import annotations

from dataclasses import dataclass

from .files import INIT
from .recorder import Recorder

MASTER_PLAYLIST = "master.m3u8"
MEASURED_SEGMENTS = 10  # a live rendition's bandwidth: the peak over its latest segments
_AAC = "mp4a.40.2"


@dataclass(frozen=True, slots=True)
class Rendition:
    name: str
    width: int
    height: int
    bandwidth: int  # the peak segment bit rate, bit/s (RFC 8216 4.3.4.2)
    codecs: str
    playlist: str  # its media playlist, relative to the master playlist


def master_playlist(renditions: list[Rendition], audio: str | None = None) -> str:
    """The master playlist, lightest rendition first. With `audio` (a media playlist), the
    renditions are pictures only and every one plays that audio rendition beside it."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    group = ""
    if audio is not None:
        lines.append(
            '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",NAME="audio",DEFAULT=YES,AUTOSELECT=YES,'
            f'URI="{audio}"'
        )
        group = ',AUDIO="audio"'
    for r in sorted(renditions, key=lambda r: r.bandwidth):
        lines.append(
            f"#EXT-X-STREAM-INF:BANDWIDTH={r.bandwidth},RESOLUTION={r.width}x{r.height},"
            f'CODECS="{r.codecs}"{group}'
        )
        lines.append(r.playlist)
    return "\n".join(lines) + "\n"


def measure(
    recorder: Recorder, name: str, playlist: str, *, whole: bool = False
) -> Rendition | None:
    """What the master playlist says of a recording, from the files it wrote: its peak segment
    bit rate (over the latest segments, or the ``whole`` recording for a VOD), picture and
    codecs. None until it has a segment. Reads a few files: small, but blocking."""
    segments = (
        recorder.playlist.segments if whole else recorder.playlist.segments[-MEASURED_SEGMENTS:]
    )
    size = recorder.video_size
    if not segments or size is None:
        return None
    directory = recorder.directory
    peak = 0
    for segment in segments:
        path = directory / segment.uri
        if segment.duration > 0 and path.exists():
            peak = max(peak, round(path.stat().st_size * 8 / segment.duration))
    codecs = _codecs((directory / INIT).read_bytes())
    if peak == 0 or codecs is None:
        return None
    return Rendition(name, size[0], size[1], peak, codecs, playlist)


def _codecs(init: bytes) -> str | None:
    """The RFC 6381 codecs of an fMP4 init segment: H.264 from its avcC box, AAC if present."""
    at = init.find(b"avcC")
    if at < 0 or len(init) < at + 8:
        return None
    profile, constraints, level = init[at + 5 : at + 8]
    video = f"avc1.{profile:02x}{constraints:02x}{level:02x}"
    return f"{video},{_AAC}" if b"mp4a" in init else video
