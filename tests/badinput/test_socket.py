"""Hypothesis-generated Socket.IO payloads: every event acks a refusal (or does its job), the
connection survives, and a refusal changes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import strategies as st

from tests.api.test_commerce import live_show
from tests.badinput.conftest import SHARED_RANDOM, fuzz
from tests.badinput.test_rest import json_values
from tests.conftest import Shop
from tests.socket_client import Viewer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120), SHARED_RANDOM]
Client = TestClient[Any, Any]

EVENTS = {
    "stream:join": [],
    "stream:leave": [],
    "stream:chat": ["text"],
    "stream:reaction": ["emoji"],
    "stream:prepare": ["countdown"],
    "chat:delete": ["message_id"],
    "moderation:mute": ["user_id"],
    "moderation:ban": ["user_id"],
    "moderation:unban": ["user_id"],
    "moderation:slow_mode": ["seconds"],
    "auction:bid": ["auction_id", "amount_cents", "seen_cents", "anonymous"],
}


def payloads(stream_id: str, user_id: str) -> st.SearchStrategy[tuple[str, Any]]:
    names = st.sampled_from(sorted(EVENTS))

    def shaped(event: str) -> st.SearchStrategy[Any]:
        known = st.sampled_from([stream_id, user_id, "x" * 22, ""])
        fields = {name: known | json_values for name in ["stream_id", *EVENTS[event]]}
        extra = {"extra": json_values}
        return st.fixed_dictionaries({}, optional={**fields, **extra}) | json_values

    return names.flatmap(lambda event: st.tuples(st.just(event), shaped(event)))


@pytest.mark.parametrize("who", ["seller", "buyer"])
async def test_fuzzed_socket_payloads(node: Client, shop: Shop, who: str) -> None:
    seller, sid, _ = await live_show(node, shop)
    buyer = await shop.account()
    account = seller if who == "seller" else buyer
    socket = await Viewer().connect(str(node.make_url("/")), token=account.token)
    try:
        assert (await socket.call("stream:join", {"stream_id": sid}))["ok"]

        async def send(event_and_data: tuple[str, Any]) -> None:
            event, data = event_and_data
            before = await shop.snapshot()
            ack = await socket.call(event, data)
            assert isinstance(ack.get("ok"), bool), ack
            if not ack["ok"]:
                assert isinstance(ack["error"], str) and ack["error"] != "internal", ack
                assert await shop.snapshot() == before, f"a refused {event} wrote"
            assert socket.sio.connected

        await fuzz(send, examples=60, event_and_data=payloads(sid, buyer.id))
        await socket.call("stream:join", {"stream_id": sid})
        chat = await socket.call("stream:chat", {"stream_id": sid, "text": "still here"})
        assert chat["ok"] or chat["error"] in ("rate_limited", "slow_mode", "muted", "banned")
    finally:
        await socket.close()
