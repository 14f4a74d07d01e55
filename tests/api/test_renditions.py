"""Uploaded video to CMAF tracks with PyAV, under an HLS master and a DASH manifest; bad files
fail with a reason, never a crash."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import av
import pytest

from api.catalog.renditions import BadVideo, build_ladder, probe, rungs_for
from peers.video import write_test_video


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three seconds of 1280x720 H.264 and AAC: a 720p and a 480p rung, no 1080p."""
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    return write_test_video(path, width=1280, height=720, seconds=3.0)


MPD = "{urn:mpeg:dash:schema:mpd:2011}"


def decoded_frames(playlist: Path) -> tuple[int, tuple[int, int], bool]:
    """Decode a rendition through FFmpeg's own HLS demuxer: pictures, size, audio present."""
    with av.open(str(playlist)) as container:
        has_audio = bool(container.streams.audio)
        frames = list(container.decode(video=0))
    return len(frames), (frames[0].width, frames[0].height), has_audio


def as_dash_plays(root: Path, template: ElementTree.Element) -> list[av.VideoFrame | av.AudioFrame]:
    """What a DASH player appends for one representation: its initialization, then each
    media segment its SegmentTemplate and SegmentTimeline name, decoded as one stream."""
    spans = template.iterfind(f"{MPD}SegmentTimeline/{MPD}S")
    count = sum(1 + int(s.get("r", "0")) for s in spans)
    names = [template.attrib["initialization"]] + [
        template.attrib["media"].replace("$Number%05d$", f"{n:05d}") for n in range(count)
    ]
    data = b"".join((root / name).read_bytes() for name in names)
    with av.open(io.BytesIO(data)) as container:
        return list(container.decode(container.streams[0]))


def test_ladder_plays_back(clip: Path, tmp_path: Path) -> None:
    steps: list[int] = []
    result = build_ladder(clip, tmp_path, thumbnail_at=1.5, progress=steps.append)
    meta = result.metadata
    assert (meta.width, meta.height, meta.video_codec, meta.audio_codec) == (
        1280,
        720,
        "h264",
        "aac",
    )
    assert meta.duration == pytest.approx(3.0, abs=0.1)
    assert meta.bitrate and meta.frame_rate == 30
    assert steps == sorted(steps) and steps[-1] == 100
    assert [(r.name, r.width, r.height) for r in result.renditions] == [
        ("720p", 1280, 720),
        ("480p", 852, 480),
    ]
    master = (tmp_path / "master.m3u8").read_text()
    assert "RESOLUTION=1280x720" in master and 'CODECS="avc1.64001f,mp4a.40.2"' in master
    assert "720p/index.m3u8" in master and "480p/index.m3u8" in master
    assert 'TYPE=AUDIO,GROUP-ID="audio"' in master and 'URI="audio/index.m3u8"' in master
    for rendition in result.renditions:
        count, size, audio = decoded_frames(tmp_path / rendition.playlist)
        assert count == 90 and size == (rendition.width, rendition.height) and not audio
    with av.open(str(tmp_path / "audio" / "index.m3u8")) as sound:
        assert sum(f.samples for f in sound.decode(audio=0)) >= 3 * 48000
    with av.open(str(tmp_path / "thumbnail.jpg")) as picture:
        assert next(picture.decode(video=0)).width == 1280
    assert set(result.files) >= {"master.m3u8", "manifest.mpd", "thumbnail.jpg", "720p/init.mp4"}


def test_the_dash_manifest_plays_the_same_segments(clip: Path, tmp_path: Path) -> None:
    result = build_ladder(clip, tmp_path)
    assert result.dash == "manifest.mpd"
    mpd = ElementTree.parse(tmp_path / "manifest.mpd").getroot()
    assert mpd.get("type") == "static" and mpd.get("mediaPresentationDuration", "").startswith(
        "PT3."
    )
    video, audio = mpd.iterfind(f"{MPD}Period/{MPD}AdaptationSet")
    assert (video.get("contentType"), audio.get("contentType")) == ("video", "audio")
    named: set[str] = set()
    for representation in video.iterfind(f"{MPD}Representation"):
        template = representation.find(f"{MPD}SegmentTemplate")
        assert template is not None
        frames = as_dash_plays(tmp_path, template)
        size = (int(representation.attrib["width"]), int(representation.attrib["height"]))
        assert len(frames) == 90 and (frames[0].width, frames[0].height) == size
        named.add(representation.attrib["id"])
        # The timeline is the HLS playlist's: the same files for the same seconds.
        spans = template.iterfind(f"{MPD}SegmentTimeline/{MPD}S")
        seconds = sum(int(s.attrib["d"]) * (1 + int(s.get("r", "0"))) for s in spans) / 90000
        assert seconds == pytest.approx(3.0, abs=0.05)
    assert named == {r.name for r in result.renditions}
    (sound,) = audio.iterfind(f"{MPD}Representation")
    template = sound.find(f"{MPD}SegmentTemplate")
    assert template is not None and template.attrib["initialization"] == "audio/init.mp4"
    assert sum(f.samples for f in as_dash_plays(tmp_path, template)) >= 3 * 48000


def test_ladder_never_upscales_and_keeps_portrait() -> None:
    assert [(r.name, w, h) for r, w, h in rungs_for(1920, 1080)] == [
        ("1080p", 1920, 1080),
        ("720p", 1280, 720),
        ("480p", 852, 480),
    ]
    assert [(r.name, w, h) for r, w, h in rungs_for(1080, 1920)][1] == ("720p", 720, 1280)
    assert [(r.name, w, h) for r, w, h in rungs_for(320, 181)] == [("181p", 320, 180)]


def test_bad_files_fail_with_a_reason(clip: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all\n" * 100)
    png = tmp_path / "picture.mp4"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    reasons = {}
    for path in (empty, text, png, truncated):
        with pytest.raises(BadVideo) as caught:
            probe(path)
        reasons[path.name] = str(caught.value)
    assert "empty" in reasons["empty.mp4"]
    assert "not a video" in reasons["notes.mp4"]
    assert "image/png" in reasons["picture.mp4"]
    assert "cannot be read" in reasons["truncated.mp4"]


def test_huge_resolution_is_refused(tmp_path: Path) -> None:
    wide = write_test_video(tmp_path / "wide.mp4", width=4400, height=64, seconds=0.2, audio=False)
    with pytest.raises(BadVideo, match="4400x64 is above"):
        probe(wide)


def test_the_process_reports_progress_and_a_clear_error(clip: Path, tmp_path: Path) -> None:
    run = [sys.executable, "-m", "api.catalog.renditions"]
    done = subprocess.run([*run, str(clip), str(tmp_path / "out")], capture_output=True, check=True)
    lines = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert lines[0]["progress"] >= 1 and lines[-1]["result"]["master"] == "master.m3u8"
    assert lines[-1]["result"]["dash"] == "manifest.mpd"
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"")
    failed = subprocess.run([*run, str(bad), str(tmp_path / "bad")], capture_output=True)
    assert failed.returncode == 1
    assert json.loads(failed.stdout) == {"error": "the upload is empty (zero bytes)"}
