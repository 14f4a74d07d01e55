"""10,000 followers told by the jobs, in many short steps: the event loop keeps running."""

from __future__ import annotations

import time
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from peers.audience import add_followers
from peers.looplag import LoopLag
from peers.mailbox import Inbox
from tests.conftest import Shop, eventually
from tests.notifications.test_go_live import go_live, rows

FOLLOWERS = 10_000
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


async def test_ten_thousand_followers_without_blocking_the_loop(
    client: TestClient[Any, Any], shop: Shop, inbox: tuple[Inbox, int], database_url: str
) -> None:
    mails = inbox[0]
    seller = await shop.account("seller")
    await add_followers(database_url, seller.id, FOLLOWERS)
    stream = await shop.stream(seller)

    lag = LoopLag()
    lag.start()
    started = time.perf_counter()
    try:
        await go_live(client, stream["id"])
        await eventually(
            lambda: len(mails) >= FOLLOWERS,
            540,
            lambda: f"{len(mails)} of {FOLLOWERS} emails",
        )
        took = time.perf_counter() - started
    finally:
        await lag.stop()

    recipients = [to for tos, _ in mails.envelopes for to in tos]
    assert len(set(recipients)) == len(recipients) == FOLLOWERS, "one email per follower"
    done = [("done", FOLLOWERS)]
    query = "SELECT state, count(*) FROM notifications GROUP BY state"
    await eventually(
        lambda: _equal(rows(database_url, query), done), 60, "not every notification recorded"
    )
    # Derived in this run: the fan-out took `took`; had any step held the loop for a twentieth
    # of it, the work would have been a few long blocks rather than many short steps.
    bound = took / 20
    assert lag.worst < bound, (
        f"the loop stalled {lag.worst * 1000:.0f} ms during a {took:.1f} s fan-out "
        f"(p99 {lag.quantile(0.99) * 1000:.1f} ms; bound {bound * 1000:.0f} ms)"
    )


async def _equal(value: Any, expected: Any) -> bool:
    return bool(await value == expected)
