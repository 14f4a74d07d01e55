"""A socket acts as the account is now, not as it was at connect (issue 14): a demoted
moderator's socket moderates nothing, a deleted account's socket ends, and so does one whose
token expired; and one socket cannot count as a viewer in every show. On SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp.test_utils import TestClient

from api.realtime.sockets import MAX_ROOMS_PER_SOCKET
from api.web.context import SERVICES
from tests.api.test_commerce import live_show
from tests.conftest import Shop, eventually

Client = TestClient[Any, Any]


async def test_a_demoted_moderator_moderates_nothing(
    client: Client, shop: Shop, viewers: Any
) -> None:
    admin, moderator, troll = (
        await shop.account("admin"),
        await shop.account("moderator"),
        await shop.account(),
    )
    _, sid, _ = await live_show(client, shop)
    socket = await viewers(moderator)
    assert (await socket.call("stream:join", {"stream_id": sid}))["ok"]
    demoted = await client.patch(
        f"/api/v1/users/{moderator.id}", json={"role": "viewer"}, headers=admin.auth
    )
    assert demoted.status == 200
    async with shop.unchanged():
        ban = await socket.call("moderation:ban", {"stream_id": sid, "user_id": troll.id})
        assert ban["ok"] is False and ban["error"] == "forbidden", ban
        slow = await socket.call("moderation:slow_mode", {"stream_id": sid, "seconds": 30})
        assert slow["ok"] is False and slow["error"] == "forbidden", slow


async def test_a_deleted_accounts_socket_ends(client: Client, shop: Shop, viewers: Any) -> None:
    viewer = await shop.account()
    _, sid, _ = await live_show(client, shop)
    socket = await viewers(viewer)
    await shop.execute("DELETE FROM users WHERE id = :id", id=viewer.id)
    joined = await socket.call("stream:join", {"stream_id": sid})
    assert joined == {"ok": False, "error": "unauthorized", "message": joined["message"]}
    await eventually(lambda: not socket.sio.connected, 5, "the socket stayed open")


async def test_a_socket_ends_with_its_token(client: Client, shop: Shop, viewers: Any) -> None:
    viewer = await shop.account()
    _, sid, _ = await live_show(client, shop)
    tokens = client.app[SERVICES].tokens
    # A token issued so long ago that it expires soon: long enough to connect and join on a
    # loaded machine (a second was not).
    expires = time.time() + 10
    token = tokens.issue(viewer.id, now=expires - tokens.ttl_seconds)
    socket = await viewers(token=token)
    assert (await socket.call("stream:join", {"stream_id": sid}))["ok"]
    await asyncio.sleep(expires - time.time() + 0.5)
    chat = await socket.call("stream:chat", {"stream_id": sid, "text": "still here?"})
    assert chat == {"ok": False, "error": "unauthorized", "message": "the token expired"}
    await eventually(lambda: not socket.sio.connected, 5, "the socket outlived its token")


async def test_a_socket_joins_a_few_shows_only(client: Client, shop: Shop, viewers: Any) -> None:
    seller = await shop.account("seller")
    shows = [(await shop.stream(seller))["id"] for _ in range(MAX_ROOMS_PER_SOCKET + 1)]
    socket = await viewers()
    for sid in shows[:-1]:
        assert (await socket.call("stream:join", {"stream_id": sid}))["ok"]
    refused = await socket.call("stream:join", {"stream_id": shows[-1]})
    assert refused["ok"] is False and refused["error"] == "too_many_rooms", refused
    assert (await socket.call("stream:join", {"stream_id": shows[0]}))["ok"], "a rejoin is fine"
    assert (await socket.call("stream:leave", {"stream_id": shows[0]}))["ok"]
    assert (await socket.call("stream:join", {"stream_id": shows[-1]}))["ok"]
