"""A flood of junk datagrams on a live show's media ports, from another thread while the node
serves: the show and its viewers carry on and the API keeps answering."""

from __future__ import annotations

import asyncio
import random
import socket
import threading
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from api.streaming.signaling import MEDIA
from peers.webrtc import ViewerPeer
from tests.badinput.test_sdp import live_stream
from tests.conftest import Shop, eventually
from tests.sfu.test_junk import junk_datagrams

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]
Client = TestClient[Any, Any]
DATAGRAMS = 40_000


def flood(ports: list[int], sent: list[int]) -> None:
    rng = random.Random(11)
    junk = junk_datagrams(rng)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        for n in range(DATAGRAMS):
            try:
                sock.sendto(junk[n % len(junk)], ("127.0.0.1", ports[n % len(ports)]))
            except OSError:  # ENOBUFS: the flood outruns the kernel, as floods do
                continue
            sent[0] += 1


async def test_junk_flood_on_the_media_ports(node: Client, shop: Shop) -> None:
    sid, _, publisher = await live_stream(node, shop)
    viewer = ViewerPeer(record=False)
    answer = await node.post(
        f"/whep/{sid}", data=await viewer.offer(), headers={"Content-Type": "application/sdp"}
    )
    await viewer.accept(await answer.text())
    await eventually(lambda: sum(viewer.counts.values()) > 20, 10, "no media before the flood")
    room = node.app[MEDIA].sfu.get_room(sid)
    assert room is not None and room.publisher is not None
    ports = [*room.publisher.local_ports(), *(s.local_ports()[0] for s in room.subscribers)]
    sent = [0]
    flooder = threading.Thread(target=flood, args=(ports, sent), name="flood")
    flooder.start()
    while flooder.is_alive():
        assert (await node.get("/healthz")).status == 200
        await asyncio.sleep(0.1)
    flooder.join()
    assert sent[0] > DATAGRAMS // 2
    received = sum(viewer.counts.values())
    await eventually(lambda: sum(viewer.counts.values()) > received + 50, 10, "media stopped")
    assert not room.publisher.closed and room.publisher.pc.connectionState == "connected"
    assert viewer.pc.connectionState == "connected"
    await viewer.close()
    await publisher.close()
