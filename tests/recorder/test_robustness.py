"""Bad input must never break the SFU's tap: reordering, loss, junk, a full disk."""

from __future__ import annotations

import asyncio
import random
import struct
import subprocess
from pathlib import Path

import pytest

from recorder.config import RecorderConfig
from recorder.recorder import Recorder

from .conftest import feed
from .media import VIDEO_PT, Timed, decode_recording
from .test_recording import H264_TRACKS, check_vod


def reorder_and_drop(packets: list[Timed], seed: int) -> tuple[list[Timed], int]:
    rng = random.Random(seed)
    out = list(packets)
    for index in range(0, len(out) - 4, 3):  # local reordering, a few packets deep
        if rng.random() < 0.3:
            j = index + rng.randrange(1, 4)
            out[index], out[j] = out[j], out[index]
    kept = [p for p in out if p.kind == "audio" or rng.random() > 0.01]
    return kept, len(out) - len(kept)


async def test_reordered_and_lossy_input_still_records(
    tmp_path: Path, h264_av: list[Timed]
) -> None:
    packets, dropped = reorder_and_drop(h264_av, seed=3)
    assert dropped > 0
    requests: list[int] = []
    recorder = Recorder(tmp_path, H264_TRACKS, request_keyframe=lambda: requests.append(1))
    await feed(recorder, packets)
    result = await recorder.finish()
    assert not result.truncated
    # Frames after a loss are dropped until the next keyframe, and this canned stream
    # cannot answer keyframe requests: up to a GOP (1 s) may be missing at either end.
    check_vod(tmp_path, 6.0, tolerance=2.0)
    assert len(requests) > 1, "loss makes the recorder ask for a keyframe"


def junk_packets(rng: random.Random) -> list[bytes]:
    header = struct.pack("!BBHII", 0x80, VIDEO_PT, 1, 2, 3)
    return [
        b"",
        b"\x80",
        bytes(rng.randrange(256) for _ in range(rng.randrange(1, 1500))),
        struct.pack("!BBHII", 0x90, VIDEO_PT, 5, 6, 7) + b"\xbe\xde\xff\xff",  # extension overrun
        struct.pack("!BBHII", 0xA0, VIDEO_PT, 5, 6, 7) + b"\x01\xff",  # padding overrun
        header + b"\x1c",  # FU-A without its header byte
        header + b"\x18\xff\xff\x67",  # STAP-A with a length past the end
        header + b"\x7c\x85",  # FU-A start, no payload
        header + bytes([26, 0, 0]),  # MTAP
        struct.pack("!BBHII", 0x8F, VIDEO_PT, 5, 6, 7),  # 15 CSRCs announced, none there
    ]


async def test_junk_is_ignored(tmp_path: Path, h264_av: list[Timed]) -> None:
    rng = random.Random(5)
    recorder = Recorder(tmp_path, H264_TRACKS)
    for _ in range(20):
        for junk in junk_packets(rng):
            recorder.on_rtp("video", junk)
            recorder.on_rtp("audio", junk)
    recorder.on_rtp("data", b"\x80\x00")
    mixed: list[Timed] = []
    for index, packet in enumerate(h264_av):
        mixed.append(packet)
        if index % 50 == 0:
            mixed.extend(Timed(packet.at, "video", junk) for junk in junk_packets(rng)[:3])
    await feed(recorder, mixed)
    result = await recorder.finish()
    assert not result.truncated
    stats = decode_recording(tmp_path)
    assert abs(stats["video_end"] - 6.0) < 1.0


def mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    command = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)]
    return subprocess.run(command, capture_output=True, check=False).returncode == 0


@pytest.mark.parametrize("how", ["tmpfs", "quota"])
async def test_disk_full_truncates_and_keeps_accepting(
    tmp_path: Path, h264_av: list[Timed], how: str
) -> None:
    directory = tmp_path / "small"
    config = RecorderConfig()
    if how == "tmpfs":
        if not mount_tmpfs(directory, "300k"):
            pytest.skip("cannot mount a tmpfs here (not root?); the quota variant covers it")
    else:
        config = RecorderConfig(max_bytes=300_000)
    try:
        recorder = Recorder(directory, H264_TRACKS, config=config)
        await feed(recorder, h264_av)
        assert recorder.truncated
        live = recorder.playlist_text()
        assert live.rstrip().endswith("#EXT-X-ENDLIST"), "a full disk closes the playlist"
        for packet in h264_av[:200]:  # still accepted, silently dropped
            recorder.on_rtp(packet.kind, packet.data)
        result = await recorder.finish()
        assert result.truncated
        assert result.segments > 0 and result.duration < 6.0
        for name in result.files:
            assert (directory / name).exists()
        listed = [line for line in live.splitlines() if line.startswith("segment-")]
        assert all((directory / name).exists() for name in listed)
    finally:
        if how == "tmpfs":
            await asyncio.to_thread(subprocess.run, ["umount", str(directory)], check=False)
