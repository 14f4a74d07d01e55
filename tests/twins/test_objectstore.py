"""The storage seam (local files, S3 on a real SeaweedFS) and the upload queue."""

from __future__ import annotations

import asyncio
import json
import os
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from recorder import RecordingTally
from recorder.upload import JOURNAL, UploadQueue
from tests.seaweed import ACCESS_KEY, SECRET_KEY, Seaweed
from twins.objectstore import LocalStorage, ObjectNotFound, S3Storage, validate_key

BAD_KEYS = [
    "",
    "/etc/passwd",
    "../x",
    "a/../b",
    "a/./b",
    "a//b",
    "a/",
    ".hidden",
    "a\\b",
    "a\x00b",
    "ünïcode",
    "a b",
    "x" * 1100,
]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_bad_keys_are_rejected(key: str) -> None:
    with pytest.raises(ValueError):
        validate_key(key)


async def test_local_storage_round_trip(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path / "media", base_url="/media/")
    source = tmp_path / "segment.m4s"
    source.write_bytes(b"\x00" * 1000)
    await store.put_file("recordings/s1/segment-00000.m4s", source, "video/iso.segment")
    await store.put_bytes("recordings/s1/vod.m3u8", b"#EXTM3U\n", "application/vnd.apple.mpegurl")
    assert await store.size("recordings/s1/segment-00000.m4s") == 1000
    assert await store.get_bytes("recordings/s1/vod.m3u8") == b"#EXTM3U\n"
    assert await store.url_for("recordings/s1/vod.m3u8") == "/media/recordings/s1/vod.m3u8"
    await store.delete("recordings/s1/vod.m3u8")
    assert not await store.exists("recordings/s1/vod.m3u8")
    with pytest.raises(ObjectNotFound):
        await store.get_bytes("recordings/s1/vod.m3u8")
    for key in BAD_KEYS:
        with pytest.raises(ValueError):
            await store.put_bytes(key, b"x", "text/plain")
    assert stored_files(tmp_path / "media") == ["segment-00000.m4s"], "no temporary files left"


def s3_store(server: Seaweed, bucket: str = "recordings") -> S3Storage:
    return S3Storage(
        bucket=bucket,
        endpoint_url=server.endpoint,
        region="us-east-1",
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        connect_timeout=1.0,
        read_timeout=5.0,
    )


async def test_s3_storage_against_seaweedfs(seaweed: Seaweed, tmp_path: Path) -> None:
    store = s3_store(seaweed)
    await store.create_bucket()
    source = tmp_path / "init.mp4"
    source.write_bytes(os.urandom(5000))
    await store.put_file("shows/a/init.mp4", source, "video/mp4")
    await store.put_bytes("shows/a/vod.m3u8", b"#EXTM3U\n", "application/vnd.apple.mpegurl")
    assert await store.size("shows/a/init.mp4") == 5000
    assert await store.get_bytes("shows/a/init.mp4") == source.read_bytes()
    url = await store.url_for("shows/a/vod.m3u8", expires=60)
    assert url.startswith(seaweed.endpoint) and "Signature" in url
    body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read())
    assert body == b"#EXTM3U\n"
    await store.delete("shows/a/vod.m3u8")
    assert await store.size("shows/a/vod.m3u8") is None
    with pytest.raises(ObjectNotFound):
        await store.get_bytes("shows/a/vod.m3u8")


def make_recording(directory: Path, count: int, size: int) -> list[str]:
    directory.mkdir(parents=True, exist_ok=True)
    names = [f"segment-{i:05d}.m4s" for i in range(count)] + ["vod.m3u8"]
    for name in names:
        (directory / name).write_bytes(os.urandom(size))
    return names


def stored_files(root: Path) -> list[str]:
    return sorted(path.name for path in root.rglob("*") if path.is_file())


async def wait_until(condition: Callable[[], bool]) -> None:
    while not condition():  # noqa: ASYNC110 - polls counters the queue's task updates
        await asyncio.sleep(0.05)


async def test_upload_queue_survives_storage_outage_and_restart(
    seaweed: Seaweed, tmp_path: Path
) -> None:
    store = s3_store(seaweed)
    await store.create_bucket()
    directory = tmp_path / "show"
    names = make_recording(directory, count=8, size=1_500_000)
    sizes = {name: (directory / name).stat().st_size for name in names}
    tally = RecordingTally()  # the node's, over both queues

    def upload_queue() -> UploadQueue:
        return UploadQueue(
            directory, store, prefix="shows/b", retry_base=0.1, retry_max=0.5, tally=tally
        )

    queue = upload_queue()
    await queue.add(names)
    queue.start()
    async with asyncio.timeout(20):
        await wait_until(lambda: len(queue.uploaded) >= 2)
    seaweed.stop()  # storage goes away mid-show
    async with asyncio.timeout(20):
        await wait_until(lambda: queue.failures >= 2)
    left = queue.pending
    assert left and all((directory / name).exists() for name in left), "kept until uploaded"
    for name in queue.uploaded:
        assert not (directory / name).exists(), "deleted once confirmed"
    await queue.close()  # and our process restarts too
    assert "vod.m3u8" in left, "playlists go last"

    seaweed.start()
    resumed = upload_queue()
    assert resumed.pending == left
    resumed.start()
    async with asyncio.timeout(30):
        await resumed.drain()
    await resumed.close()
    for name in names:
        assert await store.size(f"shows/b/{name}") == sizes[name]
        assert not (directory / name).exists()
    entries = [json.loads(line) for line in (directory / JOURNAL).read_text().splitlines()]
    assert {e["name"] for e in entries if e.get("done")} == set(names)
    assert (tally.uploads, tally.upload_bytes) == (len(names), sum(sizes.values()))
    assert tally.upload_failures == queue.failures + resumed.failures >= 2
    assert tally.upload_seconds > 0


async def test_upload_journal_survives_without_storage(tmp_path: Path) -> None:
    directory = tmp_path / "show"
    names = make_recording(directory, count=2, size=100)
    store = LocalStorage(tmp_path / "bucket")
    first = UploadQueue(directory, store, prefix="p")
    await first.add(names)
    await first.close()  # never started: like a crash right after the recording ended
    second = UploadQueue(directory, store, prefix="p")
    assert sorted(second.pending) == sorted(names)
    second.start()
    async with asyncio.timeout(10):
        await second.drain()
    await second.close()
    assert sorted(p.name for p in (tmp_path / "bucket" / "p").iterdir()) == sorted(names)
    assert UploadQueue(directory, store, prefix="p").pending == []
