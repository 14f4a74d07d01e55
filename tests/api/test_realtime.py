"""Socket.IO rooms with real clients: every event, every refusal, and what reaches others."""

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio
from aiohttp.test_utils import TestClient

from api.realtime import sockets as realtime_module
from api.shows.lifecycle import StreamLifecycle
from api.tables import Base
from api.web.context import SERVICES
from tests.conftest import Account, Shop, expect_error
from tests.socket_client import Viewer

Client = TestClient[Any, Any]
ROOT = Path(__file__).resolve().parents[2]
Open = Callable[..., Awaitable[Viewer]]
HEART = "\u2764\ufe0f"
FIRE = "\U0001f525"


async def go_live(client: Client, stream_id: str) -> None:
    services = client.app[SERVICES]
    await StreamLifecycle(services.sessions, services.rooms, services.bus).media_started(stream_id)


async def chat_rows(shop: Shop) -> list[tuple[Any, ...]]:
    return (await shop.snapshot())["chat_messages"]


async def joined(
    open_viewer: Open, stream_id: str, account: Account | None = None, **auth: Any
) -> Viewer:
    viewer = await open_viewer(account, **auth)
    reply = await viewer.call("stream:join", {"stream_id": stream_id})
    assert reply["ok"], reply
    return viewer


async def test_join_returns_the_room_state(client: Client, shop: Shop, viewers: Open) -> None:
    seller = await shop.account("seller")
    product = await shop.product(seller, title="Mug", stock=4)
    stream = await shop.stream(seller, product_ids=[product["id"]])
    talker = await shop.account()
    first = await joined(viewers, stream["id"], talker)
    await first.call("stream:chat", {"stream_id": stream["id"], "text": "hello"})
    late = await viewers()
    state = await late.call("stream:join", {"stream_id": stream["id"]})
    assert state["ok"] is True
    assert state["stream"] == {
        "id": stream["id"],
        "status": "created",
        "enable_chat": True,
        "slow_mode_seconds": 0,
    }
    assert state["viewers"] == 2
    assert [m["text"] for m in state["chat"]] == ["hello"]
    assert state["chat"][0]["user"]["id"] == talker.id
    assert state["products"][0]["product"]["stock"] == 4
    assert state["reactions"] == {}
    assert (await late.call("stream:join", {"stream_id": "missing"}))["error"] == "not_found"
    assert (await late.call("stream:join", {"nope": 1}))["error"] == "invalid"
    assert (await late.call("stream:join", "junk"))["error"] == "invalid"


async def test_chat_is_stored_cleaned_and_broadcast(
    client: Client, shop: Shop, viewers: Open
) -> None:
    seller, author = await shop.account("seller"), await shop.account()
    stream = await shop.stream(seller)
    watcher = await joined(viewers, stream["id"])
    speaker = await joined(viewers, stream["id"], author)
    text = "  <b>Is it\u202e blue?</b>\n\x07  "
    reply = await speaker.call("stream:chat", {"stream_id": stream["id"], "text": text})
    assert reply["ok"] is True
    assert reply["message"]["text"] == "<b>Is it blue?</b>"
    seen = await watcher.wait_for("stream:chat")
    assert seen == reply["message"]
    rows = await chat_rows(shop)
    assert [r[3] for r in rows] == ["<b>Is it blue?</b>"]
    history = await (await client.get(f"/api/v1/streams/{stream['id']}/chat")).json()
    assert [m["text"] for m in history] == ["<b>Is it blue?</b>"]


async def test_chat_refusals_store_and_send_nothing(
    client: Client, shop: Shop, viewers: Open
) -> None:
    seller, author = await shop.account("seller"), await shop.account()
    stream = await shop.stream(seller)
    quiet = await shop.stream(seller, enable_chat=False)
    watcher = await joined(viewers, stream["id"])
    anonymous = await joined(viewers, stream["id"])
    speaker = await viewers(author)
    sid = stream["id"]
    assert (await speaker.call("stream:chat", {"stream_id": sid, "text": "hi"}))[
        "error"
    ] == "not_joined"
    await speaker.call("stream:join", {"stream_id": sid})
    await speaker.call("stream:join", {"stream_id": quiet["id"]})
    cases = [
        (anonymous, {"stream_id": sid, "text": "hi"}, "sign_in_required"),
        (speaker, {"stream_id": quiet["id"], "text": "hi"}, "chat_disabled"),
        (speaker, {"stream_id": sid, "text": "x" * 501}, "too_long"),
        (speaker, {"stream_id": sid, "text": " \u202e\n\t "}, "empty"),
        (speaker, {"stream_id": sid}, "invalid"),
        (speaker, {"stream_id": sid, "text": 42}, "invalid"),
    ]
    async with shop.unchanged():
        for who, payload, code in cases:
            reply = await who.call("stream:chat", payload)
            assert reply == {"ok": False, "error": code, "message": reply.get("message")}, (
                code,
                reply,
            )
        await asyncio.sleep(0.3)
    assert watcher.received("stream:chat") == []


async def test_chat_rate_limit(client: Client, shop: Shop, viewers: Open) -> None:
    seller, author = await shop.account("seller"), await shop.account()
    stream = await shop.stream(seller)
    speaker = await joined(viewers, stream["id"], author)
    # Sent at once, so the bucket (burst 10, 5/s) barely refills while they arrive.
    replies = await asyncio.gather(
        *(
            speaker.call("stream:chat", {"stream_id": stream["id"], "text": f"m{n}"})
            for n in range(20)
        )
    )
    accepted = [r for r in replies if r["ok"]]
    refused = [r for r in replies if not r["ok"]]
    assert 10 <= len(accepted) < 20
    assert refused and all(r["error"] == "rate_limited" and r["retry_after"] > 0 for r in refused)
    assert len(await chat_rows(shop)) == len(accepted)


async def test_slow_mode(client: Client, shop: Shop, viewers: Open) -> None:
    seller, author = await shop.account("seller"), await shop.account()
    stream = await shop.stream(seller)
    sid = stream["id"]
    response = await client.put(
        f"/api/v1/streams/{sid}/slow-mode", json={"seconds": 30}, headers=seller.auth
    )
    assert (await response.json()) == {"slow_mode_seconds": 30}
    speaker = await joined(viewers, sid, author)
    owner = await joined(viewers, sid, seller)
    assert (await speaker.call("stream:chat", {"stream_id": sid, "text": "one"}))["ok"]
    second = await speaker.call("stream:chat", {"stream_id": sid, "text": "two"})
    assert second["error"] == "slow_mode" and 25 < second["retry_after"] <= 30
    for n in range(2):
        assert (await owner.call("stream:chat", {"stream_id": sid, "text": f"seller {n}"}))["ok"]
    assert (await owner.call("moderation:slow_mode", {"stream_id": sid, "seconds": 0}))["ok"]
    assert (await speaker.call("stream:chat", {"stream_id": sid, "text": "three"}))["ok"]
    assert (await speaker.call("moderation:slow_mode", {"stream_id": sid, "seconds": 5}))[
        "error"
    ] == "forbidden"
    bad = await client.put(
        f"/api/v1/streams/{sid}/slow-mode", json={"seconds": 301}, headers=seller.auth
    )
    assert bad.status == 422


async def test_mute_and_ban(client: Client, shop: Shop, viewers: Open) -> None:
    seller, moderator, troll = (
        await shop.account("seller"),
        await shop.account("moderator"),
        await shop.account(display_name="Troll"),
    )
    stream = await shop.stream(seller)
    sid = stream["id"]
    watcher = await joined(viewers, sid)
    noisy = await joined(viewers, sid, troll)
    first = await noisy.call("stream:chat", {"stream_id": sid, "text": "buy my stuff"})
    url = f"/api/v1/streams/{sid}/sanctions/{troll.id}"
    assert (await client.put(f"{url}/mute", headers=moderator.auth)).status == 204
    await asyncio.sleep(0.1)
    async with shop.unchanged():
        assert (await noisy.call("stream:chat", {"stream_id": sid, "text": "again"}))[
            "error"
        ] == "muted"
    assert (await client.delete(f"{url}/mute", headers=seller.auth)).status == 204
    await asyncio.sleep(0.1)
    assert (await noisy.call("stream:chat", {"stream_id": sid, "text": "sorry"}))["ok"]
    assert (await client.put(f"{url}/ban", headers=seller.auth)).status == 204
    deleted = await watcher.wait_for("stream:chat_deleted")
    assert len(deleted["ids"]) == 2 and first["message"]["id"] in deleted["ids"]
    await noisy.wait_for("stream:banned")
    assert (await noisy.call("stream:chat", {"stream_id": sid, "text": "x"}))[
        "error"
    ] == "not_joined"
    assert (await noisy.call("stream:join", {"stream_id": sid}))["error"] == "banned"
    history = await (await client.get(f"/api/v1/streams/{sid}/chat")).json()
    assert history == []
    listed = await (
        await client.get(f"/api/v1/streams/{sid}/sanctions", headers=seller.auth)
    ).json()
    assert [(s["user_id"], s["kind"]) for s in listed] == [(troll.id, "ban")]
    # The dashboard names who is sanctioned, as chat names its authors.
    troll_out = {"id": troll.id, "display_name": "Troll", "handle": "troll", "role": "viewer"}
    assert listed[0]["user"] == troll_out


async def test_moderation_refusals_change_nothing(
    client: Client, shop: Shop, viewers: Open
) -> None:
    seller, viewer, moderator = (
        await shop.account("seller"),
        await shop.account(),
        await shop.account("moderator"),
    )
    stream = await shop.stream(seller)
    sid = stream["id"]
    speaker = await joined(viewers, sid, viewer)
    message = (await speaker.call("stream:chat", {"stream_id": sid, "text": "hi"}))["message"]
    sanctions = f"/api/v1/streams/{sid}/sanctions"
    refusals = [
        ("PUT", f"{sanctions}/{seller.id}/ban", viewer, 403, "forbidden"),
        ("PUT", f"{sanctions}/{seller.id}/ban", moderator, 409, "cannot_sanction"),
        ("PUT", f"{sanctions}/{moderator.id}/mute", seller, 409, "cannot_sanction"),
        ("PUT", f"{sanctions}/{viewer.id}/gag", seller, 422, "invalid"),
        ("PUT", f"{sanctions}/nobody/mute", seller, 404, "not_found"),
        ("DELETE", f"/api/v1/streams/{sid}/chat/{message['id']}", viewer, 403, "forbidden"),
        ("DELETE", f"/api/v1/streams/{sid}/chat/missing", seller, 404, "not_found"),
        ("GET", sanctions, viewer, 403, "forbidden"),
    ]
    async with shop.unchanged():
        for method, url, who, status, code in refusals:
            await expect_error(await client.request(method, url, headers=who.auth), status, code)
        reply = await speaker.call("moderation:ban", {"stream_id": sid, "user_id": viewer.id})
        assert reply["error"] == "forbidden"


async def test_delete_message_over_socket_and_rest(
    client: Client, shop: Shop, viewers: Open
) -> None:
    seller, author = await shop.account("seller"), await shop.account()
    stream = await shop.stream(seller)
    sid = stream["id"]
    speaker = await joined(viewers, sid, author)
    owner = await joined(viewers, sid, seller)
    one = (await speaker.call("stream:chat", {"stream_id": sid, "text": "one"}))["message"]
    two = (await speaker.call("stream:chat", {"stream_id": sid, "text": "two"}))["message"]
    assert (await owner.call("chat:delete", {"stream_id": sid, "message_id": one["id"]}))["ok"]
    assert (await speaker.wait_for("stream:chat_deleted"))["ids"] == [one["id"]]
    assert (
        await client.delete(f"/api/v1/streams/{sid}/chat/{two['id']}", headers=seller.auth)
    ).status == 204
    await speaker.wait_for("stream:chat_deleted", lambda d: d["ids"] == [two["id"]])
    assert await (await client.get(f"/api/v1/streams/{sid}/chat")).json() == []


async def test_reactions_are_aggregated(client: Client, shop: Shop, viewers: Open) -> None:
    seller = await shop.account("seller")
    stream = await shop.stream(seller)
    sid = stream["id"]
    tappers = [await joined(viewers, sid) for _ in range(3)]
    watcher = await joined(viewers, sid)
    for tapper in tappers:
        for emoji in [HEART] * 8 + [FIRE] * 2:
            assert (await tapper.call("stream:reaction", {"stream_id": sid, "emoji": emoji}))["ok"]
    await watcher.wait_for("stream:reactions")
    await asyncio.sleep(0.6)
    batches = watcher.received("stream:reactions")
    total: dict[str, int] = {}
    for batch in batches:
        for emoji, n in batch["counts"].items():
            total[emoji] = total.get(emoji, 0) + n
    assert total == {HEART: 24, FIRE: 6}
    assert len(batches) < 10, "reactions must be batched, not sent one by one"
    late = await viewers()
    state = await late.call("stream:join", {"stream_id": sid})
    assert state["reactions"] == {HEART: 24, FIRE: 6}
    bad = await tappers[0].call("stream:reaction", {"stream_id": sid, "emoji": "\U0001f4a9"})
    assert bad["error"] == "unknown_emoji"
    outsider = await viewers()
    assert (await outsider.call("stream:reaction", {"stream_id": sid, "emoji": HEART}))[
        "error"
    ] == "not_joined"


async def test_viewer_count_excludes_the_seller(client: Client, shop: Shop, viewers: Open) -> None:
    seller = await shop.account("seller")
    stream = await shop.stream(seller)
    sid = stream["id"]
    owner = await joined(viewers, sid, seller)
    crowd = [await joined(viewers, sid) for _ in range(3)]
    assert (await owner.wait_for("stream:viewers", lambda d: d["count"] == 3, within=4))[
        "stream_id"
    ] == sid
    await crowd[0].call("stream:leave", {"stream_id": sid})
    await crowd[1].close()
    await owner.wait_for("stream:viewers", lambda d: d["count"] == 1, within=5)


async def test_prepare_and_status_events(client: Client, shop: Shop, viewers: Open) -> None:
    seller = await shop.account("seller")
    stream = await shop.stream(seller)
    sid = stream["id"]
    waiting = await joined(viewers, sid)
    owner = await joined(viewers, sid, seller)
    assert (await waiting.call("stream:prepare", {"stream_id": sid}))["error"] == "forbidden"
    assert (await owner.call("stream:prepare", {"stream_id": sid, "countdown": 3}))["ok"]
    assert await waiting.wait_for("stream:status") == {
        "stream_id": sid,
        "status": "created",
        "preparing": True,
        "countdown": 3,
    }
    await go_live(client, sid)
    await waiting.wait_for("stream:status", lambda d: d["status"] == "live")
    assert (await client.post(f"/api/v1/streams/{sid}/end", headers=seller.auth)).status == 200
    await waiting.wait_for("stream:status", lambda d: d["status"] == "ended")
    reply = await waiting.call("stream:chat", {"stream_id": sid, "text": "bye"})
    assert reply["error"] == "sign_in_required"


async def test_scripted_show_analytics(client: Client, shop: Shop, viewers: Open) -> None:
    seller, ann, bob = await shop.account("seller"), await shop.account(), await shop.account()
    stream = await shop.stream(seller)
    sid = stream["id"]
    await go_live(client, sid)
    opened = time.monotonic()
    a = await joined(viewers, sid, ann)
    b = await joined(viewers, sid, bob)
    again = await joined(viewers, sid, ann)
    for n in range(3):
        assert (await a.call("stream:chat", {"stream_id": sid, "text": f"q{n}"}))["ok"]
    for _ in range(5):
        assert (await b.call("stream:reaction", {"stream_id": sid, "emoji": HEART}))["ok"]
    await a.wait_for("stream:viewers", lambda d: d["count"] == 3, within=4)
    await again.close()
    await asyncio.sleep(0.5)
    summary = await (await client.post(f"/api/v1/streams/{sid}/end", headers=seller.auth)).json()
    assert summary["peak_viewers"] == 3
    assert summary["unique_viewers"] == 2
    assert summary["total_likes"] == 5
    assert summary["chat_messages_count"] == 3
    # Three sessions, none longer than the show: the mean lies between 0 and the show's length.
    assert 0 < summary["average_watch_time"] <= time.monotonic() - opened
    columns = list(Base.metadata.tables["streams"].columns.keys())
    (row,) = [r for r in (await shop.snapshot())["streams"] if r[0] == sid]
    assert row[columns.index("watch_sessions")] == 3
    assert (await shop.snapshot())["stream_reactions"] == [(sid, HEART, 5)]


async def test_connection_refusals(client: Client, shop: Shop) -> None:
    url = str(client.make_url("/"))
    async with aiohttp.ClientSession() as http:

        async def connect(**kwargs: Any) -> socketio.AsyncClient:
            sio = socketio.AsyncClient(reconnection=False, http_session=http)
            await sio.connect(url, transports=["websocket"], wait_timeout=5, **kwargs)
            return sio

        for kwargs in (
            {"auth": {"token": "not-a-token"}},
            {"headers": {"Origin": "https://evil.example"}},
        ):
            with pytest.raises(socketio.exceptions.ConnectionError):
                await connect(**kwargs)
        allowed = await connect(headers={"Origin": "https://shop.example"})
        await allowed.disconnect()


async def test_audience_applies_to_rooms(client: Client, shop: Shop, viewers: Open) -> None:
    seller, fan, stranger = await shop.account("seller"), await shop.account(), await shop.account()
    await client.post(f"/api/v1/users/{seller.id}/follow", headers=fan.auth)
    stream = await shop.stream(seller, audience="followers")
    refused = await (await viewers(stranger)).call("stream:join", {"stream_id": stream["id"]})
    assert refused["error"] == "audience_restricted"
    anonymous = await (await viewers()).call("stream:join", {"stream_id": stream["id"]})
    assert anonymous["error"] == "audience_restricted"
    assert (await (await viewers(fan)).call("stream:join", {"stream_id": stream["id"]}))["ok"]


async def test_official_javascript_client(client: Client, shop: Shop, viewers: Open) -> None:
    seller, buyer = await shop.account("seller"), await shop.account()
    stream = await shop.stream(seller)
    watcher = await joined(viewers, stream["id"])
    node = await asyncio.create_subprocess_exec(
        "node",
        str(ROOT / "tests" / "js" / "socket_client.mjs"),
        str(client.make_url("/")),
        buyer.token,
        stream["id"],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(node.communicate(), 20)
    assert node.returncode == 0, err.decode()
    result = json.loads(out)
    assert result["joined"]["ok"] and result["joined"]["stream"]["id"] == stream["id"]
    assert result["chat"]["ok"] and result["chat"]["message"]["text"] == "hello from node"
    assert result["reaction"] == {"ok": True}
    events = {name for name, _ in result["seen"]}
    assert {"stream:chat", "stream:reactions"} <= events
    assert (await watcher.wait_for("stream:chat"))["user"]["id"] == buyer.id


async def test_turning_chat_off_reaches_open_rooms(
    client: Client, shop: Shop, viewers: Open
) -> None:
    seller, author = await shop.account("seller"), await shop.account()
    stream = await shop.stream(seller)
    sid = stream["id"]
    speaker = await joined(viewers, sid, author)
    assert (await speaker.call("stream:chat", {"stream_id": sid, "text": "before"}))["ok"]
    response = await client.patch(
        f"/api/v1/streams/{sid}/settings", json={"enable_chat": False}, headers=seller.auth
    )
    assert response.status == 200
    assert await speaker.wait_for("stream:settings") == {"stream_id": sid, "enable_chat": False}
    assert (await speaker.call("stream:chat", {"stream_id": sid, "text": "after"}))[
        "error"
    ] == "chat_disabled"


async def test_finished_streams_take_no_reactions_or_viewers(
    client: Client, shop: Shop, viewers: Open
) -> None:
    seller = await shop.account("seller")
    stream = await shop.stream(seller)
    sid = stream["id"]
    await go_live(client, sid)
    early = await joined(viewers, sid)
    assert (await client.post(f"/api/v1/streams/{sid}/end", headers=seller.auth)).status == 200
    await early.wait_for("stream:status", lambda d: d["status"] == "ended")
    late = await joined(viewers, sid)
    reply = await late.call("stream:reaction", {"stream_id": sid, "emoji": HEART})
    assert reply["error"] == "stream_ended"
    assert (await late.call("stream:join", {"stream_id": sid}))["viewers"] == 0


async def test_socket_payloads_are_strict(client: Client, shop: Shop, viewers: Open) -> None:
    seller = await shop.account("seller")
    stream = await shop.stream(seller)
    viewer = await viewers()
    for payload in (
        {"stream_id": 5},
        {"stream_id": stream["id"], "extra": True},
        [stream["id"]],
        None,
    ):
        assert (await viewer.call("stream:join", payload))["error"] == "invalid"


async def test_busy_chat_is_batched_in_order(client: Client, shop: Shop, viewers: Open) -> None:
    seller = await shop.account("seller")
    stream = await shop.stream(seller)
    sid = stream["id"]
    watcher = await joined(viewers, sid)
    speakers = [await joined(viewers, sid, await shop.account()) for _ in range(3)]
    sent = await asyncio.gather(
        *(
            speaker.call("stream:chat", {"stream_id": sid, "text": f"{n}-{i}"})
            for i in range(3)
            for n, speaker in enumerate(speakers)
        )
    )
    assert all(reply["ok"] for reply in sent)
    ids = [reply["message"]["id"] for reply in sent]

    def seen() -> list[str]:
        singles = [m["id"] for m in watcher.received("stream:chat")]
        batched = [m["id"] for b in watcher.received("stream:chat_batch") for m in b["messages"]]
        return singles + batched

    await watcher.wait_for("stream:chat_batch", lambda b: len(seen()) == 9, within=3)
    assert sorted(seen()) == sorted(ids)
    frames = len(watcher.received("stream:chat")) + len(watcher.received("stream:chat_batch"))
    assert frames < 9, "lines sent together must share frames"


async def test_a_socket_that_leaves_while_joining_is_not_counted(
    client: Client, shop: Shop, viewers: Open, monkeypatch: pytest.MonkeyPatch
) -> None:
    seller = await shop.account("seller")
    stream = await shop.stream(seller)
    realtime = client.app[SERVICES].rooms
    leaving = await viewers()
    (sid,) = realtime.members
    history = realtime_module.chat.history

    async def slow_history(*args: Any) -> Any:
        await realtime._disconnect(sid)  # the socket goes while the join reads the database
        return await history(*args)

    monkeypatch.setattr(realtime_module.chat, "history", slow_history)
    reply = await leaving.call("stream:join", {"stream_id": stream["id"]})
    assert reply == {"ok": False, "error": "not_connected"}
    room = realtime.rooms[stream["id"]]
    assert sid not in room.members and not room.viewers
