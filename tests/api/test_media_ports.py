"""WHIP/WHEP when the node's ICE port range is used up: 503 no_media_port, then room again."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from api.streaming.signaling import MEDIA
from peers.ports import free_range
from peers.webrtc import PublisherPeer, ViewerPeer, wait_until
from server.app import build_app
from server.settings import Settings
from sfu import ephemeral_ports
from tests.conftest import Shop, expect_error

Client = TestClient[Any, Any]
SDP = {"Content-Type": "application/sdp"}

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def ranged(settings: Settings, aiohttp_client: Callable[..., Awaitable[Client]]) -> Client:
    """A node of one SFU process whose ICE sockets have two ports."""
    ports = free_range(2)
    settings.ice_port_range = f"{ports.first}-{ports.last}"
    settings.sfu_workers = 1
    return await aiohttp_client(build_app(settings))


async def offer(peer: PublisherPeer | ViewerPeer) -> str:
    with ephemeral_ports():  # the test's own peers share the node's process
        return await peer.offer()


async def test_a_node_out_of_media_ports_answers_503(ranged: Client, database_url: str) -> None:
    client = ranged
    shop = Shop(client, database_url)
    seller = await shop.account("seller")
    sid = (await shop.stream(seller))["id"]
    data = await client.post(f"/api/v1/streams/{sid}/go-live", headers=seller.auth)
    token = (await data.json())["publish_token"]
    peers: list[PublisherPeer | ViewerPeer] = []
    try:
        publisher = PublisherPeer()
        peers.append(publisher)
        auth = {**SDP, "Authorization": f"Bearer {token}"}
        published = await client.post(f"/whip/{sid}", data=await offer(publisher), headers=auth)
        assert published.status == 201, await published.text()
        await publisher.accept(await published.text())
        sfu = client.app[MEDIA].sfu
        await wait_until(lambda: sfu.get_room(sid) is not None)
        for _ in range(200):  # the publisher's media makes the show live
            stream = await (await client.get(f"/api/v1/streams/{sid}")).json()
            if stream["status"] == "live":
                break
            await asyncio.sleep(0.05)

        first = ViewerPeer()
        peers.append(first)
        watched = await client.post(f"/whep/{sid}", data=await offer(first), headers=SDP)
        assert watched.status == 201, await watched.text()
        await first.accept(await watched.text())

        extra = ViewerPeer()
        peers.append(extra)
        refused = await client.post(f"/whep/{sid}", data=await offer(extra), headers=SDP)
        await expect_error(refused, 503, "no_media_port")
        assert int(refused.headers["Retry-After"]) > 0
        assert sfu.session_count() == 2

        gone = await client.delete(watched.headers["Location"])
        assert gone.status == 200
        await wait_until(lambda: sfu.session_count() == 1)
        again = ViewerPeer()
        peers.append(again)
        watched = await client.post(f"/whep/{sid}", data=await offer(again), headers=SDP)
        assert watched.status == 201, await watched.text()
        await again.accept(await watched.text())
        await wait_until(lambda: len(again.video_packets()) > 10)
    finally:
        for peer in peers:
            await peer.close()
