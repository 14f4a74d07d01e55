"""200 viewers join and leave a live show in waves, over Socket.IO and (one in five) WHEP:
the counts follow them, the show goes on, and once they are gone the node (and its SFU worker
processes) holds no more peer connections, sockets, tasks or members than before."""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from api.streaming.signaling import MEDIA
from api.web.context import SERVICES
from peers.webrtc import PublisherPeer, ViewerPeer
from server.app import build_app
from server.settings import Settings
from tests.conftest import Shop, eventually
from tests.sfu.test_lifecycle import peer_connections
from tests.socket_client import Viewer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
Client = TestClient[Any, Any]
SDP = {"Content-Type": "application/sdp"}
VIEWERS, WAVE, WEBRTC_EVERY = 200, 25, 5
# A viewer that vanishes is released on its DTLS close alert; should that datagram be lost
# (a loaded machine), ICE consent expiry (30 s) releases it instead.
RELEASE = 45


def open_sockets(pid: int | str = "self") -> int:
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
    return count


def own_tasks() -> int:
    """Tasks, but Engine.IO's ping timers: each sleeps out its ping interval after its
    socket closed, then ends (the sockets themselves are counted apart)."""
    return sum(t.get_coro().__qualname__ != "AsyncSocket._send_ping" for t in asyncio.all_tasks())


class Audience:
    """One wave of viewers: each joins over Socket.IO, some also watch over WHEP."""

    def __init__(self, client: Client, stream_id: str, first: int) -> None:
        self.client, self.stream_id, self.first = client, stream_id, first
        self.sockets: list[Viewer] = []
        self.peers: list[tuple[ViewerPeer, str]] = []

    async def join(self) -> None:
        url = str(self.client.make_url("/"))
        self.sockets = list(await asyncio.gather(*(Viewer().connect(url) for _ in range(WAVE))))
        acks = await asyncio.gather(
            *(s.call("stream:join", {"stream_id": self.stream_id}) for s in self.sockets)
        )
        assert all(ack["ok"] for ack in acks), acks
        for index in range(self.first, self.first + WAVE):
            if index % WEBRTC_EVERY == 0:
                self.peers.append(await self._watch())

    async def _watch(self) -> tuple[ViewerPeer, str]:
        peer = ViewerPeer(record=False)
        answer = await self.client.post(
            f"/whep/{self.stream_id}", data=await peer.offer(), headers=SDP
        )
        assert answer.status == 201, await answer.text()
        await peer.accept(await answer.text())
        return peer, answer.headers["Location"]

    async def leave(self) -> None:
        # Half say goodbye (stream:leave, WHEP DELETE), half just vanish.
        for index, socket in enumerate(self.sockets):
            if index % 2:
                assert (await socket.call("stream:leave", {"stream_id": self.stream_id}))["ok"]
            await socket.close()
        for index, (peer, location) in enumerate(self.peers):
            if index % 2:
                assert (await self.client.delete(location)).status == 200
            await peer.close()
        self.sockets, self.peers = [], []


async def test_two_hundred_viewers_churn(
    node_settings: Settings, sqlite_url: str, aiohttp_client: Any
) -> None:
    client = await aiohttp_client(build_app(node_settings))
    shop = Shop(client, sqlite_url)
    seller = await shop.account("seller")
    sid = (await shop.stream(seller))["id"]
    live = await client.post(f"/api/v1/streams/{sid}/go-live", headers=seller.auth)
    token = (await live.json())["publish_token"]
    publisher = PublisherPeer()
    answer = await client.post(
        f"/whip/{sid}",
        data=await publisher.offer(),
        headers={**SDP, "Authorization": f"Bearer {token}"},
    )
    await publisher.accept(await answer.text())
    # The seller watches the count; the owner is not counted as a viewer.
    watcher = await Viewer().connect(str(client.make_url("/")), token=seller.token)
    assert (await watcher.call("stream:join", {"stream_id": sid}))["ok"]
    media = client.app[MEDIA]

    def viewers_seen() -> int:
        seen = watcher.received("stream:viewers")
        return int(seen[-1]["count"]) if seen else -1

    def webrtc_viewers() -> int:
        return int(media.sfu.viewers(sid))  # in this process and in the SFU workers

    realtime = client.app[SERVICES].rooms

    def counts() -> tuple[int, ...]:
        workers = sum(open_sockets(pid) for pid in media.sfu.worker_pids())
        return (
            peer_connections(),
            open_sockets(),
            own_tasks(),
            workers,
            len(realtime.sio.eio.sockets),
            len(realtime.members),
        )

    try:
        warmup = Audience(client, sid, 0)  # first-use allocations happen here
        await warmup.join()
        await warmup.leave()
        await eventually(lambda: webrtc_viewers() == 0, RELEASE, "warm-up viewers stayed")
        await eventually(lambda: viewers_seen() == 0, 10, "warm-up count stayed")
        await asyncio.sleep(0.5)
        baseline = counts()

        for first in range(0, VIEWERS, WAVE):
            wave = Audience(client, sid, first)
            await wave.join()
            webrtc = len(wave.peers)
            await eventually(lambda w=webrtc: webrtc_viewers() == w, 10, "WHEP miscounted")
            await eventually(lambda: viewers_seen() == WAVE, 10, "viewers miscounted")
            await wave.leave()
            await eventually(lambda: webrtc_viewers() == 0, RELEASE, "WHEP viewers not released")
            await eventually(lambda: viewers_seen() == 0, 10, "viewers not released")
            del wave

        # aiortc finishes closing in background tasks: give them a moment, then compare.
        try:
            await eventually(
                lambda: all(n <= b for n, b in zip(counts(), baseline, strict=True)), 30, "settled"
            )
        except AssertionError:
            raise AssertionError(
                "peer connections, sockets, tasks, worker sockets, engine.io sockets or members "
                f"stayed above baseline: {counts()} > {baseline}"
            ) from None
        show = await (await client.get(f"/api/v1/streams/{sid}")).json()
        assert show["status"] == "live", "the show lived through the churn"
        ended = await client.post(f"/api/v1/streams/{sid}/end", headers=seller.auth)
        summary = await ended.json()
        assert summary["peak_viewers"] == WAVE
        assert summary["unique_viewers"] == VIEWERS + WAVE, "each viewer counted once"
    finally:
        await watcher.close()
        await publisher.close()
