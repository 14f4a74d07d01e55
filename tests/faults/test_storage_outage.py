"""The S3 store goes down while a show's recording uploads: the upload waits, retries, and
publishes the whole replay once the store is back; the local copy stays until then."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from peers.webrtc import PublisherPeer
from server.app import build_app
from server.settings import Settings
from tests.conftest import Shop, eventually
from tests.seaweed import ACCESS_KEY, SECRET_KEY, Seaweed
from twins.objectstore import S3Storage

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]
BUCKET = "replays"


async def test_store_down_during_upload(
    seaweed: Seaweed, node_settings: Settings, sqlite_url: str, aiohttp_client: Any
) -> None:
    store = S3Storage(
        bucket=BUCKET,
        endpoint_url=seaweed.endpoint,
        region="us-east-1",
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
    )
    await store.create_bucket()
    settings = node_settings.model_copy(
        update={
            "s3_bucket": BUCKET,
            "s3_endpoint_url": seaweed.endpoint,
            "s3_region": "us-east-1",
            "s3_access_key": ACCESS_KEY,
            "s3_secret_key": SecretStr(SECRET_KEY),
        }
    )
    client = await aiohttp_client(build_app(settings))
    shop = Shop(client, sqlite_url)
    seller = await shop.account("seller")
    sid = (await shop.stream(seller))["id"]
    live = await client.post(f"/api/v1/streams/{sid}/go-live", headers=seller.auth)
    token = (await live.json())["publish_token"]
    publisher = PublisherPeer()
    answer = await client.post(
        f"/whip/{sid}",
        data=await publisher.offer(),
        headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"},
    )
    await publisher.accept(await answer.text())

    async def segments() -> int:
        return (await (await client.get(f"/hls/{sid}/index.m3u8")).text()).count("#EXTINF")

    await eventually(lambda: _at_least(segments, 3), 20, "no live segments")
    seaweed.stop()
    assert (await client.post(f"/api/v1/streams/{sid}/end", headers=seller.auth)).status == 200
    await publisher.close()
    local = Path(settings.resolved_media_dir) / "recordings" / sid
    await eventually(lambda: (local / "vod.m3u8").exists(), 10, "the recording was not finished")
    await asyncio.sleep(2)  # a few upload attempts fail meanwhile
    show = await (await client.get(f"/api/v1/streams/{sid}")).json()
    assert show["status"] == "ended" and show["vod_url"] is None
    assert not show["recording_truncated"]
    kept = sorted(p.name for p in local.iterdir() if p.suffix in (".m4s", ".mp4", ".m3u8"))
    assert "vod.m3u8" in kept and any(name.endswith(".m4s") for name in kept)
    assert (await client.get("/healthz")).status == 200

    seaweed.start()

    async def published() -> str | None:
        return str((await (await client.get(f"/api/v1/streams/{sid}")).json())["vod_url"] or "")

    await eventually(published, 60, "the replay was never published after the store returned")
    vod = (await store.get_bytes(f"vod/{sid}/vod.m3u8")).decode()
    listed = [line for line in vod.splitlines() if line and not line.startswith("#")]
    assert listed and "#EXT-X-ENDLIST" in vod
    for name in listed:
        assert await store.exists(f"vod/{sid}/{name}"), f"{name} lost"
    await eventually(lambda: not local.exists(), 10, "the local copy outlived its upload")


async def _at_least(count: Any, wanted: int) -> bool:
    return bool(await count() >= wanted)
