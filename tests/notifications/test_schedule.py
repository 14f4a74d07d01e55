"""A planned show's notices: "Remind me", the reminder 15 minutes before its start (on a clock
the test moves), a move, a cancellation, and going live, each heard once per user and channel;
and a neighbourhood show going live heard around the seller."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from api.db import utcnow
from api.shows.schedule import REMINDERS
from peers.mailbox import Inbox
from tests.api.test_neighbourhoods import centre_at_distance
from tests.api.test_streams import KREUZBERG, locate
from tests.conftest import Account, Shop, eventually, expect_error
from tests.notifications.services import PushService
from tests.notifications.test_go_live import follow, go_live, rows, subscribe, wants_email

Client = TestClient[Any, Any]


async def remind(client: Client, viewer: Account, stream_id: str, **channels: bool) -> Any:
    return await client.put(
        f"/api/v1/streams/{stream_id}/reminder", json=channels, headers=viewer.auth
    )


async def notices(database_url: str, kind: str) -> Counter[tuple[str, str]]:
    """(user, channel) of every notification of this kind that was sent, counted."""
    sent = await rows(
        database_url,
        "SELECT n.user_id, n.channel FROM notifications n JOIN notification_fanouts f "
        "ON f.id = n.fanout_id WHERE f.kind = :kind AND n.state = 'done'",
        kind=kind,
    )
    return Counter((user, channel) for user, channel in sent)


async def sent(database_url: str, kind: str, expected: Counter[tuple[str, str]]) -> None:
    async def arrived() -> bool:
        return await notices(database_url, kind) == expected

    async def seen() -> str:
        return f"{kind}: {await notices(database_url, kind)} instead of {expected}"

    await eventually(arrived, 30, seen)


def at(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


async def test_reminders_come_before_the_start_and_again_after_a_move(
    client: Client,
    shop: Shop,
    push_service: PushService,
    inbox: tuple[Inbox, int],
    database_url: str,
) -> None:
    mails = inbox[0]
    seller = await shop.account("seller", display_name="Ana's Pottery")
    follower, asked, asked_by_mail = [await shop.account() for _ in range(3)]
    for viewer in (follower, asked_by_mail):
        await follow(client, viewer, seller)
    await subscribe(client, follower, push_service.device("follower"))
    await subscribe(client, asked, push_service.device("asked"))
    await wants_email(client, follower)
    start = (utcnow() + timedelta(hours=2)).replace(microsecond=0)
    show = await shop.stream(seller, title="Glaze night", scheduled_at=at(start))
    reminded = await remind(client, asked, show["id"], push=True, email=True)
    assert reminded.status == 200, await reminded.text()
    assert await reminded.json() == {"push": True, "email": True}
    by_mail = await remind(client, asked_by_mail, show["id"], email=True)
    assert (await by_mail.json()) == {"push": False, "email": True}
    mine = await client.get(f"/api/v1/streams/{show['id']}/reminder", headers=asked.auth)
    assert (await mine.json())["push"] is True

    reminders = client.app[REMINDERS]
    reminders.clock = lambda: start - timedelta(minutes=20)
    assert await reminders.tick() == 0, "20 minutes before: too early"
    reminders.clock = lambda: start - timedelta(minutes=14)
    expected = Counter(
        {(asked.id, "push"): 1, (asked.id, "email"): 1, (asked_by_mail.id, "email"): 1}
    )
    await sent(database_url, "reminder", expected)
    assert await reminders.tick() == 0, "reminded once"
    push = push_service.to("asked")[0]
    assert push.payload["title"] == "Ana's Pottery goes live soon"
    assert push.payload["body"] == "Glaze night"
    assert datetime.fromisoformat(push.payload["at"]) == start
    assert push.payload["url"] == f"http://shopcast.test/watch/{show['id']}"
    assert push_service.to("follower") == [], "a follower who did not ask is not reminded"
    subjects = sorted((m["To"], m["Subject"]) for m in mails.messages())
    assert subjects == sorted(
        (a.email, "Ana's Pottery goes live soon: Glaze night") for a in (asked, asked_by_mail)
    )
    plain = mails.messages()[0].get_body(("plain",)).get_content()
    assert start.strftime("%H:%M UTC") in plain

    later = start + timedelta(hours=1)
    moved = await client.patch(
        f"/api/v1/streams/{show['id']}/settings",
        json={"scheduled_at": at(later)},
        headers=seller.auth,
    )
    assert moved.status == 200, await moved.text()
    told = Counter(
        {
            (follower.id, "push"): 1,
            (follower.id, "email"): 1,
            (asked.id, "push"): 1,
            (asked.id, "email"): 1,
            (asked_by_mail.id, "email"): 1,
        }
    )
    await sent(database_url, "rescheduled", told)
    assert push_service.to("follower")[0].payload["title"] == "Ana's Pottery moved a show"
    assert datetime.fromisoformat(push_service.to("follower")[0].payload["at"]) == later

    reminders.clock = lambda: later - timedelta(minutes=10)
    await sent(database_url, "reminder", expected + expected)

    await go_live(client, show["id"])
    await sent(database_url, "live", told)


async def test_shows_already_reminded_keep_no_later_one_waiting(
    client: Client, shop: Shop, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pages of two: five shows starting together are more than two pages, and the first
    # shows, once reminded, still come first in start order.
    monkeypatch.setattr("api.shows.schedule.DUE_BATCH", 2)
    seller, asked = await shop.account("seller"), await shop.account()
    start = (utcnow() + timedelta(hours=3)).replace(microsecond=0)
    shows = [await shop.stream(seller, scheduled_at=at(start)) for _ in range(5)]
    for show in shows:
        assert (await remind(client, asked, show["id"], email=True)).status == 200
    reminders = client.app[REMINDERS]
    reminders.clock = lambda: start - timedelta(minutes=14)

    async def reminded() -> set[str]:
        found = await rows(
            database_url, "SELECT stream_id FROM notification_fanouts WHERE kind = 'reminder'"
        )
        return {stream_id for (stream_id,) in found}

    async def all_reminded() -> bool:
        return await reminded() == {show["id"] for show in shows}

    await eventually(all_reminded, 30, "a show starting with the others was never reminded")
    assert await reminders.tick() == 0, "each reminded once"


async def test_cancelling_tells_who_would_have_watched_and_ends_the_show(
    client: Client, shop: Shop, push_service: PushService, database_url: str
) -> None:
    seller = await shop.account("seller")
    follower, asked, stranger = [await shop.account() for _ in range(3)]
    await follow(client, follower, seller)
    for viewer, name in ((follower, "follower"), (asked, "asked"), (stranger, "stranger")):
        await subscribe(client, viewer, push_service.device(name))
    start = utcnow() + timedelta(days=1)
    show = await shop.stream(seller, title="Spring drop", scheduled_at=at(start))
    assert (await remind(client, asked, show["id"], push=True)).status == 200

    await expect_error(
        await client.post(f"/api/v1/streams/{show['id']}/cancel", headers=stranger.auth),
        403,
        "forbidden",
    )
    cancelled = await client.post(f"/api/v1/streams/{show['id']}/cancel", headers=seller.auth)
    assert cancelled.status == 200, await cancelled.text()
    assert (await cancelled.json())["status"] == "cancelled"
    await sent(
        database_url, "cancelled", Counter({(follower.id, "push"): 1, (asked.id, "push"): 1})
    )
    assert push_service.to("asked")[0].payload["title"] == "seller cancelled a show"
    assert push_service.to("stranger") == []

    async with shop.unchanged():
        await expect_error(
            await client.post(f"/api/v1/streams/{show['id']}/cancel", headers=seller.auth),
            409,
            "invalid_status",
        )
        await expect_error(
            await remind(client, stranger, show["id"], push=True), 409, "not_planned"
        )
        upcoming = await client.get("/api/v1/streams?section=upcoming")
        assert show["id"] not in [s["id"] for s in await upcoming.json()]
        await expect_error(
            await client.post(
                f"/whep/{show['id']}", data="v=0", headers={"Content-Type": "application/sdp"}
            ),
            409,
            "stream_finished",
        )


async def test_a_bad_reminder_is_refused_and_changes_nothing(
    client: Client, shop: Shop, database_url: str
) -> None:
    seller, viewer = await shop.account("seller"), await shop.account()
    show = await shop.stream(seller, scheduled_at=at(utcnow() + timedelta(hours=3)))
    async with shop.unchanged():
        await expect_error(await remind(client, viewer, show["id"]), 422, "invalid")
        await expect_error(await remind(client, viewer, show["id"], push=True), 409, "no_device")
        await expect_error(
            await client.put(f"/api/v1/streams/{show['id']}/reminder", json={"email": True}),
            401,
            "unauthorized",
        )
        await expect_error(
            await remind(client, viewer, "no-such-show", email=True), 404, "not_found"
        )
        await expect_error(
            await client.get(f"/api/v1/streams/{show['id']}/reminder", headers=viewer.auth),
            404,
            "not_found",
        )
    assert (await remind(client, viewer, show["id"], email=True)).status == 200
    forgot = await client.delete(f"/api/v1/streams/{show['id']}/reminder", headers=viewer.auth)
    assert forgot.status == 204
    assert await rows(database_url, "SELECT count(*) FROM show_reminders") == [(0,)]


async def test_a_neighbourhood_show_going_live_is_heard_around_the_seller(
    client: Client, shop: Shop, push_service: PushService, database_url: str
) -> None:
    seller = await shop.account("seller")
    await locate(shop, seller, KREUZBERG)
    cell = (await (await client.get("/api/v1/me", headers=seller.auth)).json())["home_cell"]
    next_door, further = await shop.account(), await shop.account()
    await locate(shop, next_door, centre_at_distance(cell, 1))
    await locate(shop, further, centre_at_distance(cell, 2))
    await subscribe(client, next_door, push_service.device("next-door"))
    await subscribe(client, further, push_service.device("further"))

    quiet = await shop.stream(seller, title="Not announced", notify_followers=False)
    loud = await shop.stream(
        seller, title="Yard sale", notify_followers=False, notify_neighborhood=True
    )
    await go_live(client, quiet["id"])
    await go_live(client, loud["id"])
    await sent(database_url, "live", Counter({(next_door.id, "push"): 1}))
    assert [p.payload["body"] for p in push_service.to("next-door")] == ["Yard sale"]
    assert push_service.to("further") == []
