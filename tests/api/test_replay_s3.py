"""With S3 settings, a show's replay is uploaded to a real S3-compatible store and plays from it."""

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import av
import pytest
from pydantic import SecretStr

from peers.webrtc import PublisherPeer
from server.app import build_app
from server.settings import Settings
from tests.conftest import Shop
from tests.seaweed import ACCESS_KEY, SECRET_KEY, Seaweed, new_seaweed
from twins.objectstore import S3Storage

BUCKET = "shopcast-replays"


@pytest.fixture
def public_seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seaweed]:
    server = new_seaweed(tmp_path_factory.mktemp("seaweed"), public_read=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_replay_is_published_to_s3(
    public_seaweed: Seaweed,
    settings: Settings,
    aiohttp_client: Any,
    database_url: str,
    tmp_path: Path,
) -> None:
    store = S3Storage(
        bucket=BUCKET,
        endpoint_url=public_seaweed.endpoint,
        region="us-east-1",
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
    )
    await store.create_bucket()
    settings.s3_bucket = BUCKET
    settings.s3_endpoint_url = public_seaweed.endpoint
    settings.s3_region = "us-east-1"
    settings.s3_access_key = ACCESS_KEY
    settings.s3_secret_key = SecretStr(SECRET_KEY)
    settings.s3_public_url = f"{public_seaweed.endpoint}/{BUCKET}"
    client = await aiohttp_client(build_app(settings))
    shop = Shop(client, database_url)
    seller = await shop.account("seller")
    stream = await shop.stream(seller)
    sid = stream["id"]
    token = (
        await (await client.post(f"/api/v1/streams/{sid}/go-live", headers=seller.auth)).json()
    )["publish_token"]
    publisher = PublisherPeer()
    answer = await client.post(
        f"/whip/{sid}",
        data=await publisher.offer(),
        headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"},
    )
    await publisher.accept(await answer.text())
    deadline = time.monotonic() + 20
    while (await (await client.get(f"/hls/{sid}/index.m3u8")).text()).count("#EXTINF") < 2:
        assert time.monotonic() < deadline, "no segments"
        await asyncio.sleep(0.2)
    assert (await client.post(f"/api/v1/streams/{sid}/end", headers=seller.auth)).status == 200
    await publisher.close()
    deadline = time.monotonic() + 30
    while not (url := (await (await client.get(f"/api/v1/streams/{sid}")).json())["vod_url"]):
        assert time.monotonic() < deadline, "the replay was never published"
        await asyncio.sleep(0.2)
    assert url == f"{public_seaweed.endpoint}/{BUCKET}/vod/{sid}/vod.m3u8"
    csp = (await client.get(f"/watch/{sid}")).headers["Content-Security-Policy"]
    assert public_seaweed.endpoint in csp
    local = Path(settings.resolved_media_dir) / "recordings" / sid
    assert not any(p.suffix in (".m4s", ".mp4") for p in local.glob("*")), "local copies stay"
    joined = tmp_path / "replay.mp4"
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as response:
            assert response.status == 200
            vod = await response.text()
        assert "#EXT-X-ENDLIST" in vod
        base = url.rsplit("/", 1)[0]
        with joined.open("wb") as out:
            for name in ["init.mp4"] + [x for x in vod.splitlines() if x and not x.startswith("#")]:
                async with http.get(f"{base}/{name}") as response:
                    assert response.status == 200, name
                    out.write(await response.read())
    with av.open(str(joined)) as container:
        assert sum(1 for _ in container.decode(video=0)) > 30
