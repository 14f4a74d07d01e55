"""PostgreSQL restarted mid-traffic: 503 + Retry-After meanwhile, nothing half-written, then
serving resumes with every acknowledged order and chat line kept."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import socketio
from aiohttp.test_utils import TestClient

from peers.webrtc import PublisherPeer, ViewerPeer
from server import migrate
from server.app import build_app
from server.settings import Settings
from tests.api.test_commerce import buy
from tests.conftest import Account, Shop, eventually, expect_error
from tests.faults.postgres import PrivatePostgres
from tests.socket_client import Viewer

Client = TestClient[Any, Any]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]
SDP = {"Content-Type": "application/sdp"}


@pytest.fixture
def postgres() -> Iterator[PrivatePostgres]:
    if reason := PrivatePostgres.available():
        pytest.skip(reason)
    server = PrivatePostgres()
    try:
        server.start()
        migrate.upgrade(server.url)
        yield server
    finally:
        server.remove()


@pytest.fixture
async def node(
    postgres: PrivatePostgres,
    tmp_path: Path,
    aiohttp_client: Callable[..., Awaitable[Client]],
) -> AsyncIterator[Client]:
    settings = Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        database_url=postgres.url,
        public_url="http://shopcast.test",
        ice_host_addresses=["127.0.0.1"],
        auth_burst=100,
    )
    yield await aiohttp_client(build_app(settings))


class Traffic:
    """Buyers and chatters taking turns (under their rate limits); every answer is kept."""

    def __init__(
        self, client: Client, stream_id: str, product_id: str, buyers: list[Account]
    ) -> None:
        self.client, self.stream_id, self.product_id = client, stream_id, product_id
        self.buyers = buyers
        self.chatters: list[Viewer] = []
        self.orders: dict[str, tuple[Account, int, dict[str, Any]]] = {}
        self.chats: list[tuple[str, dict[str, Any]]] = []
        self.refusals: list[tuple[int, dict[str, str], dict[str, Any]]] = []

    async def open(self) -> None:
        for buyer in self.buyers:
            chatter = await Viewer().connect(str(self.client.make_url("/")), token=buyer.token)
            self.chatters.append(chatter)
            assert (await chatter.call("stream:join", {"stream_id": self.stream_id}))["ok"]

    async def close(self) -> None:
        for chatter in self.chatters:
            await chatter.close()

    async def buy_once(self) -> int:
        key = secrets.token_hex(8)
        buyer = self.buyers[len(self.orders) % len(self.buyers)]
        response = await buy(self.client, self.stream_id, buyer, self.product_id, key=key)
        body = await response.json()
        self.orders[key] = (buyer, response.status, body)
        if response.status != 201:
            self.refusals.append((response.status, dict(response.headers), body))
        return response.status

    async def chat_once(self) -> bool:
        text = f"line {len(self.chats)}"
        chatter = self.chatters[len(self.chats) % len(self.chatters)]
        ack = await chatter.call("stream:chat", {"stream_id": self.stream_id, "text": text})
        self.chats.append((text, ack))
        return bool(ack["ok"])

    async def step(self) -> None:
        await self.buy_once()
        await self.chat_once()
        await asyncio.sleep(0.05)  # keeps each buyer and chatter under its rate limit


async def on_air(client: Client, shop: Shop) -> tuple[Account, str, str, PublisherPeer]:
    """A seller's show with one product, live with real media."""
    seller = await shop.account("seller")
    pid = (await shop.product(seller, stock=500))["id"]
    sid = (await shop.stream(seller, product_ids=[pid]))["id"]
    live = await client.post(f"/api/v1/streams/{sid}/go-live", headers=seller.auth)
    token = (await live.json())["publish_token"]
    publisher = PublisherPeer()
    answer = await client.post(
        f"/whip/{sid}",
        data=await publisher.offer(),
        headers={**SDP, "Authorization": f"Bearer {token}"},
    )
    await publisher.accept(await answer.text())

    async def is_live() -> bool:
        show = await (await client.get(f"/api/v1/streams/{sid}")).json()
        return bool(show["status"] == "live")

    await eventually(is_live, 10, "the show never went live")
    return seller, sid, pid, publisher


async def test_postgres_restart_mid_traffic(node: Client, postgres: PrivatePostgres) -> None:
    client = node
    shop = Shop(client, postgres.url)
    seller, sid, pid, publisher = await on_air(client, shop)
    buyers = [await shop.account() for _ in range(20)]
    traffic = Traffic(client, sid, pid, buyers)
    watcher = await Viewer().connect(str(client.make_url("/")))
    viewer = ViewerPeer(record=False)
    try:
        answer = await client.post(f"/whep/{sid}", data=await viewer.offer(), headers=SDP)
        await viewer.accept(await answer.text())
        assert (await watcher.call("stream:join", {"stream_id": sid}))["ok"]
        await traffic.open()
        await _restart_mid_traffic(client, postgres, traffic, seller, watcher, viewer)
    finally:
        await traffic.close()
        await watcher.close()
        await viewer.close()
        await publisher.close()


async def _restart_mid_traffic(
    client: Client,
    postgres: PrivatePostgres,
    traffic: Traffic,
    seller: Account,
    watcher: Viewer,
    viewer: ViewerPeer,
) -> None:
    sid, pid = traffic.stream_id, traffic.product_id
    for _ in range(5):
        assert await traffic.buy_once() == 201
        assert await traffic.chat_once()

    await asyncio.to_thread(postgres.stop)
    for _ in range(5):
        assert await traffic.buy_once() == 503
        assert not await traffic.chat_once()
    outage = [ack for _, ack in traffic.chats[-5:]]
    assert {ack["error"] for ack in outage} <= {"database_unavailable", "rate_limited"}
    assert any(a["error"] == "database_unavailable" and a["retry_after"] > 0 for a in outage)
    ready = await client.get("/readyz")
    await expect_error(ready, 503, "database_unavailable")
    assert (await client.get("/healthz")).status == 200, "the process itself stays up"
    late = ViewerPeer(record=False)
    refused = await client.post(f"/whep/{sid}", data=await late.offer(), headers=SDP)
    await late.close()
    await expect_error(refused, 503, "database_unavailable")
    with pytest.raises(socketio.exceptions.ConnectionError):  # signing in needs the database
        await Viewer().connect(str(client.make_url("/")), token=seller.token)
    # The show itself does not notice: media keeps flowing to the viewer already watching.
    received = sum(viewer.counts.values())
    await eventually(lambda: sum(viewer.counts.values()) > received + 100, 10, "media stopped")

    # Traffic goes on while the database comes back: every answer is a success or a 503.
    restart = asyncio.create_task(asyncio.to_thread(postgres.start))
    while not restart.done():
        await traffic.step()
    await restart
    for _ in range(5):
        assert await traffic.buy_once() == 201
        assert await traffic.chat_once()
    assert (await client.get("/readyz")).status == 200

    assert traffic.refusals, "the outage was seen"
    for status, headers, body in traffic.refusals:
        assert status == 503, body
        assert body["error"] == "database_unavailable" and body["message"]
        assert int(headers["Retry-After"]) > 0
    # Nothing half-written: exactly the acknowledged orders exist and stock matches them.
    placed = {body["id"] for _, status, body in traffic.orders.values() if status == 201}
    listed = await (await client.get(f"/api/v1/streams/{sid}/orders", headers=seller.auth)).json()
    assert {order["id"] for order in listed} == placed
    product = await (await client.get(f"/api/v1/products/{pid}", headers=seller.auth)).json()
    assert product["stock"] == 500 - len(placed)
    # A buyer retrying a refused order with its key gets it exactly once.
    refused = [(key, buyer) for key, (buyer, status, _) in traffic.orders.items() if status == 503]
    for key, buyer in refused[:3]:
        first = await buy(client, sid, buyer, pid, key=key)
        again = await buy(client, sid, buyer, pid, key=key)
        assert first.status == again.status == 201
        assert (await first.json())["id"] == (await again.json())["id"]
    product = await (await client.get(f"/api/v1/products/{pid}", headers=seller.auth)).json()
    assert product["stock"] == 500 - len(placed) - len(refused[:3])
    # Chat: every acknowledged line is stored, no refused one is, and delivery goes on.
    history = await (await client.get(f"/api/v1/streams/{sid}/chat?limit=200")).json()
    stored = {message["text"] for message in history}
    acknowledged = {text for text, ack in traffic.chats if ack["ok"]}
    assert stored == acknowledged
    await eventually(lambda: delivered(watcher) == acknowledged, 5, "every line reaches viewers")
    show = await (await client.get(f"/api/v1/streams/{sid}")).json()
    assert show["status"] == "live", "the show lived through the outage"


def delivered(viewer: Viewer) -> set[str]:
    """Chat lines a viewer received, alone or in batches."""
    lines = viewer.received("stream:chat")
    for batch in viewer.received("stream:chat_batch"):
        lines.extend(batch["messages"])
    return {line["text"] for line in lines}
