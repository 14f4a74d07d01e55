"""An uploaded video to CMAF tracks played by HLS and DASH: metadata, a thumbnail, 1080p/720p/480p
pictures and one audio track, under an HLS master playlist and a DASH manifest (MPD).

Runs in a process of its own (`python -m api.catalog.renditions SOURCE OUTPUT`), so a crash or a
hang inside FFmpeg costs the job, never the worker. Progress goes to standard output as one
JSON line per percent; the last line is the result, or `{"error": reason}` with exit status
1 for a file that is not a usable video.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import filetype
from av.audio.frame import AudioFrame
from av.audio.resampler import AudioResampler
from av.audio.stream import AudioStream
from av.container import InputContainer, OutputContainer
from av.stream import Stream
from av.video.frame import PictureType, VideoFrame

from recorder.dash import DASH_MANIFEST, Track, dash_manifest
from recorder.ladder import MASTER_PLAYLIST as MASTER
from recorder.ladder import Rendition, master_playlist
from recorder.poster import encode_jpeg

SEGMENT_SECONDS = 4
MAX_SIDE = 4096  # larger sources are refused: decoding them would take too long on a node
VIDEO_TYPES = frozenset({"video/mp4", "video/quicktime", "video/webm", "video/x-matroska"})
THUMBNAIL = "thumbnail.jpg"
AUDIO = "audio"  # the audio track's folder
AUDIO_BITRATE = 128_000
AUDIO_CODECS = "mp4a.40.2"


@dataclass(frozen=True)
class Rung:
    """One rendition: its short side in pixels, H.264 level and bitrate."""

    name: str
    short_side: int
    level: str
    bitrate: int


LADDER = (
    Rung("1080p", 1080, "4.0", 5_000_000),
    Rung("720p", 720, "3.1", 2_800_000),
    Rung("480p", 480, "3.0", 1_200_000),
)
_LEVEL_IDC = {"3.0": 30, "3.1": 31, "4.0": 40}


class BadVideo(Exception):
    """The file is not a video this pipeline can use; the message says why, for people."""


@dataclass
class Metadata:
    duration: float
    width: int
    height: int
    bitrate: int | None
    video_codec: str
    audio_codec: str | None
    frame_rate: float | None


@dataclass
class LadderResult:
    metadata: Metadata
    thumbnail: str
    master: str
    dash: str
    renditions: list[Rendition] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


def probe(source: Path) -> Metadata:
    """Check the file's own bytes and read its metadata; raise BadVideo with the reason."""
    size = source.stat().st_size
    if size == 0:
        raise BadVideo("the upload is empty (zero bytes)")
    kind = filetype.guess(str(source))
    if kind is None or kind.mime not in VIDEO_TYPES:
        found = kind.mime if kind else "unknown data"
        raise BadVideo(f"not a video file (its bytes are {found}); send MP4, MOV or WebM")
    try:
        with av.open(str(source)) as container:
            return _metadata(container)
    except av.FFmpegError as error:
        raise BadVideo(f"the video cannot be read: {error.strerror or error}") from None


def _metadata(container: InputContainer) -> Metadata:
    if not container.streams.video:
        raise BadVideo("the file has no video track")
    video = container.streams.video[0]
    width, height = video.codec_context.width, video.codec_context.height
    if not width or not height:
        raise BadVideo("the video track has no picture size")
    if max(width, height) > MAX_SIDE:
        raise BadVideo(f"the resolution {width}x{height} is above the {MAX_SIDE} px limit")
    duration = container.duration / av.time_base if container.duration else 0.0
    if duration <= 0 and video.duration and video.time_base:
        duration = float(video.duration * video.time_base)
    if duration <= 0:
        raise BadVideo("the video has no duration (truncated or still being written?)")
    audio = container.streams.audio[0] if container.streams.audio else None
    rate = video.average_rate
    return Metadata(
        duration=round(duration, 3),
        width=width,
        height=height,
        bitrate=container.bit_rate or None,
        video_codec=video.codec_context.name,
        audio_codec=audio.codec_context.name if audio else None,
        frame_rate=round(float(rate), 3) if rate else None,
    )


def rungs_for(width: int, height: int) -> list[tuple[Rung, int, int]]:
    """The renditions a source allows (never upscaled), with their even output sizes."""
    short = min(width, height)
    smallest = LADDER[-1]
    # A source below the lowest rung keeps its own size, at a bitrate scaled to its area.
    own = Rung(f"{short}p", short, smallest.level, smallest.bitrate * short**2 // 480**2)
    chosen = [r for r in LADDER if r.short_side <= short] or [own]
    out = []
    for rung in chosen:
        scale = min(1.0, rung.short_side / short)
        w, h = round(width * scale), round(height * scale)
        out.append((rung, w - w % 2, h - h % 2))
    return out


class _Track:
    """One CMAF track (pictures of one rung, or the audio) and its HLS muxer: fMP4 segments
    holding that medium alone, as DASH wants them, and a VOD playlist."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.container: OutputContainer = av.open(
            str(directory / "index.m3u8"),
            "w",
            format="hls",
            options={
                "hls_time": str(SEGMENT_SECONDS),
                "hls_playlist_type": "vod",
                "hls_segment_type": "fmp4",
                "hls_fmp4_init_filename": "init.mp4",
                "hls_segment_filename": str(directory / "segment-%05d.m4s"),
            },
        )


class _Pictures(_Track):
    """One rung's pictures, H.264."""

    def __init__(self, directory: Path, rung: Rung, size: tuple[int, int], rate: Fraction) -> None:
        super().__init__(directory)
        self.rung, self.size = rung, size
        self.video = self.container.add_stream("libx264", rate=rate)
        self.video.width, self.video.height = size
        self.video.pix_fmt = "yuv420p"
        self.video.bit_rate = rung.bitrate
        self.video.codec_context.time_base = Fraction(1, 90000)
        self.video.codec_context.options = {
            "preset": "veryfast",
            "profile": "high",
            # Keyframes only where we force them (segment starts), the same in every rung, and
            # IDR ones, so each segment starts one (DASH's startWithSAP=1).
            "forced-idr": "1",
            "x264-params": f"level={rung.level}:scenecut=0:keyint=100000",
        }

    def add(self, frame: VideoFrame, pts: int, keyframe: bool) -> None:
        picture = frame.reformat(width=self.size[0], height=self.size[1], format="yuv420p")
        picture.pts, picture.time_base = pts, Fraction(1, 90000)
        picture.pict_type = PictureType.I if keyframe else PictureType.NONE
        self.container.mux(self.video.encode(picture))

    def close(self) -> None:
        self.container.mux(self.video.encode(None))
        self.container.close()


class _Sound(_Track):
    """The audio, AAC stereo 48 kHz, once for every rung."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.audio: AudioStream = self.container.add_stream("aac", rate=48000)
        self.audio.codec_context.layout = "stereo"
        self.audio.codec_context.bit_rate = AUDIO_BITRATE

    def add(self, frame: AudioFrame | None) -> None:
        self.container.mux(self.audio.encode(frame))

    def close(self) -> None:
        self.add(None)
        self.container.close()


def build_ladder(
    source: Path,
    output: Path,
    *,
    thumbnail_at: float | None = None,
    progress: Callable[[int], None] = lambda _: None,
) -> LadderResult:
    """Transcode `source` into `output`: a folder per rung and one for the audio, the HLS
    master playlist and the DASH manifest over them."""
    metadata = probe(source)
    at = thumbnail_at if thumbnail_at is not None else min(1.0, metadata.duration / 10)
    at = min(max(at, 0.0), metadata.duration)
    rate = Fraction(metadata.frame_rate or 30).limit_denominator(1001)
    rungs = [
        _Pictures(output / r.name, r, (w, h), rate)
        for r, w, h in rungs_for(metadata.width, metadata.height)
    ]
    sound = _Sound(output / AUDIO) if metadata.audio_codec is not None else None
    tracks: list[_Pictures | _Sound] = [*rungs, *([sound] if sound else [])]
    thumbnail: bytes | None = None
    try:
        with av.open(str(source)) as container:
            for frame, pts, keyframe in _timeline(container, sound, metadata.duration, progress):
                if thumbnail is None and pts >= at * 90000:
                    thumbnail = encode_jpeg(frame)
                for rung in rungs:
                    rung.add(frame, pts, keyframe)
    except av.FFmpegError as error:
        raise BadVideo(f"the video is damaged: {error.strerror or error}") from None
    finally:
        for track in tracks:
            track.close()
    if thumbnail is None:
        raise BadVideo("no picture could be decoded (truncated file?)")
    (output / THUMBNAIL).write_bytes(thumbnail)
    renditions = _manifests(output, rungs, rate, sound is not None)
    progress(100)
    files = sorted(str(p.relative_to(output)) for p in output.rglob("*") if p.is_file())
    return LadderResult(metadata, THUMBNAIL, MASTER, DASH_MANIFEST, renditions, files)


def _manifests(
    output: Path, rungs: list[_Pictures], rate: Fraction, audio: bool
) -> list[Rendition]:
    """Write the HLS master playlist and the MPD; the renditions the master lists."""
    pictures = [
        Track(
            r.rung.name,
            f"avc1.6400{_LEVEL_IDC[r.rung.level]:02x}",
            r.rung.bitrate,
            90000,
            r.size[0],
            r.size[1],
            rate,
        )
        for r in rungs
    ]
    sound = Track(AUDIO, AUDIO_CODECS, AUDIO_BITRATE, 48000) if audio else None
    # An HLS variant's BANDWIDTH and CODECS count the audio it plays with (RFC 8216 4.3.4.2).
    renditions = [
        Rendition(
            t.folder,
            t.width,
            t.height,
            t.bandwidth + (AUDIO_BITRATE if audio else 0),
            f"{t.codecs},{AUDIO_CODECS}" if audio else t.codecs,
            f"{t.folder}/index.m3u8",
        )
        for t in pictures
    ]
    audio_playlist = f"{AUDIO}/index.m3u8" if audio else None
    (output / MASTER).write_text(master_playlist(renditions, audio_playlist))
    (output / DASH_MANIFEST).write_text(dash_manifest(output, pictures, sound))
    return renditions


def _timeline(
    container: InputContainer,
    sound: _Sound | None,
    duration: float,
    progress: Callable[[int], None],
) -> Iterator[tuple[VideoFrame, int, bool]]:
    """Decoded pictures on a 90 kHz clock, keyframe-forced at segment starts; audio muxed."""
    streams: list[Stream] = [container.streams.video[0]]
    resampler = None
    if container.streams.audio and sound is not None:
        streams.append(container.streams.audio[0])
        resampler = AudioResampler(format="fltp", layout="stereo", rate=48000, frame_size=1024)
    container.streams.video[0].thread_type = "AUTO"
    first: int | None = None
    last_pts, next_key, percent, audio_pts = -1, 0, 0, 0
    for frame in container.decode(*streams):
        if isinstance(frame, AudioFrame):
            assert resampler is not None and sound is not None
            for chunk in resampler.resample(frame):
                chunk.pts, chunk.time_base = audio_pts, Fraction(1, 48000)
                audio_pts += chunk.samples
                sound.add(chunk)
            continue
        assert isinstance(frame, VideoFrame)
        if frame.pts is None or frame.time_base is None:
            continue
        # The ladder's clock starts at the first picture, like its audio at the first sample.
        pts = int(frame.pts * frame.time_base * 90000)
        first = pts if first is None else first
        pts -= first
        if pts <= last_pts:
            continue  # timestamps must rise for the encoder; a repeated one is dropped
        last_pts = pts
        keyframe = pts >= next_key
        if keyframe:
            next_key = pts + SEGMENT_SECONDS * 90000
        yield frame, pts, keyframe
        done = min(99, int(pts / 90000 / duration * 100))
        if done > percent:
            percent = done
            progress(done)


def main(argv: list[str]) -> int:
    """`python -m api.catalog.renditions SOURCE OUTPUT [THUMBNAIL_AT]`, reporting in JSON lines."""
    source, output = Path(argv[0]), Path(argv[1])
    at = float(argv[2]) if len(argv) > 2 else None

    def report(percent: int) -> None:
        print(json.dumps({"progress": percent}), flush=True)

    try:
        result = build_ladder(source, output, thumbnail_at=at, progress=report)
    except BadVideo as error:
        print(json.dumps({"error": str(error)}), flush=True)
        return 1
    print(json.dumps({"result": asdict(result)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
