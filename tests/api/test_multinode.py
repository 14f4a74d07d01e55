"""Two real nodes on PostgreSQL and Redis: WHIP/WHEP redirect to the stream's node (307),
chat across nodes, and the owner killed mid-show: the other node ends it for the viewers, and
the owner's recording is recovered when it comes back."""

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from peers.webrtc import PublisherPeer, ViewerPeer, wait_until
from tests.api.test_cluster import _join, _register, _stream
from tests.nodes import Node, RedisServer
from tests.socket_client import Viewer

SDP = "application/sdp"


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    yield server
    server.stop()


async def _post_sdp(
    http: aiohttp.ClientSession, url: str, offer: str, token: str | None = None
) -> aiohttp.ClientResponse:
    headers = {"Content-Type": SDP} | ({"Authorization": f"Bearer {token}"} if token else {})
    return await http.post(url, data=offer, headers=headers, allow_redirects=False)


def _settings(database_url: str, redis: RedisServer, **extra: str) -> dict[str, str]:
    """What every node of a test shares: the database, Redis, the JWT key, loopback ICE."""
    shared = {"database_url": database_url, "redis_url": redis.url, "jwt_secret": "m" * 40}
    return {**shared, "ice_host_addresses": "127.0.0.1", **extra}


async def _go_live(
    http: aiohttp.ClientSession, node: Node, publisher: PublisherPeer
) -> tuple[str, str, str]:
    """A seller registers on ``node``, goes live and publishes: (seller's access token,
    stream id, publish token)."""
    seller = await _register(node.url, "seller")
    auth = {"Authorization": f"Bearer {seller['access_token']}"}
    sid = await _stream(node.url, seller["access_token"])
    async with http.post(f"{node.url}/api/v1/streams/{sid}/go-live", headers=auth) as r:
        token = str((await r.json())["publish_token"])
    published = await _post_sdp(http, f"{node.url}/whip/{sid}", await publisher.offer(), token)
    assert published.status == 201, await published.text()
    await publisher.accept(await published.text())
    return str(seller["access_token"]), sid, token


async def _status(http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with http.get(url) as response:
        return dict(await response.json())


@pytest.mark.timeout(180)
async def test_publish_on_a_watch_via_b_and_lose_a(
    redis_server: RedisServer, postgres_database: str, tmp_path: Path
) -> None:
    settings = _settings(postgres_database, redis_server, publisher_grace_seconds="1")
    a = Node(tmp_path / "a", **settings)
    b = Node(tmp_path / "b", **settings)
    publisher, viewer = PublisherPeer(), ViewerPeer()
    sockets: list[Viewer] = []
    try:
        async with aiohttp.ClientSession() as http:
            seller, sid, token = await _go_live(http, a, publisher)
            await _until(lambda: _status(http, f"{b.url}/api/v1/streams/{sid}"), "live")

            # The stream's media is on a: b sends publishers and viewers there (a's claim is
            # visible at once, or after its next heartbeat if Redis was slow to take it).
            deadline = time.monotonic() + 10
            while (
                again := await _post_sdp(http, f"{b.url}/whip/{sid}", "v=0", token)
            ).status != 307:
                assert again.status == 400 and time.monotonic() < deadline, await again.text()
                await asyncio.sleep(0.5)
            assert again.headers["Location"] == f"{a.url}/whip/{sid}"
            offer = await viewer.offer()
            redirected = await _post_sdp(http, f"{b.url}/whep/{sid}", offer)
            assert redirected.status == 307
            assert redirected.headers["Location"] == f"{a.url}/whep/{sid}"
            hls = f"/hls/{sid}/index.m3u8?_HLS_msn=3"
            async with http.get(f"{b.url}{hls}", allow_redirects=False) as response:
                assert response.status == 307 and response.headers["Location"] == f"{a.url}{hls}"
            watched = await _post_sdp(http, redirected.headers["Location"], offer)
            assert watched.status == 201, await watched.text()
            await viewer.accept(await watched.text())
            await wait_until(lambda: len(viewer.video_packets()) > 20)

            on_a = await _join(a.url, sid, seller)
            buyer = await _register(b.url, "viewer")
            on_b = await _join(b.url, sid, buyer["access_token"])
            sockets += [on_a, on_b]
            assert (await on_b.call("stream:chat", {"stream_id": sid, "text": "hi a"}))["ok"]
            assert (await on_a.wait_for("stream:chat"))["text"] == "hi a"

            a.kill()
            # b notices a's streams lost their node, gives the publisher its grace period, and
            # ends the show for the viewers it holds.
            ended = await on_b.wait_for(
                "stream:status", lambda d: d["status"] == "ended", within=30
            )
            assert ended["stream_id"] == sid
            assert (await _status(http, f"{b.url}/api/v1/streams/{sid}"))["status"] == "ended"

            a.stop()
            a = Node(tmp_path / "a", **settings)  # a comes back: its recording is recovered
            stream = await _until(
                lambda: _status(http, f"{b.url}/api/v1/streams/{sid}"),
                lambda s: bool(s["vod_url"]),
            )
            async with http.get(stream["vod_url"]) as response:
                assert response.status == 200 and "#EXT-X-ENDLIST" in await response.text()
    finally:
        for socket in sockets:
            if socket.sio.connected:
                await socket.close()
        await viewer.close()
        await publisher.close()
        a.stop()
        b.stop()


async def _until(read: Any, wanted: Any, within: float = 30) -> dict[str, Any]:
    """Poll ``read()`` until its ``status`` is ``wanted`` (or ``wanted(result)`` holds)."""
    deadline = time.monotonic() + within
    while True:
        result: dict[str, Any] = await read()
        if wanted(result) if callable(wanted) else result["status"] == wanted:
            return result
        assert time.monotonic() < deadline, f"not reached: {result}"
        await asyncio.sleep(0.2)


async def _sessions(http: aiohttp.ClientSession, node: Node) -> float:
    async with http.get(f"{node.url}/metrics") as response:
        for line in (await response.text()).splitlines():
            if line.startswith("shopcast_webrtc_sessions "):
                return float(line.split()[1])
    raise AssertionError("no shopcast_webrtc_sessions metric")


@pytest.mark.timeout(120)
async def test_an_edge_node_pulls_the_show_and_serves_its_viewers(
    redis_server: RedisServer, postgres_database: str, tmp_path: Path
) -> None:
    settings = _settings(postgres_database, redis_server)
    origin = Node(tmp_path / "origin", **settings)
    edge = Node(tmp_path / "edge", **settings, cascade="true")
    publisher, viewers = PublisherPeer(), [ViewerPeer(), ViewerPeer()]
    try:
        async with aiohttp.ClientSession() as http:
            seller, sid, _ = await _go_live(http, origin, publisher)
            auth = {"Authorization": f"Bearer {seller}"}
            await _until(lambda: _status(http, f"{edge.url}/api/v1/streams/{sid}"), "live")

            for viewer in viewers:  # served by the edge itself: no redirect
                offer, deadline = await viewer.offer(), time.monotonic() + 10
                # Like a player, retry on 409 until the origin's claim reaches Redis (at once,
                # or at its next heartbeat if Redis was slow to take it).
                while (
                    watched := await _post_sdp(http, f"{edge.url}/whep/{sid}", offer)
                ).status == 409:
                    assert time.monotonic() < deadline, await watched.text()
                    await asyncio.sleep(0.5)
                assert watched.status == 201, await watched.text()
                assert watched.headers["Location"].startswith(f"/whep/{sid}/")
                await viewer.accept(await watched.text())
            for viewer in viewers:
                await wait_until(lambda v=viewer: len(v.video_packets()) > 20)
            # The origin carries the publisher and one session for the edge, whatever its crowd.
            assert await _sessions(http, origin) == 2
            assert await _sessions(http, edge) == 2

            async with http.post(f"{edge.url}/api/v1/streams/{sid}/end", headers=auth) as r:
                assert r.status == 200
            deadline = time.monotonic() + 20
            while await _sessions(http, edge) or await _sessions(http, origin):
                assert time.monotonic() < deadline, "sessions left after the show ended"
                await asyncio.sleep(0.2)
    finally:
        for viewer in viewers:
            await viewer.close()
        await publisher.close()
        origin.stop()
        edge.stop()


@pytest.mark.timeout(180)
async def test_a_show_whose_publisher_moved_survives_its_old_node_restarting(
    redis_server: RedisServer, postgres_database: str, tmp_path: Path
) -> None:
    settings = _settings(postgres_database, redis_server, publisher_grace_seconds="30")
    a = Node(tmp_path / "a", **settings)
    b = Node(tmp_path / "b", **settings)
    first, second = PublisherPeer(), PublisherPeer()
    try:
        async with aiohttp.ClientSession() as http:
            _, sid, token = await _go_live(http, a, first)
            show = f"{b.url}/api/v1/streams/{sid}"
            await _until(lambda: _status(http, show), "live")
            deadline = time.monotonic() + 30
            while True:  # a is recording the show
                async with http.get(f"{a.url}/hls/{sid}/index.m3u8") as response:
                    if response.status == 200 and "#EXTINF" in await response.text():
                        break
                assert time.monotonic() < deadline, "a never recorded"
                await asyncio.sleep(0.2)
            a.kill()
            await _until(lambda: _status(http, show), "reconnecting")
            # The phone reconnects to the node that is left, within the grace period.
            moved = await _post_sdp(http, f"{b.url}/whip/{sid}", await second.offer(), token)
            assert moved.status == 201, await moved.text()
            await second.accept(await moved.text())
            await _until(lambda: _status(http, show), "live")
            a.stop()
            # a's leftover recording of the show is repaired. Its start-up is waited for off the
            # loop, which sends the phone's media: on a loaded machine a start outlasts the SFU's
            # media timeout, and a stalled phone would look gone.
            a = await asyncio.to_thread(Node, tmp_path / "a", **settings)
            await asyncio.sleep(3)
            assert (await _status(http, show))["status"] == "live"
            redirected = await _post_sdp(http, f"{a.url}/whep/{sid}", "v=0\r\n")
            assert redirected.headers["Location"] == f"{b.url}/whep/{sid}"
    finally:
        await first.close()
        await second.close()
        a.stop()
        b.stop()
