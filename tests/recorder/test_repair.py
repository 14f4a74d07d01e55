"""A recorder killed mid-show leaves a directory that `repair` turns into a playable VOD."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from recorder.repair import needs_repair, repair

from .media import decode_recording
from .test_recording import media_entries

ROOT = Path(__file__).resolve().parents[2]


def record_then_sigkill(directory: Path) -> None:
    command = [sys.executable, "-m", "tests.recorder.crash_child", str(directory)]
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == b"ready"
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(10)


def test_repair_after_sigkill_gives_playable_vod(tmp_path: Path) -> None:
    directory = tmp_path / "show"
    record_then_sigkill(directory)
    assert needs_repair(directory)
    segments = sorted(directory.glob("segment-*.m4s"))
    assert len(segments) >= 3
    last = segments[-1]
    data = last.read_bytes()
    last.write_bytes(data[: len(data) - 700])  # the crash cut the last part short
    result = repair(directory)
    assert result.truncated and result.segments >= 2
    assert not needs_repair(directory)
    vod = (directory / "vod.m3u8").read_text()
    assert vod.rstrip().endswith("#EXT-X-ENDLIST") and "#EXT-X-PLAYLIST-TYPE:VOD" in vod
    entries = media_entries(vod)
    assert [name for _, name in entries] == [f"segment-{i:05d}.m4s" for i in range(len(entries))]
    assert all(0 < duration <= 2.0 for duration, _ in entries)
    assert 'ID="pin-crash"' in vod
    assert not list(directory.glob("part-*.m4s"))
    closed = (directory / "index.m3u8").read_text()
    assert closed.rstrip().endswith("#EXT-X-ENDLIST")
    stats = decode_recording(directory)
    assert abs(stats["video_end"] - result.duration) < 0.5, (stats, result)
    assert stats["audio_frames"] > 0
    assert (directory / "poster.jpg").exists() and result.poster == "poster.jpg"
    assert set(result.files) >= {"init.mp4", "vod.m3u8", "index.m3u8"}


def test_repair_without_media_reports_nothing(tmp_path: Path) -> None:
    result = repair(tmp_path)
    assert result.segments == 0 and result.truncated and result.error
