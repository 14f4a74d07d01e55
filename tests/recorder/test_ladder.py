"""A simulcast H.264 show is recorded as an HLS ladder: a rendition per layer, no transcoding,
the audio and the product cues in each, a master playlist live and in the replay."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import av
import pytest

from live.recordings import Recordings
from recorder import Cue, RecorderConfig
from recorder.ladder import MASTER_PLAYLIST
from sfu import PublishedTrack
from twins.objectstore import LocalStorage

from .media import Timed, decode_recording, opus_rtp, video_rtp

Listener = Callable[[str, bytes], None]
LAYERS = {"q": (320, 180, 150_000), "h": (640, 360, 500_000), "f": (1280, 720, 1_500_000)}
SECONDS = 4.0


class LayeredPublisher:
    """The SFU as recording sees it, with one publisher sending three H.264 layers and Opus."""

    def __init__(self) -> None:
        self.main: Listener | None = None
        self.layers: dict[str, Listener] = {}
        self.keyframes: list[str | None] = []

    def tracks(self, room_id: str) -> list[PublishedTrack]:
        return [
            PublishedTrack("video", "H264", 102, 90000, tuple(LAYERS)),
            PublishedTrack("audio", "opus", 111, 48000),
        ]

    def tap(self, room_id: str, listener: Listener) -> bool:
        self.main = listener
        return True

    def tap_layer(self, room_id: str, rid: str, listener: Listener) -> bool:
        self.layers[rid] = listener
        return True

    def request_keyframe(self, room_id: str, rid: str | None = None) -> None:
        self.keyframes.append(rid)


class Published:
    def __init__(self) -> None:
        self.urls: list[str] = []

    async def wanted(self, stream_id: str) -> bool:
        return True

    async def truncated(self, stream_id: str) -> None:
        raise AssertionError("the recording was cut short")

    async def published(
        self,
        stream_id: str,
        vod_url: str,
        thumbnail_url: str | None,
        media: tuple[datetime, datetime] | None,
    ) -> None:
        self.urls.append(vod_url)


LATE = 1.0  # the smallest layer starts this much later (at a keyframe), as a paused one would


@pytest.fixture(scope="module")
def layered() -> list[tuple[str | None, Timed]]:
    """Each layer's packets (by RID) and the audio (None), in sending order."""
    streams = [
        [
            (rid, p)
            for p in video_rtp(SECONDS, width=w, height=h, bitrate=rate)
            if rid != "q" or p.at >= LATE
        ]
        for rid, (w, h, rate) in LAYERS.items()
    ]
    audio = [(None, p) for p in opus_rtp(SECONDS)]
    return sorted((x for s in [*streams, audio] for x in s), key=lambda x: x[1].at)


async def send(publisher: LayeredPublisher, packets: list[tuple[str | None, Timed]]) -> None:
    """At the pace of a real sender: the recording's timeline comes from arrival times."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    for index, (rid, packet) in enumerate(packets):
        # The SFU's tap sees the audio and the largest picture; each layer's, its own layer.
        if rid is None or rid == "f":
            assert publisher.main is not None
            publisher.main(packet.kind, packet.data)
        if rid is not None:
            publisher.layers[rid](packet.kind, packet.data)
        if index % 20 == 19:
            await asyncio.sleep(max(0.0, start + packet.at - loop.time()))


def variants(master: str) -> list[tuple[int, str, str, str]]:
    found = re.findall(
        r'#EXT-X-STREAM-INF:BANDWIDTH=(\d+),RESOLUTION=(\d+x\d+),CODECS="([^"]+)"\n(\S+)', master
    )
    return [(int(b), size, codecs, uri) for b, size, codecs, uri in found]


async def test_each_layer_is_a_rendition_live_and_in_the_replay(
    tmp_path: Path, layered: list[tuple[str | None, Timed]]
) -> None:
    publisher, replays = LayeredPublisher(), Published()
    store = LocalStorage(tmp_path / "store")
    config = RecorderConfig(poster_at=0.5)
    recordings = Recordings(publisher, replays, store, tmp_path / "recordings", config, ladder=True)
    await recordings.media_started("s1")
    assert set(publisher.layers) == set(LAYERS)
    assert set(publisher.keyframes) == set(LAYERS)  # each rendition asks its own layer
    assert recordings.master_text("s1") is None  # nothing recorded yet
    start = datetime.now(UTC)
    recordings.add_cue("s1", Cue("pin-1", start, attributes={"X-PRODUCT": "mug"}))
    await send(publisher, layered)

    async def listed() -> str | None:
        text = recordings.master_text("s1")
        return text if text is not None and len(variants(text)) == 3 else None

    master = None
    for _ in range(100):
        if (master := await listed()) is not None:
            break
        await asyncio.sleep(0.05)
    assert master is not None, recordings.master_text("s1")
    live = variants(master)
    assert [(size, uri) for _, size, _, uri in live] == [
        ("320x180", "q/index.m3u8"),
        ("640x360", "h/index.m3u8"),
        ("1280x720", "index.m3u8"),
    ]
    assert all(
        codecs.startswith("avc1.") and codecs.endswith(",mp4a.40.2") for *_, codecs, _ in live
    )
    bandwidths = [b for b, *_ in live]
    assert bandwidths == sorted(bandwidths) and bandwidths[0] < bandwidths[-1] / 2
    for rid in ("q", "h"):
        rendition = recordings.recorder("s1", rid)
        assert rendition is not None
        assert 'ID="pin-1"' in rendition.playlist_text()
    assert recordings.recorder("s1", "f") is recordings.recorder(
        "s1"
    )  # the largest is the main one

    recordings.stream_finished("s1")
    for _ in range(200):
        if replays.urls:
            break
        await asyncio.sleep(0.05)
    assert replays.urls == ["/media/vod/s1/master.m3u8"]
    vod = store.path_for("vod/s1")
    replay = variants((vod / MASTER_PLAYLIST).read_text())
    assert [uri for *_, uri in replay] == ["q/vod.m3u8", "h/vod.m3u8", "vod.m3u8"]
    assert [size for _, size, *_ in replay] == [size for _, size, *_ in live]
    for rid in LAYERS:
        directory = vod if rid == "f" else vod / rid
        decoded = decode_recording(directory)
        assert decoded["video_frames"] >= 60 and decoded["audio_end"] > 2, (rid, decoded)
        assert 'ID="pin-1"' in (directory / "vod.m3u8").read_text()
    assert not (tmp_path / "recordings" / "s1").exists()
    # One timeline: the late layer's first picture is stamped when it came, not at zero.
    firsts = {rid: first_video_time(vod if rid == "f" else vod / rid) for rid in LAYERS}
    assert abs(firsts["f"] - firsts["h"]) < 0.1, firsts
    assert abs(firsts["q"] - firsts["f"] - LATE) < 0.3, firsts


async def test_without_the_ladder_only_the_largest_layer_is_recorded(tmp_path: Path) -> None:
    publisher = LayeredPublisher()
    store = LocalStorage(tmp_path / "store")
    recordings = Recordings(
        publisher, Published(), store, tmp_path / "recordings", RecorderConfig()
    )
    await recordings.media_started("s1")
    assert publisher.main is not None and publisher.layers == {}
    assert recordings.recorder("s1", "q") is None
    assert publisher.keyframes == [None]  # the main video's keyframes
    await recordings.close()


def first_video_time(directory: Path) -> float:
    playlist = (directory / "vod.m3u8").read_text().splitlines()
    first = next(line for line in playlist if line and not line.startswith("#"))
    joined = directory / "first.mp4"
    joined.write_bytes((directory / "init.mp4").read_bytes() + (directory / first).read_bytes())
    with av.open(str(joined)) as container:
        frame = next(container.decode(video=0))
        assert frame.time is not None
        return float(frame.time)
