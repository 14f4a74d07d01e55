"""Funnel analytics of a scripted show, with real Socket.IO clients, on both engines."""

import itertools
import math
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from api.analytics.report import minute_of, watching_now
from api.realtime.rooms import Mentions, Minute, RoomStats, write_stats
from api.shows.lifecycle import StreamLifecycle
from api.shows.schemas import AnalyticsOut
from api.web.context import SERVICES, Audience
from peers.webrtc import PublisherPeer, ViewerPeer
from tests.conftest import Account, Shop, eventually
from tests.nodes import Node, RedisServer
from tests.socket_client import Viewer

Client = TestClient[Any, Any]
Open = Callable[..., Awaitable[Viewer]]
HEART = "\u2764\ufe0f"
SDP = {"Content-Type": "application/sdp"}


async def go_live(client: Client, stream_id: str) -> None:
    services = client.app[SERVICES]
    await StreamLifecycle(services.sessions, services.rooms, services.bus).media_started(stream_id)


async def joined(
    open_viewer: Open, stream_id: str, account: Account | None = None, **join: Any
) -> Viewer:
    viewer = await open_viewer(account)
    reply = await viewer.call("stream:join", {"stream_id": stream_id, **join})
    assert reply["ok"], reply
    return viewer


class Seller:
    """The seller's REST calls of the script."""

    def __init__(self, client: Client, account: Account, stream_id: str) -> None:
        self.client, self.account, self.sid = client, account, stream_id

    async def pin(self, product_id: str, **where: float) -> None:
        response = await self.client.post(
            f"/api/v1/streams/{self.sid}/pins",
            headers=self.account.auth,
            json={"product_id": product_id, **where},
        )
        assert response.status == 201, await response.text()

    async def unpin(self, product_id: str) -> None:
        url = f"/api/v1/streams/{self.sid}/pins/{product_id}"
        assert (await self.client.delete(url, headers=self.account.auth)).status == 204

    async def pay(self, order: dict[str, Any]) -> None:
        url = f"/api/v1/orders/{order['id']}/pay"
        assert (await self.client.post(url, headers=self.account.auth)).status == 200


async def buy(client: Client, sid: str, buyer: Account, pid: str, quantity: int) -> Any:
    response = await client.post(
        f"/api/v1/streams/{sid}/orders",
        json={"product_id": pid, "quantity": quantity},
        headers={**buyer.auth, "Idempotency-Key": secrets.token_hex(8)},
    )
    assert response.status == 201, await response.text()
    return await response.json()


async def ok(viewer: Viewer, event: str, **data: Any) -> None:
    reply = await viewer.call(event, data)
    assert reply == {"ok": True}, reply


async def test_scripted_show(client: Client, shop: Shop, viewers: Open) -> None:
    owner = await shop.account("seller")
    ann, bob, dan = await shop.account(), await shop.account(), await shop.account()
    mug = (await shop.product(owner, title="Red Mug", price_cents=2500, stock=10))["id"]
    scarf = (await shop.product(owner, title="Blue Scarf", price_cents=4000, stock=10))["id"]
    lamp = (await shop.product(owner, title="Lamp"))["id"]
    sid = (await shop.stream(owner, product_ids=[mug, scarf]))["id"]
    other = (await shop.stream(owner, product_ids=[lamp]))["id"]
    seller = Seller(client, owner, sid)
    await go_live(client, sid)

    studio = await joined(viewers, sid, owner)
    a = await joined(viewers, sid, ann)
    b = await joined(viewers, sid, bob, playback="webrtc")
    await joined(viewers, sid, playback="hls")
    await studio.wait_for("stream:viewers", lambda d: d["count"] == 3)  # webrtc 2, hls 1

    await seller.pin(mug, x=0.3, y=0.6)  # impressions: ann, bob, anon
    await ok(b, "stream:playback", stream_id=sid, playback="hls")
    d = await joined(viewers, sid, dan, playback="hls")  # impression: dan
    await studio.wait_for("stream:viewers", lambda e: e["count"] == 4)  # webrtc 1, hls 3

    for clicker in (a, a, d, studio):  # the seller's own click does not count
        await ok(clicker, "product:click", stream_id=sid, product_id=mug)
    await ok(a, "product:ask", stream_id=sid, product_id=mug)
    for speaker, text in (
        (b, "Is the RED MUG dishwasher safe?"),  # an inquiry for the mug
        (d, "hello"),
        (a, "red mugs are nice"),  # not the title as whole words
        (studio, "Red Mug: 20% off"),  # the seller's line is no inquiry
    ):
        assert (await speaker.call("stream:chat", {"stream_id": sid, "text": text}))["ok"]
    for _ in range(3):
        await ok(d, "stream:reaction", stream_id=sid, emoji=HEART)
    await eventually(
        lambda: sum(r["counts"][HEART] for r in studio.received("stream:reactions")) == 3,
        5,
        "three hearts",
    )
    paid = await buy(client, sid, ann, mug, 2)
    await seller.pay(paid)
    await buy(client, sid, bob, mug, 1)
    await seller.unpin(mug)

    await seller.pin(scarf)  # impressions: ann, bob, anon, dan
    await ok(a, "stream:leave", stream_id=sid)
    a = await joined(viewers, sid, ann)  # the same viewer, the same pin: nothing new
    await seller.pin(scarf, x=0.5, y=0.5)  # moved: still the same pin
    await seller.unpin(scarf)
    await seller.pin(scarf)  # a new pin: four impressions more
    await ok(d, "product:click", stream_id=sid, product_id=scarf)
    await seller.pay(await buy(client, sid, dan, scarf, 1))

    refusals = [
        ({"stream_id": sid, "product_id": lamp}, "unknown_product"),
        ({"stream_id": sid, "product_id": "no-such-product"}, "unknown_product"),
        ({"stream_id": other, "product_id": lamp}, "not_joined"),
        ({"stream_id": sid}, "invalid"),
        ({"stream_id": sid, "product_id": 7}, "invalid"),
    ]
    for event in ("product:click", "product:ask"):
        for payload, code in refusals:
            reply = await a.call(event, payload)
            assert reply["ok"] is False and reply["error"] == code, (payload, reply)
            assert isinstance(reply["message"], str)
    for event, payload in (
        ("stream:playback", {"stream_id": sid, "playback": "dash"}),
        ("stream:playback", {"stream_id": sid}),
        ("stream:join", {"stream_id": sid, "playback": "rtmp"}),
    ):
        assert (await a.call(event, payload))["error"] == "invalid"
    assert (await a.call("stream:playback", {"stream_id": other, "playback": "hls"}))[
        "error"
    ] == "not_joined"

    ended = await client.post(f"/api/v1/streams/{sid}/end", headers=owner.auth)
    assert ended.status == 200
    summary = await ended.json()
    assert (summary["peak_viewers"], summary["unique_viewers"]) == (4, 4)
    assert summary["viewers_by_playback"] == {"webrtc": 2, "hls": 3}  # bob watched both ways
    assert (summary["total_likes"], summary["chat_messages_count"]) == (3, 4)
    products = {p["product_id"]: p for p in summary["products"]}
    assert products[mug] == {
        "product_id": mug,
        "title": "Red Mug",
        "impressions": 4,
        "views": 4,
        "clicks": 3,
        "inquiries": 2,
        "orders": 2,
        "paid": 1,
        "purchases": 2,
        "revenue_cents": 5000,
    }
    assert products[scarf] == {
        "product_id": scarf,
        "title": "Blue Scarf",
        "impressions": 8,
        "views": 4,
        "clicks": 1,
        "inquiries": 0,
        "orders": 1,
        "paid": 1,
        "purchases": 1,
        "revenue_cents": 4000,
    }

    series = summary["series"]
    assert sum(p["likes"] for p in series) == 3
    assert sum(p["chat_messages"] for p in series) == 4
    assert sum(p["clicks"] for p in series) == 4
    assert sum(p["orders"] for p in series) == 3
    assert max(p["viewers"] for p in series) == 4
    assert max(p["webrtc_viewers"] for p in series) == 2
    assert max(p["hls_viewers"] for p in series) == 3
    minutes = [datetime.fromisoformat(p["minute"]) for p in series]
    assert all(m.second == m.microsecond == 0 and m.utcoffset() == timedelta(0) for m in minutes)
    assert all(b - a == timedelta(minutes=1) for a, b in itertools.pairwise(minutes))
    stream = await (await client.get(f"/api/v1/streams/{sid}")).json()
    assert minutes[0] == _minute(stream["started_at"])
    assert minutes[-1] == _minute(stream["ended_at"])

    timeline = (await (await client.get(f"/api/v1/streams/{sid}/pins")).json())["timeline"]
    at = [(e["product_id"], e["action"], e["created_at"]) for e in timeline]
    assert [(p, action) for p, action, _ in at] == [
        (mug, "pin"),
        (mug, "unpin"),
        (scarf, "pin"),
        (scarf, "pin"),
        (scarf, "unpin"),
        (scarf, "pin"),
    ]
    assert [
        (i["product_id"], _at(i["pinned_at"]), i["unpinned_at"] and _at(i["unpinned_at"]))
        for i in summary["pin_intervals"]
    ] == [
        (mug, _at(at[0][2]), _at(at[1][2])),
        (scarf, _at(at[2][2]), _at(at[4][2])),
        (scarf, _at(at[5][2]), None),
    ]
    assert {_minute(i["pinned_at"]) for i in summary["pin_intervals"]} <= set(minutes)

    again = await client.get(f"/api/v1/streams/{sid}/analytics", headers=owner.auth)
    assert await again.json() == summary


async def test_products_added_during_the_show_count_at_once(
    client: Client, shop: Shop, viewers: Open
) -> None:
    owner, ann = await shop.account("seller"), await shop.account()
    mug = (await shop.product(owner, title="Mug"))["id"]
    hat = (await shop.product(owner, title="Green Hat"))["id"]
    sid = (await shop.stream(owner, product_ids=[mug]))["id"]
    await go_live(client, sid)
    a = await joined(viewers, sid, ann)
    assert (await a.call("product:click", {"stream_id": sid, "product_id": hat}))[
        "error"
    ] == "unknown_product"
    added = await client.post(
        f"/api/v1/streams/{sid}/products", headers=owner.auth, json={"product_ids": [hat]}
    )
    assert added.status == 200
    await ok(a, "product:click", stream_id=sid, product_id=hat)
    assert (await a.call("stream:chat", {"stream_id": sid, "text": "green hat in L?"}))["ok"]
    await Seller(client, owner, sid).pin(hat)
    summary = await (await client.post(f"/api/v1/streams/{sid}/end", headers=owner.auth)).json()
    counted = {
        p["product_id"]: (p["clicks"], p["inquiries"], p["impressions"])
        for p in summary["products"]
    }
    assert counted == {mug: (0, 0, 0), hat: (1, 1, 1)}


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    yield server
    server.stop()


async def test_two_nodes_add_up(
    postgres_database: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    """Viewers and clicks on two nodes: peaks by playback are cluster-wide, counts add up."""
    settings = {
        "database_url": postgres_database,
        "redis_url": redis_server.url,
        "jwt_secret": secrets.token_urlsafe(40),
    }
    a, b = Node(tmp_path / "a", **settings), Node(tmp_path / "b", **settings)
    opened: list[Viewer] = []
    try:
        async with aiohttp.ClientSession() as http:

            async def post(url: str, body: dict[str, Any], token: str = "") -> Any:
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                async with http.post(url, json=body, headers=headers) as response:
                    assert response.status in (200, 201), await response.text()
                    return await response.json()

            email = f"{secrets.token_hex(4)}@example.com"
            account = {"email": email, "password": "long enough", "display_name": "s"}
            seller = (await post(f"{a.url}/api/v1/auth/register", account | {"role": "seller"}))[
                "access_token"
            ]
            lamp = (
                await post(
                    f"{a.url}/api/v1/products",
                    {"title": "Lamp", "price_cents": 900, "stock": 3},
                    seller,
                )
            )["id"]
            sid = (
                await post(f"{a.url}/api/v1/streams", {"title": "t", "product_ids": [lamp]}, seller)
            )["id"]

            async def watch(node: Node, playback: str) -> Viewer:
                viewer = await Viewer().connect(node.url)
                opened.append(viewer)
                reply = await viewer.call("stream:join", {"stream_id": sid, "playback": playback})
                assert reply["ok"], reply
                return viewer

            x = await watch(a, "webrtc")
            y = await watch(b, "hls")
            await watch(b, "hls")
            await x.wait_for("stream:viewers", lambda d: d["count"] == 3, within=6)
            await post(f"{a.url}/api/v1/streams/{sid}/pins", {"product_id": lamp}, seller)
            for viewer in (x, y):
                await ok(viewer, "product:click", stream_id=sid, product_id=lamp)

            async def analytics() -> Any:
                async with http.get(
                    f"{a.url}/api/v1/streams/{sid}/analytics",
                    headers={"Authorization": f"Bearer {seller}"},
                ) as response:
                    summary = await response.json()
                (product,) = summary["products"]
                flushed = (product["clicks"], product["impressions"]) == (2, 3)
                return summary if flushed else None

            summary = await eventually(analytics, 15, "both nodes' counts written")
    finally:
        for viewer in opened:
            await viewer.close()
        a.stop()
        b.stop()
    assert summary["unique_viewers"] == 3
    assert summary["viewers_by_playback"] == {"webrtc": 1, "hls": 2}
    series = summary["series"]
    assert max(p["viewers"] for p in series) == 3
    assert (max(p["webrtc_viewers"] for p in series), max(p["hls_viewers"] for p in series)) == (
        1,
        2,
    )
    assert sum(p["clicks"] for p in series) == 2


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _minute(text: str) -> datetime:
    return _at(text).astimezone(UTC).replace(second=0, microsecond=0)


async def test_series_fills_empty_minutes_and_batches_add_up(client: Client, shop: Shop) -> None:
    owner = await shop.account("seller")
    sid = (await shop.stream(owner))["id"]
    start = datetime(2026, 1, 2, 10, 0, 30, tzinfo=UTC)
    await shop.execute(
        "UPDATE streams SET status = 'ended', started_at = :start, ended_at = :end WHERE id = :id",
        start=start,
        end=start + timedelta(minutes=4),
        id=sid,
    )
    first, third = (int(start.timestamp() // 60) + n for n in (0, 2))
    services = client.app[SERVICES]
    for batch in (
        RoomStats(minutes={first: Minute(3, 2, 1, likes=4, chat_messages=1, clicks=2)}),
        RoomStats(
            minutes={
                first: Minute(2, 2, 2, likes=1, clicks=1),
                third: Minute(5, 1, 4, chat_messages=2),
            }
        ),
    ):
        async with services.sessions.begin() as session:
            await write_stats(session, sid, batch)
    summary = await (
        await client.get(f"/api/v1/streams/{sid}/analytics", headers=owner.auth)
    ).json()
    base = start.replace(second=0)
    zero = {"viewers": 0, "webrtc_viewers": 0, "hls_viewers": 0, "likes": 0}
    zero |= {"chat_messages": 0, "clicks": 0, "orders": 0, "bids": 0}
    expected = [{**zero, "minute": (base + timedelta(minutes=n)).isoformat()} for n in range(5)]
    expected[0] |= {"viewers": 3, "webrtc_viewers": 2, "hls_viewers": 2, "likes": 5}
    expected[0] |= {"chat_messages": 1, "clicks": 3}
    expected[2] |= {"viewers": 5, "webrtc_viewers": 1, "hls_viewers": 4, "chat_messages": 2}
    assert [{**p, "minute": _at(p["minute"]).isoformat()} for p in summary["series"]] == expected
    assert summary["pin_intervals"] == []
    assert summary["viewers_by_playback"] == {"webrtc": 0, "hls": 0}


def test_mentions_match_whole_titles_in_any_case() -> None:
    mentions = Mentions({"m": "Red Mug", "c": "C++ Book", "s": "Scarf"})
    assert mentions("the red mug, please") == ["m"]
    assert mentions("RED MUG and a scarf?") == ["m", "s"]
    assert mentions("red mugs and scarves") == []
    assert mentions("is the c++ book new") == ["c"]


async def test_signing_in_mid_show_is_still_one_viewer(
    client: Client, shop: Shop, viewers: Open
) -> None:
    owner = await shop.account("seller")
    sid = (await shop.stream(owner))["id"]
    await go_live(client, sid)
    anonymous = await viewers()
    issued = (await anonymous.call("stream:join", {"stream_id": sid}))["viewer_id"]
    await anonymous.close()
    ben = await shop.account("viewer")
    signed_in = await viewers(ben, viewer_id=issued)  # the same browser, now signed in
    joined = await signed_in.call("stream:join", {"stream_id": sid})
    assert joined["ok"] and joined["viewer_id"] == issued
    other = await viewers(await shop.account("viewer"))  # signed in, no key yet: one more
    assert (await other.call("stream:join", {"stream_id": sid}))["ok"]
    summary = await (await client.post(f"/api/v1/streams/{sid}/end", headers=owner.auth)).json()
    assert summary["unique_viewers"] == 2


async def test_taps_are_rate_limited_and_viewer_keys_signed(
    client: Client, shop: Shop, viewers: Open
) -> None:
    # The attack: 300 anonymous clicks were all counted, and a client named its own viewer key.
    owner = await shop.account("seller")
    mug = (await shop.product(owner, title="Mug"))["id"]
    sid = (await shop.stream(owner, product_ids=[mug]))["id"]
    await go_live(client, sid)
    chosen = await viewers(viewer_id="anonymous-viewer-1")
    first = await chosen.call("stream:join", {"stream_id": sid})
    issued = first["viewer_id"]
    assert issued != "anonymous-viewer-1", "a key the client picked is not used"
    nonce, _, mac = issued.partition(".")
    forged = await viewers(viewer_id=f"{nonce}.{mac[::-1]}")
    assert (await forged.call("stream:join", {"stream_id": sid}))["viewer_id"] != issued
    again = await viewers(viewer_id=issued)
    assert (await again.call("stream:join", {"stream_id": sid}))["viewer_id"] == issued

    codes: dict[str, Counter[str]] = {}
    for event in ("product:click", "product:ask"):
        began = time.monotonic()
        replies = [
            await chosen.call(event, {"stream_id": sid, "product_id": mug}) for _ in range(300)
        ]
        refill = math.ceil(time.monotonic() - began)  # one tap a second after the burst of 10
        codes[event] = Counter("ok" if r["ok"] else r["error"] for r in replies)
        assert 10 <= codes[event]["ok"] <= 10 + refill, codes
        assert codes[event]["rate_limited"] == 300 - codes[event]["ok"]
        assert all(r["retry_after"] > 0 for r in replies if not r["ok"])
    # Another viewer's taps have their own allowance.
    assert (await forged.call("product:click", {"stream_id": sid, "product_id": mug}))["ok"]

    ended = await client.post(f"/api/v1/streams/{sid}/end", headers=owner.auth)
    summary = await ended.json()
    (product,) = summary["products"]
    assert (product["clicks"], product["inquiries"]) == (
        codes["product:click"]["ok"] + 1,
        codes["product:ask"]["ok"],
    )
    assert summary["unique_viewers"] == 2, "the issued key came back: one viewer, not two"


async def test_a_webrtc_session_is_a_viewer_this_minute(
    client: Client, shop: Shop, viewers: Open
) -> None:
    # The dashboard read "Viewers this minute 0" while a WebRTC viewer watched: the figures
    # counted only sockets in the room, and the minute's row lagged its first seconds.
    seller, admin = await shop.account("seller"), await shop.account("admin")
    sid = (await shop.stream(seller))["id"]
    live = await client.post(f"/api/v1/streams/{sid}/go-live", headers=seller.auth)
    publisher = PublisherPeer()
    answer = await client.post(
        f"/whip/{sid}",
        data=await publisher.offer(),
        headers={**SDP, "Authorization": f"Bearer {(await live.json())['publish_token']}"},
    )
    await publisher.accept(await answer.text())
    studio = await joined(viewers, sid, seller)  # the seller's page: in the room, not a viewer
    await eventually(lambda: _status(client, sid, "live"), 10, "the show never went live")
    viewer = ViewerPeer()  # plays over WHEP; its page has no socket (yet)
    watched = await client.post(f"/whep/{sid}", data=await viewer.offer(), headers=SDP)
    assert watched.status == 201, await watched.text()
    await viewer.accept(await watched.text())
    url = f"/api/v1/streams/{sid}/analytics"

    async def this_minute() -> dict[str, Any]:
        report = await (await client.get(url, headers=admin.auth)).json()
        return {"peak": report["peak_viewers"], **report["series"][-1]}

    async def counted(viewers: int, webrtc: int, hls: int) -> bool:
        now = await this_minute()
        return (now["viewers"], now["webrtc_viewers"], now["hls_viewers"], now["peak"]) == (
            viewers,
            webrtc,
            hls,
            viewers,
        )

    await eventually(lambda: counted(1, 1, 0), 5, "the WebRTC session was not a viewer")
    await studio.wait_for("stream:viewers", lambda e: e["count"] == 1)
    # Its page joins: the same viewer, not a second one; an HLS viewer is one more.
    await joined(viewers, sid, playback="webrtc")
    await joined(viewers, sid, playback="hls")
    await eventually(lambda: counted(2, 1, 1), 5, "the viewers were not counted once each")
    await viewer.close()
    summary = await (await client.post(f"/api/v1/streams/{sid}/end", headers=seller.auth)).json()
    assert summary["peak_viewers"] == 2
    assert [max(p[k] for p in summary["series"]) for k in ("webrtc_viewers", "hls_viewers")] == [
        1,
        1,
    ]
    await publisher.close()


def test_a_running_show_counts_who_watches_now() -> None:
    # The minute's row is written every 5 s: its first seconds read who watches now.
    now = minute_of(datetime.now(UTC))
    empty = {"likes": 0, "chat_messages": 0, "clicks": 0, "orders": 0, "bids": 0}
    report = AnalyticsOut.model_validate(
        {
            "stream_id": "s",
            "status": "live",
            "duration_seconds": 60.0,
            "peak_viewers": 1,
            "unique_viewers": 1,
            "total_likes": 0,
            "chat_messages_count": 0,
            "average_watch_time": 0.0,
            "products": [],
            "viewers_by_playback": {"webrtc": 1, "hls": 0},
            "orders_by_source": {
                source: {"orders": 0, "paid": 0, "revenue_cents": 0}
                for source in ("live", "replay")
            },
            "pin_intervals": [],
            "auctions": [],
            "series": [
                {
                    "minute": now - timedelta(minutes=1),
                    "viewers": 1,
                    "webrtc_viewers": 1,
                    "hls_viewers": 0,
                    **empty,
                },
                {"minute": now, "viewers": 0, "webrtc_viewers": 0, "hls_viewers": 0, **empty},
            ],
        }
    )
    watching_now(report, Audience(webrtc=2, hls=1))
    assert report.peak_viewers == 3
    last, before = report.series[-1], report.series[-2]
    assert (last.viewers, last.webrtc_viewers, last.hls_viewers) == (3, 2, 1)
    assert before.viewers == 1, "a past minute keeps what was stored"


async def _status(client: Client, stream_id: str, wanted: str) -> bool:
    stream = await (await client.get(f"/api/v1/streams/{stream_id}")).json()
    return bool(stream["status"] == wanted)
