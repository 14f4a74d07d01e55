"""What a show adds to a node's memory goes when the show ends: counters, offers and auctions
first, rooms once empty."""

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient

from api.commerce.auctions import AUCTIONS
from api.commerce.gate import GATE
from api.realtime.sockets import Realtime
from api.shows.lifecycle import StreamLifecycle
from api.web.context import SERVICES
from tests.api.test_auctions import accepted, auction_show
from tests.api.test_commerce import buy
from tests.conftest import Shop, eventually
from tests.socket_client import Viewer
from twins.counters import LocalCounters

Client = TestClient[Any, Any]
Open = Callable[..., Awaitable[Viewer]]
HEART = "\u2764\ufe0f"
SHOWS = 4


async def test_shows_that_end_leave_no_counters_and_no_rooms(
    client: Client, shop: Shop, viewers: Open
) -> None:
    services = client.app[SERVICES]
    counters, realtime = services.counters, services.rooms
    assert isinstance(counters, LocalCounters) and isinstance(realtime, Realtime)
    seller = await shop.account("seller")
    lifecycle = StreamLifecycle(services.sessions, services.rooms, services.bus)
    for _ in range(SHOWS):
        sid = (await shop.stream(seller))["id"]
        await client.put(
            f"/api/v1/streams/{sid}/slow-mode", json={"seconds": 30}, headers=seller.auth
        )
        await lifecycle.media_started(sid)
        watchers = [await viewers(await shop.account()) for _ in range(2)]
        for watcher in watchers:
            assert (await watcher.call("stream:join", {"stream_id": sid}))["ok"]
            assert (await watcher.call("stream:chat", {"stream_id": sid, "text": "hi"}))["ok"]
            assert (await watcher.call("stream:reaction", {"stream_id": sid, "emoji": HEART}))["ok"]
        assert counters.held() > 0
        ended = await client.post(f"/api/v1/streams/{sid}/end", headers=seller.auth)
        assert ended.status == 200
        await watchers[0].wait_for("stream:status", lambda d: d["status"] == "ended")
        assert counters.held() == 0
        for watcher in watchers:
            await watcher.close()
    await eventually(lambda: not realtime.rooms, 30, lambda: f"rooms {list(realtime.rooms)}")
    assert not realtime.members
    assert counters.held() == 0


async def test_an_ended_show_leaves_no_offer_and_no_auction(client: Client, shop: Shop) -> None:
    gate, auctions = client.app[GATE], client.app[AUCTIONS]
    seller, sid, pid, auction = await auction_show(client, shop)
    buyer, bidder = await shop.account(), await shop.account()
    assert (await buy(client, sid, buyer, pid)).status == 201
    await accepted(client, auction["id"], bidder, 1000)
    assert gate.held() == 1 and auctions.held() == 1
    ended = await client.post(f"/api/v1/streams/{sid}/end", headers=seller.auth)
    assert ended.status == 200, await ended.text()
    assert gate.held() == 0 and auctions.held() == 0
