"""A node killed mid-show: on restart its recording is repaired and published as a replay."""

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import av

from peers.webrtc import PublisherPeer
from tests.nodes import Node


async def _json(http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any) -> Any:
    async with http.request(method, url, **kwargs) as response:
        assert response.status < 300, await response.text()
        return await response.json()


def program_dates(playlist: str) -> list[datetime]:
    """Each segment's EXT-X-PROGRAM-DATE-TIME, in order."""
    return [
        datetime.fromisoformat(line.split(":", 1)[1])
        for line in playlist.splitlines()
        if line.startswith("#EXT-X-PROGRAM-DATE-TIME:")
    ]


def _end_of_media(playlist: str) -> datetime:
    """The last segment's program date time plus its duration: where a player's replay ends."""
    lengths = [
        float(line.split(":", 1)[1].rstrip(",").split(",")[0])
        for line in playlist.splitlines()
        if line.startswith("#EXTINF:")
    ]
    return program_dates(playlist)[-1] + timedelta(seconds=lengths[-1])


async def test_sigkill_mid_recording_gives_a_playable_replay(migrated: str, tmp_path: Path) -> None:
    settings = {"database_url": migrated, "ice_host_addresses": "127.0.0.1", "jwt_secret": "a" * 40}
    node = Node(tmp_path / "data", **settings)
    publisher = PublisherPeer()
    try:
        async with aiohttp.ClientSession() as http:
            body = {
                "email": "crash@example.com",
                "password": "long enough",
                "display_name": "S",
                "role": "seller",
            }
            seller = await _json(http, "POST", f"{node.url}/api/v1/auth/register", json=body)
            auth = {"Authorization": f"Bearer {seller['access_token']}"}
            stream = await _json(
                http, "POST", f"{node.url}/api/v1/streams", json={"title": "x"}, headers=auth
            )
            sid = stream["id"]
            live = await _json(
                http, "POST", f"{node.url}/api/v1/streams/{sid}/go-live", headers=auth
            )
            headers = {
                "Content-Type": "application/sdp",
                "Authorization": f"Bearer {live['publish_token']}",
            }
            async with http.post(
                f"{node.url}/whip/{sid}", data=await publisher.offer(), headers=headers
            ) as response:
                assert response.status == 201
                await publisher.accept(await response.text())
            deadline = time.monotonic() + 30
            while True:
                async with http.get(f"{node.url}/hls/{sid}/index.m3u8") as response:
                    if response.status == 200 and (await response.text()).count("#EXTINF") >= 3:
                        break
                assert time.monotonic() < deadline, "no segments recorded"
                await asyncio.sleep(0.2)
        node.kill()
        killed_at = datetime.now(UTC)
        await publisher.close()

        restarted = Node(tmp_path / "data", **settings)
        try:
            async with aiohttp.ClientSession() as http:
                deadline = time.monotonic() + 30
                while True:
                    data = await _json(http, "GET", f"{restarted.url}/api/v1/streams/{sid}")
                    if data["vod_url"]:
                        break
                    assert time.monotonic() < deadline, "the replay was never published"
                    await asyncio.sleep(0.2)
                assert data["status"] == "interrupted"
                async with http.get(data["vod_url"]) as response:
                    vod = await response.text()
                assert "#EXT-X-ENDLIST" in vod
                # The show ended with its last media, not when the node came back.
                last_media = _end_of_media(vod)
                ended = datetime.fromisoformat(data["ended_at"])
                assert abs((ended - last_media).total_seconds()) < 0.01, (
                    ended,
                    last_media,
                    vod,
                    data,
                )
                assert ended < killed_at
                base = data["vod_url"].rsplit("/", 1)[0]
                names = ["init.mp4"] + [x for x in vod.splitlines() if x and not x.startswith("#")]
                joined = tmp_path / "replay.mp4"
                with joined.open("wb") as out:
                    for name in names:
                        async with http.get(f"{base}/{name}") as response:
                            assert response.status == 200, name
                            out.write(await response.read())
            with av.open(str(joined)) as container:
                frames = sum(1 for _ in container.decode(video=0))
            assert frames >= 60
        finally:
            restarted.stop()
    finally:
        node.stop()
