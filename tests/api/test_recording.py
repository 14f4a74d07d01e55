"""A WHIP publisher is recorded to LL-HLS, served live, and published as a replay."""

import asyncio
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import av
from aiohttp.test_utils import TestClient

from api.tables import Base
from peers.webrtc import PublisherPeer
from tests.api.test_crash import program_dates
from tests.conftest import Shop, eventually, expect_error

Client = TestClient[Any, Any]
SDP = {"Content-Type": "application/sdp"}


async def test_live_hls_and_replay(client: Client, shop: Shop, tmp_path: Path) -> None:
    seller = await shop.account("seller")
    product = await shop.product(seller, title="Mug")
    stream = await shop.stream(seller, product_ids=[product["id"]])
    sid = stream["id"]
    token = (
        await (await client.post(f"/api/v1/streams/{sid}/go-live", headers=seller.auth)).json()
    )["publish_token"]
    publisher = PublisherPeer()
    answer = await client.post(
        f"/whip/{sid}",
        data=await publisher.offer(),
        headers={**SDP, "Authorization": f"Bearer {token}"},
    )
    await publisher.accept(await answer.text())
    started = time.monotonic()

    async def segments() -> str | None:
        response = await client.get(f"/hls/{sid}/index.m3u8")
        text = await response.text()
        return text if response.status == 200 and text.count("#EXTINF") >= 2 else None

    live = await eventually(segments, 20, "no live segments")
    assert live.startswith("#EXTM3U") and "#EXT-X-PART:" in live and "#EXT-X-PRELOAD-HINT" in live
    assert "#EXT-X-PROGRAM-DATE-TIME" in live and "#EXT-X-ENDLIST" not in live
    response = await client.get(f"/hls/{sid}/index.m3u8")
    assert response.content_type == "application/vnd.apple.mpegurl"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "X-Request-ID" in response.headers["Access-Control-Expose-Headers"]
    msn = max(
        int(line.split(":")[1])
        for line in live.splitlines()
        if line.startswith("#EXT-X-MEDIA-SEQUENCE")
    ) + live.count("#EXTINF")
    blocked = await client.get(f"/hls/{sid}/index.m3u8?_HLS_msn={msn}&_HLS_part=0")
    assert blocked.status == 200 and "#EXT-X-PART" in await blocked.text()
    too_far = await client.get(f"/hls/{sid}/index.m3u8?_HLS_msn=99999")
    assert too_far.status == 400 and too_far.headers["Access-Control-Allow-Origin"] == "*"
    preflight = await client.options(
        f"/hls/{sid}/index.m3u8",
        headers={
            "Origin": "https://player.example",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert preflight.status == 204 and preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert (await client.get(f"/hls/{sid}/index.m3u8?_HLS_part=1")).status == 400
    init = await client.get(f"/hls/{sid}/init.mp4")
    assert init.status == 200 and init.headers["Content-Type"] == "video/mp4"
    assert "immutable" in init.headers["Cache-Control"]
    assert (await client.get(f"/hls/{sid}/../../etc/passwd")).status == 404
    master = await client.get(stream["hls_url"].split("http://shopcast.test", 1)[1])
    assert master.status == 200 and master.content_type == "application/vnd.apple.mpegurl"
    lines = (await master.text()).splitlines()
    assert lines[-1] == "index.m3u8" and len([x for x in lines if "STREAM-INF" in x]) == 1
    # Without simulcast there are no other renditions.
    await expect_error(await client.get(f"/hls/{sid}/q/index.m3u8"), 404, "not_found")

    pinned = await client.post(
        f"/api/v1/streams/{sid}/pins",
        headers=seller.auth,
        json={"product_id": product["id"], "x": 0.3, "y": 0.6},
    )
    assert pinned.status == 201
    await eventually(lambda: _contains(client, sid, product["id"]), 10, "no DATERANGE for the pin")
    await asyncio.sleep(2)
    published = time.monotonic() - started
    assert (await client.post(f"/api/v1/streams/{sid}/end", headers=seller.auth)).status == 200
    await publisher.close()

    async def vod_url() -> str | None:
        data = await (await client.get(f"/api/v1/streams/{sid}")).json()
        return data["vod_url"]

    url = await eventually(vod_url, 30, "the replay was never published")
    redirect = await client.get(f"/hls/{sid}/index.m3u8", allow_redirects=False)
    assert redirect.status == 307 and redirect.headers["Location"] == url
    assert redirect.headers["Access-Control-Allow-Origin"] == "*"
    path = url.split("http://shopcast.test", 1)[1]
    vod = await (await client.get(path)).text()
    assert "#EXT-X-ENDLIST" in vod and "#EXT-X-PLAYLIST-TYPE:VOD" in vod
    assert f'X-PRODUCT-ID="{product["id"]}"' in vod
    # The replay's cards are timed on its own clock: 0 is its first media (program date time).
    replay_start = program_dates(vod)[0]
    timeline = (await (await client.get(f"/api/v1/streams/{sid}/pins")).json())["timeline"]
    [pin] = [cue for cue in timeline if cue["action"] == "pin"]
    on_the_replay = (datetime.fromisoformat(pin["created_at"]) - replay_start).total_seconds()
    assert abs(pin["offset_seconds"] - on_the_replay) < 0.001, (pin, replay_start)
    base = path.rsplit("/", 1)[0]
    names = ["init.mp4"] + [line for line in vod.splitlines() if line and not line.startswith("#")]
    joined = tmp_path / "replay.mp4"
    with joined.open("wb") as out:
        for name in names:
            response = await client.get(f"{base}/{name}")
            assert response.status == 200, name
            out.write(await response.read())
    with av.open(str(joined)) as container:
        frames = [f for f in container.decode(video=0)]
    duration = float(frames[-1].time - frames[0].time)
    assert abs(duration - published) < 2.5, (duration, published)
    assert len(frames) > 30


async def _contains(client: Client, stream_id: str, text: str) -> bool:
    playlist = await (await client.get(f"/hls/{stream_id}/index.m3u8")).text()
    return "#EXT-X-DATERANGE" in playlist and text in playlist


async def test_clean_shutdown_publishes_and_interrupts(
    client: Client, shop: Shop, settings: Any
) -> None:
    seller = await shop.account("seller")
    stream = await shop.stream(seller)
    sid = stream["id"]
    live = await client.post(f"/api/v1/streams/{sid}/go-live", headers=seller.auth)
    token = (await live.json())["publish_token"]
    publisher = PublisherPeer()
    answer = await client.post(
        f"/whip/{sid}",
        data=await publisher.offer(),
        headers={**SDP, "Authorization": f"Bearer {token}"},
    )
    await publisher.accept(await answer.text())

    async def recorded() -> bool:
        text = await (await client.get(f"/hls/{sid}/index.m3u8")).text()
        return text.count("#EXTINF") >= 2

    await eventually(recorded, 20, "no segments")
    await client.close()
    await publisher.close()
    columns = list(Base.metadata.tables["streams"].columns.keys())
    (row,) = [r for r in (await shop.snapshot())["streams"] if r[0] == sid]
    assert row[columns.index("status")] == "interrupted"
    assert row[columns.index("vod_url")].endswith(f"/media/vod/{sid}/vod.m3u8")
    recordings = Path(settings.resolved_media_dir) / "recordings"
    assert not (recordings / sid).exists(), "a published recording leaves nothing to recover"
    assert (Path(settings.resolved_media_dir) / "store" / "vod" / sid / "vod.m3u8").exists()
