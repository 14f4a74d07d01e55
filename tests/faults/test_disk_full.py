"""The disk fills up while a show records: the recording stops cleanly at what fitted, the
show goes on for its viewers, and the part that was recorded is published as the replay."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api.catalog.product_media import MEDIA_UPLOADS
from api.streaming.hls import RECORDINGS
from peers.webrtc import PublisherPeer, ViewerPeer
from server.app import build_app
from server.settings import Settings
from tests.api.test_media import local_post, upload_url
from tests.conftest import Shop, eventually, expect_error

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]
SDP = {"Content-Type": "application/sdp"}


def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` (created), unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    path.mkdir(parents=True)
    command = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)]
    subprocess.run(command, check=True, capture_output=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "--lazy", str(path)], check=False)


@pytest.fixture
def small_disk(node_settings: Settings) -> Iterator[Path]:
    """A 300 kB tmpfs where the node writes its recordings."""
    yield from tmpfs(node_settings.resolved_media_dir / "recordings", "300k")


async def test_disk_full_while_recording(
    small_disk: Path, node_settings: Settings, sqlite_url: str, aiohttp_client: Any
) -> None:
    client = await aiohttp_client(build_app(node_settings))
    shop = Shop(client, sqlite_url)
    seller = await shop.account("seller")
    sid = (await shop.stream(seller))["id"]
    live = await client.post(f"/api/v1/streams/{sid}/go-live", headers=seller.auth)
    token = (await live.json())["publish_token"]
    publisher, viewer = PublisherPeer(size=(640, 480)), ViewerPeer(record=False)
    try:
        answer = await client.post(
            f"/whip/{sid}",
            data=await publisher.offer(),
            headers={**SDP, "Authorization": f"Bearer {token}"},
        )
        await publisher.accept(await answer.text())

        async def is_live() -> bool:
            show = await (await client.get(f"/api/v1/streams/{sid}")).json()
            return bool(show["status"] == "live")

        await eventually(is_live, 10, "the show never went live")
        watched = await client.post(f"/whep/{sid}", data=await viewer.offer(), headers=SDP)
        assert watched.status == 201, await watched.text()
        await viewer.accept(await watched.text())

        recordings = client.app[RECORDINGS]
        recorder = await eventually(lambda: recordings.recorder(sid), 10, "never recorded")
        await eventually(lambda: recorder.truncated, 60, "the small disk never filled")
        # The show goes on: media still reaches the viewer, the API still answers.
        received = sum(viewer.counts.values())
        await eventually(lambda: sum(viewer.counts.values()) > received + 100, 10, "media stopped")
        assert await is_live()
        assert (await client.get(f"/api/v1/streams/{sid}/chat")).status == 200
        assert (await client.get("/healthz")).status == 200

        ended = await client.post(f"/api/v1/streams/{sid}/end", headers=seller.auth)
        assert ended.status == 200
    finally:
        await publisher.close()
        await viewer.close()

    async def replay() -> str | None:
        show = await (await client.get(f"/api/v1/streams/{sid}")).json()
        return str(show["vod_url"] or "")

    url = await eventually(replay, 30, "what was recorded was never published")
    vod = await (await client.get(url.removeprefix("http://shopcast.test"))).text()
    assert "#EXT-X-ENDLIST" in vod and "#EXTINF" in vod
    show = await (await client.get(f"/api/v1/streams/{sid}")).json()
    assert show["recording_truncated"], "the replay is marked as cut short"


@pytest.fixture
def small_store(node_settings: Settings) -> Iterator[Path]:
    """A 64 kB tmpfs as the local object store (product photos, replays)."""
    yield from tmpfs(node_settings.resolved_media_dir / "store", "64k")


async def test_disk_full_during_an_upload(
    small_store: Path, node_settings: Settings, sqlite_url: str, aiohttp_client: Any
) -> None:
    # A product photo posted to the local store while its disk is full: once a 500.
    client = await aiohttp_client(build_app(node_settings))
    store = client.app[MEDIA_UPLOADS].store
    shop = Shop(client, sqlite_url)
    seller = await shop.account("seller")
    product = await shop.product(seller)
    photo = b"\x89PNG\r\n\x1a\n" + bytes(300_000)
    grant = await upload_url(client, seller, product["id"], "image", "image/png", len(photo))
    response = await local_post(client, grant["url"], grant["fields"], photo, "image/png")
    await expect_error(response, 507, "insufficient_storage")
    assert response.headers["Retry-After"]
    assert not await store.exists(grant["fields"]["key"])
    assert not await asyncio.to_thread(os.listdir, small_store), "a spool or partial file was left"
    assert (await client.get("/healthz")).status == 200
