"""End to end: RTP in, HLS out, decoded again with PyAV."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from recorder.config import RecorderConfig
from recorder.cue import Cue
from recorder.recorder import Recorder
from recorder.track import TrackInfo

from .conftest import feed
from .media import (
    AUDIO_PT,
    VIDEO_PT,
    VP8_PT,
    Timed,
    decode_recording,
    interleave,
    opus_rtp,
    video_rtp,
)

H264_TRACKS = [
    TrackInfo("video", "H264", VIDEO_PT, 90000),
    TrackInfo("audio", "opus", AUDIO_PT, 48000),
]
VP8_TRACKS = [TrackInfo("video", "VP8", VP8_PT, 90000), TrackInfo("audio", "opus", AUDIO_PT, 48000)]


def media_entries(playlist: str) -> list[tuple[float, str]]:
    lines = playlist.splitlines()
    return [
        (float(line.split(":")[1].rstrip(",")), lines[i + 1])
        for i, line in enumerate(lines)
        if line.startswith("#EXTINF:")
    ]


def part_files(directory: Path) -> list[Path]:
    return list(directory.glob("part-*.m4s"))


def check_vod(directory: Path, published: float, tolerance: float = 1.0) -> str:
    vod = (directory / "vod.m3u8").read_text()
    assert vod.startswith("#EXTM3U\n")
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in vod and vod.rstrip().endswith("#EXT-X-ENDLIST")
    assert "#EXT-X-PART" not in vod and "PRELOAD-HINT" not in vod
    entries = media_entries(vod)
    assert entries, vod
    assert [name for _, name in entries] == [f"segment-{i:05d}.m4s" for i in range(len(entries))]
    for duration, name in entries:
        assert (directory / name).exists(), name
        assert 0 < duration <= 2.0, (name, duration)
    target = int(re.search(r"#EXT-X-TARGETDURATION:(\d+)", vod).group(1))  # type: ignore[union-attr]
    assert max(duration for duration, _ in entries) <= target
    assert vod.count("#EXT-X-PROGRAM-DATE-TIME:") == len(entries)
    stats = decode_recording(directory)
    assert abs(stats["video_end"] - published) < tolerance, stats
    assert abs(stats["audio_end"] - published) < tolerance, stats
    assert abs(sum(d for d, _ in entries) - published) < tolerance
    return vod


async def test_h264_publisher_is_remuxed_to_playable_hls(
    tmp_path: Path, h264_av: list[Timed]
) -> None:
    requests: list[int] = []
    recorder = Recorder(tmp_path, H264_TRACKS, request_keyframe=lambda: requests.append(1))
    await feed(recorder, h264_av[: len(h264_av) // 2])
    start = recorder.playlist.start
    assert start is not None
    recorder.add_cue(
        Cue(
            "pin-1",
            start + timedelta(seconds=1.5),
            attributes={
                "X-PRODUCT-ID": "p_42",
                "X-X": 0.25,
                "X-Y": 0.5,
                "X-PRICE-CENTS": 1999,
                "X-ACTION": "pin",
            },
            duration=2.0,
        )
    )
    await feed(recorder, h264_av[len(h264_av) // 2 :])
    recorder.add_cue(
        Cue("unpin-1", datetime.now(UTC), attributes={"X-PRODUCT-ID": "p_42", "X-ACTION": "unpin"})
    )
    result = await recorder.finish()
    assert not result.truncated and result.error is None
    vod = check_vod(tmp_path, 6.0)
    assert abs(result.duration - 6.0) < 1.0
    assert result.segments == len(media_entries(vod))
    assert set(result.files) >= {"init.mp4", "vod.m3u8", "index.m3u8", "poster.jpg"}
    assert (tmp_path / "poster.jpg").read_bytes()[:3] == b"\xff\xd8\xff"
    assert not part_files(tmp_path)
    pin = next(line for line in vod.splitlines() if 'ID="pin-1"' in line)
    assert pin.startswith("#EXT-X-DATERANGE:")
    assert 'CLASS="com.shopcast.product"' in pin and 'X-PRODUCT-ID="p_42"' in pin
    assert "X-PRICE-CENTS=1999" in pin and "X-X=0.25" in pin and "DURATION=2" in pin
    assert 'X-ACTION="pin"' in pin and re.search(r'START-DATE="[0-9T:.-]+Z"', pin)
    assert 'ID="unpin-1"' in vod
    closed = (tmp_path / "index.m3u8").read_text()
    assert "#EXT-X-PLAYLIST-TYPE" not in closed and closed.rstrip().endswith("#EXT-X-ENDLIST")
    assert 'ID="pin-1"' in closed
    assert requests, "the recorder asks for a keyframe at the start"
    stats = recorder.stats()
    assert stats["video_packets"] and stats["audio_frames"] and stats["state"] == "finished"


async def test_the_poster_is_written_while_the_show_is_live(
    tmp_path: Path, h264_av: list[Timed]
) -> None:
    recorder = Recorder(tmp_path, H264_TRACKS)
    poster = tmp_path / "poster.jpg"
    await feed(recorder, h264_av[: len(h264_av) // 4])
    for _ in range(100):  # the muxer's thread writes it
        if poster.exists():
            break
        await asyncio.sleep(0.05)
    assert poster.read_bytes()[:3] == b"\xff\xd8\xff"
    assert await recorder.resolve("poster.jpg") == poster
    await recorder.finish()


async def test_what_a_recorder_keeps_per_part_is_bounded(
    tmp_path: Path, h264_av: list[Timed], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("recorder.recorder.PART_TIMES_KEPT", 4)
    recorder = Recorder(tmp_path, H264_TRACKS)
    await feed(recorder, h264_av)
    await recorder.finish()
    assert len([p for s in recorder.playlist.segments for p in s.parts]) > 4
    assert len(recorder.part_times) == 4


async def test_segments_stay_short_when_keyframes_never_come(tmp_path: Path) -> None:
    packets = interleave(video_rtp(5.0, "H264", width=320, height=180, gop=600), opus_rtp(5.0))
    requests: list[int] = []
    recorder = Recorder(tmp_path, H264_TRACKS, request_keyframe=lambda: requests.append(1))
    await feed(recorder, packets, speed=4.0)
    await recorder.finish()
    vod = check_vod(tmp_path, 5.0)  # every segment <= 2 s although only the first is a keyframe
    assert len(media_entries(vod)) >= 3
    assert len(requests) >= 3, "the recorder keeps asking for keyframes"


async def test_vp8_publisher_is_transcoded_once(tmp_path: Path, vp8_av: list[Timed]) -> None:
    recorder = Recorder(tmp_path, VP8_TRACKS)
    await feed(recorder, vp8_av, speed=5.0)
    result = await recorder.finish()
    assert not result.truncated
    check_vod(tmp_path, 5.0)
    assert (tmp_path / "poster.jpg").exists()


async def test_live_playlist_is_low_latency_hls(tmp_path: Path, h264_av: list[Timed]) -> None:
    recorder = Recorder(tmp_path, H264_TRACKS)
    assert not await recorder.wait_for(0, 0, timeout=0.2), "nothing recorded yet: times out"
    await feed(recorder, h264_av[: len(h264_av) // 6])
    assert await recorder.wait_for(0, 0, timeout=5.0)
    await feed(recorder, h264_av[len(h264_av) // 6 : len(h264_av) * 2 // 3])
    assert await recorder.wait_for(2, None, timeout=5.0)
    live = recorder.playlist_text()
    assert "#EXT-X-VERSION:9" in live and "#EXT-X-PLAYLIST-TYPE" not in live
    assert "#EXT-X-ENDLIST" not in live
    assert '#EXT-X-MAP:URI="init.mp4"' in live
    part_target = float(re.search(r"#EXT-X-PART-INF:PART-TARGET=([\d.]+)", live).group(1))  # type: ignore[union-attr]
    control = re.search(r"#EXT-X-SERVER-CONTROL:(.+)", live).group(1)  # type: ignore[union-attr]
    assert "CAN-BLOCK-RELOAD=YES" in control and "CAN-SKIP-DATERANGES=YES" in control
    hold_back = float(re.search(r"PART-HOLD-BACK=([\d.]+)", control).group(1))  # type: ignore[union-attr]
    assert hold_back >= 3 * part_target
    parts = re.findall(r'#EXT-X-PART:DURATION=([\d.]+),URI="([^"]+)"(,INDEPENDENT=YES)?', live)
    assert parts and all(float(duration) <= part_target for duration, _, _ in parts)
    assert any(independent for _, _, independent in parts)
    for _, uri, _ in parts:
        assert await recorder.resolve(uri, timeout=1.0) is not None, uri
    hint = re.search(r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="([^"]+)"', live).group(1)  # type: ignore[union-attr]
    assert hint not in {uri for _, uri, _ in parts}
    assert await recorder.resolve("part-009999.m4s", timeout=0.2) is None, "times out"
    assert await recorder.resolve("../etc/passwd") is None
    next_msn = recorder.playlist.next_msn
    assert not await recorder.wait_for(next_msn + 1, 0, timeout=0.3)
    assert recorder.too_far(next_msn + 5, None)
    await feed(recorder, h264_av[len(h264_av) * 2 // 3 :])
    assert await recorder.wait_for(next_msn + 1, 0, timeout=5.0)
    assert await recorder.resolve(hint, timeout=5.0) is not None
    await recorder.finish()
    assert await recorder.wait_for(999, 0, timeout=0.1), "an ended playlist answers at once"


async def test_delta_update_skips_old_segments(tmp_path: Path, h264_long: list[Timed]) -> None:
    config = RecorderConfig(segment_max=1.0, segment_min=0.5, part_target=0.25)
    recorder = Recorder(tmp_path, H264_TRACKS, config=config)
    await feed(recorder, h264_long, speed=10.0)
    assert await recorder.wait_for(8, None, timeout=10.0)
    start = recorder.playlist.start
    assert start is not None
    recorder.add_cue(Cue("early", start, attributes={"X-ACTION": "tag"}))
    full = recorder.playlist_text()
    delta = recorder.playlist_text(skip="v2")
    skipped = int(re.search(r"#EXT-X-SKIP:SKIPPED-SEGMENTS=(\d+)", delta).group(1))  # type: ignore[union-attr]
    assert skipped == len(media_entries(full)) - len(media_entries(delta)) > 0
    assert 'RECENTLY-REMOVED-DATERANGES=""' in delta and 'ID="early"' not in delta
    assert 'ID="early"' in recorder.playlist_text(skip=True)
    assert "CAN-SKIP-UNTIL=6.0" in full
    await recorder.finish()


async def test_dvr_window_bounds_the_live_playlist_not_the_replay(
    tmp_path: Path, h264_long: list[Timed]
) -> None:
    recorder = Recorder(tmp_path, H264_TRACKS, config=RecorderConfig(dvr_seconds=6.0))
    await feed(recorder, h264_long, speed=10.0)
    live = recorder.playlist_text()
    entries = media_entries(live)
    first = int(re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", live).group(1))  # type: ignore[union-attr]
    assert first > 0, "segments left the live playlist"
    assert [name for _, name in entries] == [
        f"segment-{msn:05d}.m4s" for msn in range(first, first + len(entries))
    ]
    listed = sum(duration for duration, _ in entries)
    assert 6.0 <= listed < 6.0 + entries[0][0] + 1e-3
    for _, name in entries:
        assert await recorder.resolve(name) is not None, name
    assert await recorder.resolve("segment-00000.m4s") is not None, "the replay keeps it"
    await recorder.finish()
    check_vod(tmp_path, 10.0)  # the VOD starts at segment 0 and decodes to the end
    closed = (tmp_path / "index.m3u8").read_text()
    closed_first = int(re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", closed).group(1))  # type: ignore[union-attr]
    assert closed_first >= first and "segment-00000.m4s" not in closed
