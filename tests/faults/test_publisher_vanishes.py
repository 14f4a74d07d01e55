"""The publisher's phone drops off the network without a goodbye (no WHIP DELETE, no DTLS
close): the show turns reconnecting, then ended after the grace period; viewers are told and
released; the recording is published; orders and chat stay."""

from __future__ import annotations

from typing import Any

import pytest

from api.streaming.signaling import MEDIA
from peers.webrtc import PublisherPeer, ViewerPeer
from server.app import build_app
from server.settings import Settings
from tests.api.test_commerce import buy
from tests.conftest import Shop, eventually
from tests.socket_client import Viewer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]
SDP = {"Content-Type": "application/sdp"}


async def vanish(peer: PublisherPeer) -> None:
    """Close the publisher's sockets under aiortc: its packets stop, nothing says goodbye."""
    for transceiver in peer.pc.getTransceivers():
        await transceiver.sender.transport.transport._connection.close()


async def test_publisher_vanishes_without_goodbye(
    node_settings: Settings, sqlite_url: str, aiohttp_client: Any
) -> None:
    settings = node_settings.model_copy(
        update={"media_timeout_seconds": 1.0, "publisher_grace_seconds": 1.0}
    )
    client = await aiohttp_client(build_app(settings))
    shop = Shop(client, sqlite_url)
    seller, buyer = await shop.account("seller"), await shop.account()
    pid = (await shop.product(seller, stock=5))["id"]
    sid = (await shop.stream(seller, product_ids=[pid]))["id"]
    live = await client.post(f"/api/v1/streams/{sid}/go-live", headers=seller.auth)
    token = (await live.json())["publish_token"]
    publisher, viewer = PublisherPeer(), ViewerPeer(record=False)
    socket = await Viewer().connect(str(client.make_url("/")), token=buyer.token)
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

        async def recorded() -> bool:
            playlist = await (await client.get(f"/hls/{sid}/index.m3u8")).text()
            return playlist.count("#EXTINF") >= 2

        await eventually(is_live, 10, "never live")
        watched = await client.post(f"/whep/{sid}", data=await viewer.offer(), headers=SDP)
        await viewer.accept(await watched.text())
        await eventually(lambda: sum(viewer.counts.values()) > 50, 10, "no media")
        assert (await socket.call("stream:join", {"stream_id": sid}))["ok"]
        assert (await socket.call("stream:chat", {"stream_id": sid, "text": "love it"}))["ok"]
        assert (await buy(client, sid, buyer, pid, 2)).status == 201
        await eventually(recorded, 20, "nothing recorded before the fault")

        await vanish(publisher)
        await socket.wait_for("stream:status", lambda s: s["status"] == "reconnecting", 10)
        await socket.wait_for("stream:status", lambda s: s["status"] == "ended", 10)
        media = client.app[MEDIA]
        await eventually(lambda: media.sfu.viewers(sid) == 0, 10, "the WHEP viewer was kept")
        await eventually(lambda: media.sfu.session_count() == 0, 10, "a session was kept")

        async def replay() -> bool:
            return bool((await (await client.get(f"/api/v1/streams/{sid}")).json())["vod_url"])

        await eventually(replay, 30, "the recording was not published")
        orders = await (
            await client.get(f"/api/v1/streams/{sid}/orders", headers=seller.auth)
        ).json()
        assert [(o["quantity"], o["status"]) for o in orders] == [(2, "reserved")]
        product = await (await client.get(f"/api/v1/products/{pid}", headers=seller.auth)).json()
        assert product["stock"] == 3
        chat = await (await client.get(f"/api/v1/streams/{sid}/chat")).json()
        assert [m["text"] for m in chat] == ["love it"]
    finally:
        await socket.close()
        await viewer.close()
        await publisher.close()
