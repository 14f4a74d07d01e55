"""Auctions on both engines: bids, the soft close, the hammer and its order, the reserve, the
latency-fair close, refusals that change nothing, and 500 Socket.IO bidders at once.

Time is the auctions' own clock (``Auctions.clock``), which these tests set and move.
"""

from __future__ import annotations

import asyncio
import random
import secrets
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import insert

from api.commerce.auctions import AUCTIONS
from api.commerce.delays import CAP, Report, ViewerDelays
from api.commerce.hammer import Hammer
from api.db import new_id, utcnow
from api.identity.models import User
from api.web.context import SERVICES
from api.web.metrics import METRICS
from server.database import create_engine
from tests.api.test_commerce import live_show
from tests.api.test_metrics import scraped
from tests.conftest import Account, Shop, expect_error
from tests.socket_client import Viewer

Client = TestClient[Any, Any]


class Clock:
    """A clock that moves only when told."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock(client: Client) -> Iterator[Clock]:
    clock = Clock()
    client.app[AUCTIONS].clock = clock
    yield clock


async def auction_show(
    client: Client, shop: Shop, *, stock: int = 3, **fields: Any
) -> tuple[Account, str, str, dict[str, Any]]:
    """A live show with a pinned product under auction: (seller, stream, product, auction)."""
    seller, sid, (pid,) = await live_show(client, shop, stock=stock)
    pinned = await client.post(
        f"/api/v1/streams/{sid}/pins", headers=seller.auth, json={"product_id": pid}
    )
    assert pinned.status == 201, await pinned.text()
    body = {"product_id": pid, "start_price_cents": 1000, "duration_seconds": 30, **fields}
    started = await client.post(f"/api/v1/streams/{sid}/auctions", headers=seller.auth, json=body)
    assert started.status == 201, await started.text()
    return seller, sid, pid, dict(await started.json())


def bid(client: Client, auction_id: str, account: Account, amount: int, **fields: Any) -> Any:
    return client.post(
        f"/api/v1/auctions/{auction_id}/bids",
        headers=account.auth,
        json={"amount_cents": amount, **fields},
    )


async def accepted(client: Client, auction_id: str, account: Account, amount: int, **f: Any) -> Any:
    response = await bid(client, auction_id, account, amount, **f)
    assert response.status == 201, await response.text()
    return await response.json()


async def hammer(client: Client, sid: str) -> dict[str, Any]:
    """Close what is due (the node's own sweeper may have already) and read the auction."""
    services = client.app[SERVICES]
    metrics = client.app[METRICS]  # the node's own sweeper counts there too
    await Hammer(
        services.sessions, services.rooms, client.app[AUCTIONS], metrics=metrics
    ).close_due()
    auctions = await (await client.get(f"/api/v1/streams/{sid}/auctions")).json()
    return dict(auctions[0])


async def test_bids_rise_and_the_winner_gets_an_order_at_the_hammer_price(
    client: Client, shop: Shop, clock: Clock, viewers: Any
) -> None:
    seller, sid, pid, auction = await auction_show(client, shop, increment_cents=50)
    aid = auction["id"]
    ann, bob = await shop.account(), await shop.account()
    ann_page = await viewers(ann)
    assert (await ann_page.call("stream:join", {"stream_id": sid}))["ok"]
    first = await accepted(client, aid, ann, 1000)
    assert first["auction"]["high_cents"] == 1000 and first["auction"]["next_min_cents"] == 1050
    async with shop.unchanged():
        low = await expect_error(await bid(client, aid, bob, 1049), 409, "too_low")
        assert low["details"]["next_min_cents"] == 1050
        await expect_error(await bid(client, aid, seller, 5000), 403, "forbidden")
    await accepted(client, aid, bob, 1200, anonymous=True)
    async with shop.unchanged():
        # Ann bids on the 1,000 she saw: someone came in over it first.
        await expect_error(await bid(client, aid, ann, 1100, seen_cents=1000), 409, "outbid")
    heard = await ann_page.wait_for("auction:bid", lambda d: d["high_cents"] == 1200)
    assert heard["high_bidder"] == "a bidder"
    await accepted(client, aid, ann, 1300)
    clock.advance(30)
    async with shop.unchanged():
        await expect_error(await bid(client, aid, bob, 2000), 409, "closed")
    assert (await hammer(client, sid))["state"] == "open"  # it waits for delayed viewers
    clock.advance(CAP.total_seconds())
    closed = await hammer(client, sid)
    assert closed["state"] == "sold" and closed["high_cents"] == 1300 and closed["bids"] == 3
    assert closed["high_bidder"] == "viewer"
    order = await (
        await client.get(f"/api/v1/orders/{closed['order_id']}", headers=ann.auth)
    ).json()
    assert (order["status"], order["unit_price_cents"], order["quantity"]) == ("reserved", 1300, 1)
    assert (await (await client.get(f"/api/v1/products/{pid}")).json())["stock"] == 2
    await ann_page.wait_for("order:status", lambda d: d["id"] == order["id"])
    await ann_page.wait_for("auction:closed", lambda d: d["state"] == "sold")
    await ann_page.wait_for("product:stock", lambda d: d["product_id"] == pid and d["stock"] == 2)
    # It goes through checkout like any other order.
    paid = await client.post(f"/api/v1/orders/{order['id']}/pay", headers=seller.auth)
    assert (await paid.json())["status"] == "paid"
    assert (
        await Hammer(
            client.app[SERVICES].sessions, client.app[SERVICES].rooms, client.app[AUCTIONS]
        ).close_due()
        == 0
    )
    await expect_error(await bid(client, aid, bob, 9000), 409, "closed")
    report = await (
        await client.get(f"/api/v1/streams/{sid}/analytics", headers=seller.auth)
    ).json()
    figures = report["auctions"][0]
    assert (figures["bids"], figures["bidders"], figures["late_bids"]) == (3, 2, 0)
    assert (figures["hammer_cents"], figures["hammer_to_start"]) == (1300, 1.3)
    assert sum(m["bids"] for m in report["series"]) == 3
    outcomes = {"placed": 3, "too_low": 1, "forbidden": 1, "outbid": 1, "closed": 2}
    for outcome, count in outcomes.items():
        assert await scraped(client, "shopcast_auction_bids_total", outcome=outcome) == count
    assert await scraped(client, "shopcast_auction_closes_total", outcome="sold") == 1


async def test_a_bid_in_the_soft_close_moves_the_end(
    client: Client, shop: Shop, clock: Clock, viewers: Any
) -> None:
    _, sid, _, auction = await auction_show(client, shop, soft_close_seconds=10)
    aid, ends = auction["id"], datetime.fromisoformat(auction["ends_at"])
    ann, bob = await shop.account(), await shop.account()
    watcher = await viewers()
    assert (await watcher.call("stream:join", {"stream_id": sid}))["ok"]
    clock.advance(5)
    early = await accepted(client, aid, ann, 1000)
    assert early["auction"]["extensions"] == 0 and early["auction"]["ends_at"] == auction["ends_at"]
    clock.advance(22)  # 3 s left
    late = await accepted(client, aid, bob, 1100)
    assert datetime.fromisoformat(late["auction"]["ends_at"]) == clock.now + timedelta(seconds=10)
    assert late["auction"]["extensions"] == 1
    heard = await watcher.wait_for("auction:bid", lambda d: d["extended"])
    assert datetime.fromisoformat(heard["ends_at"]) > ends
    clock.advance(9)  # past the first end, within the moved one
    assert (await accepted(client, aid, ann, 1200))["auction"]["extensions"] == 2
    clock.advance(10 + CAP.total_seconds())
    closed = await hammer(client, sid)
    assert (closed["state"], closed["high_cents"], closed["extensions"]) == ("sold", 1200, 2)


async def test_a_reserve_not_met_sells_nothing(client: Client, shop: Shop, clock: Clock) -> None:
    _, sid, pid, auction = await auction_show(client, shop, reserve_cents=5000)
    assert auction["reserve_met"] is False
    await accepted(client, auction["id"], await shop.account(), 4000)
    clock.advance(30 + CAP.total_seconds())
    closed = await hammer(client, sid)
    assert (closed["state"], closed["order_id"], closed["reserve_met"]) == ("unsold", None, False)
    snapshot = await shop.snapshot()
    assert snapshot["orders"] == []
    assert (await (await client.get(f"/api/v1/products/{pid}")).json())["stock"] == 3


async def test_a_late_bid_counts_at_the_moment_its_bidder_saw(
    client: Client, shop: Shop, clock: Clock, viewers: Any
) -> None:
    """HLS 3 s behind, bidding 2 s after the close on the high bid it showed: accepted. The same
    from WebRTC: refused. A 30 s claim: the cap."""
    seller, sid, _, auction = await auction_show(client, shop, soft_close_seconds=0)
    aid = auction["id"]
    hls, webrtc, sniper, far = [await shop.account() for _ in range(4)]
    delays = client.app[AUCTIONS].delays
    await accepted(client, aid, sniper, 1000)
    clock.advance(29.5)
    await accepted(client, aid, sniper, 1100)  # just before the end: after the HLS viewer's moment
    clock.advance(0.5)
    delays.part_served(sid, hls.id, clock.now - timedelta(seconds=1))  # the last part it fetched
    clock.advance(2)  # 2 s after the close; that part is now 3 s old
    async with shop.unchanged():
        webrtc_bid = await bid(client, aid, webrtc, 1300, seen_cents=1000)
        await expect_error(webrtc_bid, 409, "closed")
        # At its moment (1 s before the end) the high bid was 1,000: 1,100 came later.
        await expect_error(
            await bid(client, aid, hls, 1300, seen_cents=1100, playback="hls"), 409, "unseen"
        )
    placed = await accepted(client, aid, hls, 1300, seen_cents=1000, playback="hls")
    assert (placed["late"], placed["delay_ms"]) == (True, 3000)
    # A viewer whose last part is 30 s old and who says so is granted the cap, and no more.
    delays.part_served(sid, far.id, clock.now - timedelta(seconds=30))
    report = {"playback": "hls", "latency": 30}
    response = await client.post(f"/api/v1/streams/{sid}/delay", headers=far.auth, json=report)
    assert response.status == 204, await response.text()
    capped = await accepted(client, aid, far, 1400, playback="hls")
    assert capped["delay_ms"] == CAP.total_seconds() * 1000
    clock.advance(4)  # 6 s after the close: past anyone's moment (the node may close it now)
    await expect_error(await bid(client, aid, far, 1500, playback="hls"), 409, "closed")
    closed = await hammer(client, sid)
    assert (closed["state"], closed["high_cents"]) == ("sold", 1400)
    report = await (
        await client.get(f"/api/v1/streams/{sid}/analytics", headers=seller.auth)
    ).json()
    assert report["auctions"][0]["late_bids"] == 2


async def test_a_report_lowers_the_grant_never_raises_it(
    client: Client, shop: Shop, clock: Clock
) -> None:
    _, sid, _, auction = await auction_show(client, shop, soft_close_seconds=0)
    viewer = await shop.account()
    client.app[AUCTIONS].delays.part_served(sid, viewer.id, clock.now)
    clock.advance(31)  # 1 s after the close; the last part is 31 s old
    report = {"playback": "hls", "latency": 0.5}
    response = await client.post(f"/api/v1/streams/{sid}/delay", headers=viewer.auth, json=report)
    assert response.status == 204
    async with shop.unchanged():
        late = await bid(client, auction["id"], viewer, 1000, playback="hls")
        await expect_error(late, 409, "closed")


async def test_refusals_change_nothing(client: Client, shop: Shop, clock: Clock) -> None:
    seller, sid, pid, auction = await auction_show(client, shop)
    buyer = await shop.account()
    url = f"/api/v1/streams/{sid}/auctions"
    start = {"product_id": pid, "start_price_cents": 100, "duration_seconds": 30}
    async with shop.unchanged():
        for wrong, status, code in (
            ({**start, "duration_seconds": 9}, 422, "invalid"),
            ({**start, "duration_seconds": 301}, 422, "invalid"),
            ({**start, "start_price_cents": 0}, 422, "invalid"),
            ({**start, "soft_close_seconds": -1}, 422, "invalid"),
            ({**start, "increment_cents": "5"}, 422, "invalid"),
            ({**start, "surprise": 1}, 422, "invalid"),
            (start, 409, "auction_running"),
            ({**start, "product_id": "nope"}, 404, "not_found"),
        ):
            await expect_error(
                await client.post(url, headers=seller.auth, json=wrong), status, code
            )
        await expect_error(await client.post(url, headers=buyer.auth, json=start), 403, "forbidden")
        await expect_error(await client.post(url, json=start), 401, "unauthorized")
        bids = f"/api/v1/auctions/{auction['id']}/bids"
        for wrong in (
            {"amount_cents": -5},
            {"amount_cents": 1.5},
            {"amount_cents": 1000, "playback": "carrier pigeon"},
            {},
        ):
            response = await client.post(bids, headers=buyer.auth, json=wrong)
            await expect_error(response, 422, "invalid")
        as_json = {**buyer.auth, "Content-Type": "application/json"}
        response = await client.post(bids, headers=as_json, data=b"{")
        await expect_error(response, 400, "invalid_json")
        response = await client.post(bids, headers=buyer.auth, data=b"amount=5")
        await expect_error(response, 415, "unsupported_media_type")
        await expect_error(await bid(client, "missing", buyer, 1000), 404, "not_found")
        await expect_error(
            await client.post(bids, json={"amount_cents": 1000}), 401, "unauthorized"
        )
        delay = await client.post(
            f"/api/v1/streams/{sid}/delay", headers=buyer.auth, json={"playback": "hls"}
        )
        await expect_error(delay, 422, "invalid")


async def test_socket_bids_ack_like_rest(
    client: Client, shop: Shop, clock: Clock, viewers: Any
) -> None:
    _, sid, _, auction = await auction_show(client, shop)
    ann, bob = await shop.account(), await shop.account()
    ann_page, bob_page, anonymous = await viewers(ann), await viewers(bob), await viewers()
    for page in (ann_page, bob_page, anonymous):
        assert (await page.call("stream:join", {"stream_id": sid}))["ok"]
    base = {"stream_id": sid, "auction_id": auction["id"]}
    ack = await ann_page.call("auction:bid", {**base, "amount_cents": 1000})
    assert (ack["ok"], ack["status"], ack["auction"]["high_cents"]) == (True, "accepted", 1000)
    async with shop.unchanged():
        refused = await bob_page.call("auction:bid", {**base, "amount_cents": 1000})
        assert (refused["status"], refused["next_min_cents"]) == ("too_low", 1100)
        refused = await bob_page.call(
            "auction:bid", {**base, "amount_cents": 1050, "seen_cents": 900}
        )
        assert refused["status"] == "outbid"
        refused = await anonymous.call("auction:bid", {**base, "amount_cents": 5000})
        assert refused["error"] == "sign_in_required"
        for wrong in ({**base, "amount_cents": "5000"}, {**base, "amount_cents": 0}, base):
            assert (await bob_page.call("auction:bid", wrong))["error"] == "invalid"
    await bob_page.wait_for("auction:bid", lambda d: d["high_bidder"] == "viewer")
    clock.advance(30)
    closed = await bob_page.call("auction:bid", {**base, "amount_cents": 9000})
    assert closed["status"] == "closed"


@pytest.mark.timeout(300)
async def test_five_hundred_socket_bidders_make_one_rising_sequence_and_one_winner(
    client: Client, shop: Shop, clock: Clock, database_url: str
) -> None:
    _, sid, _, auction = await auction_show(client, shop, increment_cents=1)
    bidders = await _accounts(client, database_url, 500)
    url = str(client.make_url("/"))
    pages: list[Viewer] = []
    try:
        # They join 50 at a time (a join reads the chat, the products, the reactions); they bid
        # all at once, and wait for their acks however long the machine takes.
        for batch in range(0, len(bidders), 50):
            chunk = [await Viewer().connect(url, token=b.token) for b in bidders[batch:][:50]]
            joins = await asyncio.gather(
                *(p.call("stream:join", {"stream_id": sid}) for p in chunk)
            )
            assert all(j["ok"] for j in joins)
            pages += chunk
        amounts = random.sample(range(1000, 1_000_000), len(pages))
        base = {"stream_id": sid, "auction_id": auction["id"]}
        acks = await asyncio.gather(
            *(
                p.sio.call("auction:bid", {**base, "amount_cents": amount}, timeout=120)
                for p, amount in zip(pages, amounts, strict=True)
            )
        )
    finally:
        await asyncio.gather(*(p.close() for p in pages))
    statuses = {a.get("status") for a in acks}
    assert statuses <= {"accepted", "too_low"}, statuses
    won = [a["amount_cents"] for a in acks if a.get("status") == "accepted"]
    assert max(amounts) in won
    snapshot = await shop.snapshot()
    rows = sorted(snapshot["bids"], key=lambda r: r[0])
    sequence = [r[3] for r in rows]
    assert sequence == sorted(set(sequence)) and sorted(won) == sequence
    clock.advance(30 + CAP.total_seconds())
    closed = await hammer(client, sid)
    assert (closed["state"], closed["high_cents"]) == ("sold", max(amounts))
    orders = (await shop.snapshot())["orders"]
    assert len(orders) == 1


async def _accounts(client: Client, database_url: str, n: int) -> list[Account]:
    """``n`` viewers written straight to the database, with tokens."""
    users = [
        {
            "id": new_id(),
            "email": f"bidder{i}-{secrets.token_hex(3)}@example.com",
            "display_name": f"bidder {i}",
            "password_hash": "x",
            "role": "viewer",
        }
        for i in range(n)
    ]
    engine = create_engine(database_url)
    async with engine.begin() as conn:
        await conn.execute(insert(User), users)
    await engine.dispose()
    tokens = client.app[SERVICES].tokens
    return [Account(u["id"], tokens.issue(u["id"]), u["email"], "") for u in users]


def test_webrtc_delay_is_half_the_rtcp_round_trip_and_a_bounded_jitter_buffer() -> None:
    delays, now = ViewerDelays(), utcnow()

    def granted(**report: Any) -> float:
        delays.reported("s", "u", Report(**{"playback": "webrtc", "latency": 60.0, **report}))
        return delays.granted("s", "u", "webrtc", now).total_seconds()

    assert granted() == 0  # no RTCP round trip: nothing proven
    assert granted(rtt=0.2, jitter=0.1, measured_rtt=0.2) == pytest.approx(0.2)
    assert granted(rtt=0.2, jitter=30.0, measured_rtt=0.2) == pytest.approx(0.6)  # jitter <= 0.5
    assert granted(rtt=4.0, jitter=0.1, measured_rtt=0.2) == pytest.approx(0.1)  # a made-up rtt
    assert granted(rtt=0.2, jitter=0.1, measured_rtt=0.2, latency=0.05) == pytest.approx(0.05)
    assert granted(measured_rtt=20.0) == CAP.total_seconds()
    # A WebRTC report says nothing of the same viewer's HLS player: its parts alone count.
    delays.part_served("s", "u", now - timedelta(seconds=3))
    assert delays.granted("s", "u", "hls", now) == timedelta(seconds=3)
