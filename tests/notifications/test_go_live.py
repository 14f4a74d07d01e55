"""Going live tells the seller's followers: one Web Push per subscribed device, one email per
follower who asked for them, nothing to those who unsubscribed or when the show asks not to."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiohttp.test_utils import TestClient
from sqlalchemy import insert, text

from api.db import new_id, utcnow
from api.notifications.models import Fanout, Notification
from api.shows.lifecycle import StreamLifecycle
from api.web.context import SERVICES
from peers.mailbox import Inbox
from server.database import create_engine
from tests.conftest import Account, Shop, eventually, expect_error
from tests.notifications.services import Device, PushService

Client = TestClient[Any, Any]


async def follow(client: Client, viewer: Account, seller: Account) -> None:
    response = await client.post(f"/api/v1/users/{seller.id}/follow", headers=viewer.auth)
    assert response.status == 204, await response.text()


async def subscribe(client: Client, viewer: Account, device: Device) -> str:
    response = await client.post(
        "/api/v1/me/push-subscriptions", json=device.subscription(), headers=viewer.auth
    )
    assert response.status == 201, await response.text()
    return str((await response.json())["id"])


async def wants_email(client: Client, viewer: Account) -> None:
    response = await client.patch(
        "/api/v1/me/notifications", json={"email": True}, headers=viewer.auth
    )
    assert response.status == 200, await response.text()


def lifecycle(client: Client) -> StreamLifecycle:
    services = client.app[SERVICES]
    return StreamLifecycle(services.sessions, services.rooms, services.bus)


async def go_live(client: Client, stream_id: str) -> None:
    assert await lifecycle(client).media_started(stream_id)


async def rows(database_url: str, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            return [tuple(r) for r in await conn.execute(text(sql), params)]
    finally:
        await engine.dispose()


async def settled(database_url: str) -> bool:
    """Every fan-out expanded and every notification sent or given up."""
    pending = await rows(
        database_url,
        "SELECT count(*) FROM notifications WHERE state IN ('queued', 'running') UNION ALL "
        "SELECT count(*) FROM notification_fanouts WHERE state IN ('queued', 'running')",
    )
    fanouts = await rows(database_url, "SELECT count(*) FROM notification_fanouts")
    return fanouts[0][0] > 0 and all(count == 0 for (count,) in pending)


async def test_going_live_pushes_each_device_and_mails_who_asked(
    client: Client,
    shop: Shop,
    push_service: PushService,
    inbox: tuple[Inbox, int],
    database_url: str,
) -> None:
    mails = inbox[0]
    seller = await shop.account("seller", display_name="Ana's Pottery")
    other_seller = await shop.account("seller")
    accounts = [await shop.account() for _ in range(6)]
    phone_and_laptop, one_phone, reader, quiet, no_push, stranger = accounts
    for viewer in (phone_and_laptop, one_phone, reader, quiet, no_push):
        await follow(client, viewer, seller)
    await follow(client, stranger, other_seller)
    phone = await subscribe(client, phone_and_laptop, push_service.device("phone"))
    expired = await subscribe(client, phone_and_laptop, push_service.device("laptop", status=410))
    await subscribe(client, one_phone, push_service.device("one-phone"))
    await subscribe(client, quiet, push_service.device("quiet-phone"))
    await subscribe(client, stranger, push_service.device("stranger-phone"))
    await subscribe(client, no_push, push_service.device("no-push-phone"))
    off = await client.patch("/api/v1/me/notifications", json={"push": False}, headers=no_push.auth)
    assert (await off.json())["push"] is False, "push off for every seller"
    await wants_email(client, reader)
    await wants_email(client, quiet)
    muted = await client.put(
        f"/api/v1/me/notifications/sellers/{seller.id}",
        json={"push": False, "email": False},
        headers=quiet.auth,
    )
    assert muted.status == 200, await muted.text()
    assert {m["channel"] for m in (await muted.json())["muted"]} == {"push", "email"}

    stream = await shop.stream(seller, title="Glazes, live")
    await go_live(client, stream["id"])
    await eventually(lambda: settled(database_url), 30, "the notifications were not all sent")

    assert {p.device for p in push_service.received} == {"phone", "laptop", "one-phone"}
    assert len(push_service.received) == 3, "one push per device"
    push = push_service.to("phone")[0]
    assert push.payload["title"] == "Ana's Pottery is live"
    assert push.payload["body"] == "Glazes, live"
    assert push.payload["url"] == f"http://shopcast.test/watch/{stream['id']}"
    assert push.claims["sub"] == "mailto:ops@shopcast.example"
    assert push.claims["aud"] == str(push_service.server.make_url("/")).rstrip("/")

    assert [m["To"] for m in mails.messages()] == [reader.email], "one email, to who asked"
    mail = mails.messages()[0]
    assert mail["Subject"] == "Ana's Pottery is live: Glazes, live"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    one_click = mail["List-Unsubscribe"].strip("<>")
    plain = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    for body in (plain, html):
        assert f"http://shopcast.test/watch/{stream['id']}" in body
        assert "http://shopcast.test/unsubscribe?token=" in body
    assert "<strong>Ana&#x27;s Pottery is live</strong>" in html

    devices = await rows(
        database_url, "SELECT id FROM push_subscriptions WHERE user_id = :u", u=phone_and_laptop.id
    )
    assert devices == [(phone,)], f"the 410 removed {expired}, only it"
    sent = await rows(
        database_url,
        "SELECT user_id, channel, state FROM notifications ORDER BY user_id, channel",
    )
    assert sorted(sent) == sorted(
        [
            (phone_and_laptop.id, "push", "done"),
            (one_phone.id, "push", "done"),
            (reader.id, "email", "done"),
        ]
    )

    # The one-click POST of a mail client (RFC 8058), with no sign-in.
    token = parse_qs(urlsplit(one_click).query)["token"][0]
    response = await client.post(
        f"/api/v1/unsubscribe?token={token}",
        data="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["channel"] == "email" and body["seller"]["id"] == seller.id
    me = await (await client.get("/api/v1/me/notifications", headers=reader.auth)).json()
    assert me["muted"] == [{"seller_id": seller.id, "channel": "email"}]
    assert me["email"] is True, "only this seller's emails are off"

    # Another show of the same seller: the reader unsubscribed, so no email at all now.
    before = len(mails)
    await go_live(client, (await shop.stream(seller))["id"])
    await eventually(
        lambda: _fanouts_done(database_url, 2), 30, "the second fan-out did not finish"
    )
    await eventually(lambda: settled(database_url), 30, "the second show's notifications")
    assert len(mails) == before
    assert len(push_service.received) == 5, "the phone and the one phone, once each"


async def _fanouts_done(database_url: str, count: int) -> bool:
    done = await rows(
        database_url, "SELECT count(*) FROM notification_fanouts WHERE state = 'done'"
    )
    return bool(done[0][0] == count)


async def test_nothing_is_sent_when_the_show_does_not_notify(
    client: Client,
    shop: Shop,
    push_service: PushService,
    inbox: tuple[Inbox, int],
    database_url: str,
) -> None:
    seller = await shop.account("seller")
    viewer = await shop.account()
    await follow(client, viewer, seller)
    await subscribe(client, viewer, push_service.device("phone"))
    await wants_email(client, viewer)
    stream = await shop.stream(seller, notify_followers=False)
    await go_live(client, stream["id"])
    assert await rows(database_url, "SELECT id FROM notification_fanouts") == []
    assert await rows(database_url, "SELECT id FROM notifications") == []
    # Reconnecting is not going live again: still no fan-out.
    assert await lifecycle(client).publisher_lost(stream["id"])
    assert await lifecycle(client).media_started(stream["id"])
    assert await rows(database_url, "SELECT id FROM notification_fanouts") == []
    assert push_service.received == [] and len(inbox[0]) == 0


async def test_unsubscribe_links_need_no_sign_in_and_bad_ones_are_refused(
    client: Client, shop: Shop, database_url: str
) -> None:
    page = await client.get("/unsubscribe?token=anything")
    assert page.status == 200 and page.content_type == "text/html"
    async with shop.unchanged():
        for token in ("nope", "a.b.c", "x" * 2048):
            response = await client.post(f"/api/v1/unsubscribe?token={token}")
            await expect_error(response, 400, "invalid_token")
        await expect_error(await client.post("/api/v1/unsubscribe"), 422, "invalid")
        await expect_error(
            await client.post(f"/api/v1/unsubscribe?token={'x' * 2049}"), 422, "invalid"
        )


async def test_a_bad_subscription_or_setting_is_refused_and_changes_nothing(
    client: Client, shop: Shop, push_service: PushService
) -> None:
    viewer, seller = await shop.account(), await shop.account("seller")
    good = push_service.device("phone").subscription()
    bad_bodies = [
        {**good, "endpoint": "not a url"},
        {**good, "endpoint": "ftp://push.example/x"},
        {**good, "keys": {**good["keys"], "p256dh": good["keys"]["auth"]}},  # 16 bytes, not 65
        {**good, "keys": {**good["keys"], "auth": "!!"}},
        {**good, "keys": {"p256dh": good["keys"]["p256dh"]}},
        {**good, "extra": 1},
    ]
    async with shop.unchanged():
        for body in bad_bodies:
            response = await client.post(
                "/api/v1/me/push-subscriptions", json=body, headers=viewer.auth
            )
            await expect_error(response, 422, "invalid")
        await expect_error(
            await client.post("/api/v1/me/push-subscriptions", json=good), 401, "unauthorized"
        )
        await expect_error(
            await client.patch("/api/v1/me/notifications", json={}, headers=viewer.auth),
            422,
            "invalid",
        )
        await expect_error(
            await client.patch(
                "/api/v1/me/notifications", json={"email": None}, headers=viewer.auth
            ),
            422,
            "invalid",
        )
        await expect_error(
            await client.put(
                f"/api/v1/me/notifications/sellers/{viewer.id}",
                json={"email": False},
                headers=viewer.auth,
            ),
            404,
            "not_found",
        )
        await expect_error(
            await client.delete("/api/v1/me/push-subscriptions/nope", headers=viewer.auth),
            404,
            "not_found",
        )
    other = await client.put(
        f"/api/v1/me/notifications/sellers/{seller.id}", json={"push": False}, headers=viewer.auth
    )
    assert (await other.json())["muted"] == [{"seller_id": seller.id, "channel": "push"}]


async def test_jobs_of_a_worker_that_died_are_taken_over(
    client: Client, shop: Shop, inbox: tuple[Inbox, int], database_url: str
) -> None:
    """A fan-out and a notification left running by a worker whose lease ran out (a node that
    died mid-show) are claimed again and finished, each follower mailed once."""
    seller = await shop.account("seller", display_name="Crashy")
    first, second = await shop.account(), await shop.account()
    for viewer in (first, second):
        await follow(client, viewer, seller)
        await wants_email(client, viewer)
    stream = await shop.stream(seller, title="After the crash")
    long_ago = utcnow() - timedelta(minutes=5)
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            fanout = new_id()
            message = {"title": "After the crash", "seller": "Crashy"}
            await conn.execute(
                insert(Fanout).values(
                    id=fanout,
                    stream_id=stream["id"],
                    kind="live",
                    key="live",
                    seller_id=seller.id,
                    audience={"followers": True, "cells": []},
                    message=message,
                    state="running",
                    cursor="",
                    attempts=1,
                    worker="dead",
                    lease_expires_at=long_ago,
                    created_at=long_ago,
                )
            )
            await conn.execute(
                insert(Notification).values(
                    id=new_id(),
                    fanout_id=fanout,
                    stream_id=stream["id"],
                    user_id=first.id,
                    channel="email",
                    state="running",
                    attempts=1,
                    next_attempt_at=long_ago,
                    worker="dead",
                    lease_expires_at=long_ago,
                    sent_to=[],
                    created_at=long_ago,
                )
            )
    finally:
        await engine.dispose()
    await eventually(lambda: settled(database_url), 30, "the dead worker's jobs were not finished")
    assert sorted(m["To"] for m in inbox[0].messages()) == sorted([first.email, second.email])
    attempts = await rows(
        database_url, "SELECT attempts FROM notifications WHERE user_id = :u", u=first.id
    )
    assert attempts == [(2,)], "the dead worker's try counts"


async def test_a_push_service_error_is_retried_for_that_device_only(
    client: Client, shop: Shop, push_service: PushService, database_url: str
) -> None:
    seller, viewer = await shop.account("seller"), await shop.account()
    await follow(client, viewer, seller)
    steady = await subscribe(client, viewer, push_service.device("steady"))
    await subscribe(client, viewer, push_service.device("flaky", first=(503,)))
    await go_live(client, (await shop.stream(seller))["id"])
    query = "SELECT state, error, sent_to FROM notifications"
    first = await eventually(lambda: _retrying(database_url, query), 30, "the 503 was not recorded")
    assert first[0][1] == "HTTP 503" and first[0][2] in ([steady], f'["{steady}"]')
    # The backoff's time passes (the clock the row keeps): the next try is due now.
    await shop.execute("UPDATE notifications SET next_attempt_at = :now", now=utcnow())
    await eventually(lambda: settled(database_url), 30, "the retry did not finish")
    assert [p.device for p in push_service.received].count("steady") == 1, "sent once"
    assert [p.device for p in push_service.received].count("flaky") == 2, "tried again"
    assert (await rows(database_url, "SELECT state FROM notifications")) == [("done",)]


async def _retrying(database_url: str, query: str) -> list[tuple[Any, ...]]:
    found = await rows(database_url, query)
    return found if found and found[0][0] == "queued" and found[0][1] else []
