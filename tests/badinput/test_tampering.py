"""Tampered tokens, oversized bodies, floods against the rate limits and foreign origins:
each gets a clear JSON refusal, nothing changes, and the process keeps serving."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import secrets
import time
from typing import Any

import jwt
import pytest
import socketio
from aiohttp.test_utils import TestClient

from server.app import build_app
from server.settings import Settings
from tests.api.test_commerce import buy, live_show
from tests.badinput.test_sdp import live_stream
from tests.conftest import Shop, expect_error
from tests.socket_client import Viewer

Client = TestClient[Any, Any]
SDP = {"Content-Type": "application/sdp"}


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def tampered(token: str, secret: str) -> dict[str, str]:
    """Forgeries of a real access token, by name."""
    claims = jwt.decode(token, secret, algorithms=["HS256"])
    header, payload, signature = token.split(".")
    now = int(time.time())
    return {
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.",
        "alg none, no dot": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}",
        "wrong key": jwt.encode(claims, "not-the-secret-" + "x" * 32, algorithm="HS256"),
        "HS512 with the right key": jwt.encode(claims, secret, algorithm="HS512"),
        "expired": jwt.encode({**claims, "iat": now - 7200, "exp": now - 3600}, secret),
        "no expiry": jwt.encode({k: v for k, v in claims.items() if k != "exp"}, secret),
        "another subject, same signature": (
            f"{header}.{_b64({**claims, 'sub': 'x' * 22})}.{signature}"
        ),
        "truncated": token[: len(token) - 5],
        "signature dropped": f"{header}.{payload}.",
        "empty": "",
        "garbage": secrets.token_urlsafe(40),
    }


async def test_tampered_tokens_are_refused(
    node: Client, shop: Shop, fuzz_settings: Settings
) -> None:
    seller = await shop.account("seller")
    forgeries = tampered(seller.token, fuzz_settings.ensure_jwt_secret())
    async with shop.unchanged():
        for name, token in forgeries.items():
            auth = {"Authorization": f"Bearer {token}"}
            me = await node.get("/api/v1/me", headers=auth)
            await expect_error(me, 401, "unauthorized")
            created = await node.post(
                "/api/v1/products", json={"title": name, "price_cents": 1, "stock": 1}, headers=auth
            )
            await expect_error(created, 401, "unauthorized")
            if token:
                with pytest.raises(socketio.exceptions.ConnectionError):
                    await Viewer().connect(str(node.make_url("/")), token=token)
    assert (await node.get("/api/v1/me", headers=seller.auth)).status == 200


async def test_tampered_publish_tokens_are_refused(node: Client, shop: Shop) -> None:
    sid, token, publisher = await live_stream(node, shop)
    other = await shop.account("seller")
    other_sid = (await shop.stream(other))["id"]
    other_token = (
        await (await node.post(f"/api/v1/streams/{other_sid}/go-live", headers=other.auth)).json()
    )["publish_token"]
    offer = "v=0\r\n"  # never parsed: the token is checked first
    async with shop.unchanged():
        for bad in (token[:-1], token + "x", other.token, "", "none"):
            response = await node.post(
                f"/whip/{sid}", data=offer, headers={**SDP, "Authorization": f"Bearer {bad}"}
            )
            await expect_error(response, 401, "unauthorized")
        response = await node.post(
            f"/whip/{sid}", data=offer, headers={**SDP, "Authorization": f"Bearer {other_token}"}
        )
        assert response.status in (401, 403), await response.text()
    await publisher.close()


async def test_oversized_bodies_are_413(node: Client, shop: Shop, fuzz_settings: Settings) -> None:
    seller, sid, _ = await live_show(node, shop)
    watcher = await Viewer().connect(str(node.make_url("/")), token=seller.token)
    big_socket = await Viewer().connect(str(node.make_url("/")), token=seller.token)
    try:
        async with shop.unchanged():
            fields = {"title": "x" * fuzz_settings.max_body_bytes, "price_cents": 1, "stock": 1}
            huge = io.BytesIO(json.dumps(fields).encode())
            headers = {**seller.auth, "Content-Type": "application/json"}
            response = await node.post("/api/v1/products", data=huge, headers=headers)
            await expect_error(response, 413, "payload_too_large")
            offer = io.BytesIO(b"v=0\r\n" + b"a=x\r\n" * 20_000)
            await expect_error(
                await node.post(f"/whep/{sid}", data=offer, headers=SDP), 413, "payload_too_large"
            )
            # A Socket.IO message over 64 KiB ends that connection only.
            await big_socket.sio.emit("stream:chat", {"stream_id": sid, "text": "x" * 70_000})
            await asyncio.sleep(0.5)
            assert not big_socket.sio.connected
        assert (await watcher.call("stream:join", {"stream_id": sid}))["ok"]
    finally:
        await watcher.close()
        await big_socket.close()


@pytest.fixture
async def strict_node(fuzz_settings: Settings, aiohttp_client: Any) -> Client:
    """A node with the default (small) sign-in burst."""
    settings = fuzz_settings.model_copy(update={"auth_burst": 5})
    client: Client = await aiohttp_client(build_app(settings))
    return client


async def test_floods_meet_the_rate_limits(strict_node: Client, database_url: str) -> None:
    node = strict_node
    shop = Shop(node, database_url)
    logins = [
        await node.post("/api/v1/auth/login", json={"email": "a@example.com", "password": "wrong"})
        for _ in range(12)
    ]
    limited = [r for r in logins if r.status == 429]
    assert limited and all(r.status in (401, 429) for r in logins)
    body = await expect_error(limited[0], 429, "rate_limited")
    assert int(limited[0].headers["Retry-After"]) >= 1 and body["message"]

    await asyncio.sleep(max(int(limited[0].headers["Retry-After"]), 1) * 2)  # the bucket refills
    seller, sid, (pid,) = await live_show(node, shop, stock=100)
    buyer = await shop.account()
    orders = [await buy(node, sid, buyer, pid) for _ in range(12)]
    placed = [r for r in orders if r.status == 201]
    refused = [r for r in orders if r.status == 429]
    assert placed and refused and len(placed) + len(refused) == len(orders)
    assert int(refused[0].headers["Retry-After"]) >= 1
    product = await (await node.get(f"/api/v1/products/{pid}", headers=seller.auth)).json()
    assert product["stock"] == 100 - len(placed), "a refused order took stock"

    chatter = await Viewer().connect(str(node.make_url("/")), token=buyer.token)
    try:
        assert (await chatter.call("stream:join", {"stream_id": sid}))["ok"]
        acks = [
            await chatter.call("stream:chat", {"stream_id": sid, "text": f"{n}"}) for n in range(30)
        ]
        refusals = [a for a in acks if not a["ok"]]
        assert refusals and all(
            a["error"] == "rate_limited" and a["retry_after"] > 0 for a in refusals
        )
        history = await (await node.get(f"/api/v1/streams/{sid}/chat?limit=100")).json()
        assert len(history) == sum(a["ok"] for a in acks), "a refused line was stored"
    finally:
        await chatter.close()
    assert (await node.get("/readyz")).status == 200


async def test_foreign_origins_get_no_cors(node: Client, shop: Shop) -> None:
    sid, _, publisher = await live_stream(node, shop)
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "Authorization, Content-Type",
    }
    for path in ("/api/v1/products", f"/whip/{sid}", "/api/v1/auth/login"):
        foreign = await node.options(path, headers={**preflight, "Origin": "https://evil.example"})
        assert "Access-Control-Allow-Origin" not in foreign.headers, path
        assert foreign.status in (200, 204, 403), path
        ours = await node.options(path, headers={**preflight, "Origin": "https://shop.example"})
        assert ours.headers.get("Access-Control-Allow-Origin") == "https://shop.example", path
    # WHEP plays on any site, but never with the browser's credentials (nothing sends cookies).
    whep = await node.options(
        f"/whep/{sid}", headers={**preflight, "Origin": "https://evil.example"}
    )
    assert whep.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in whep.headers
    with pytest.raises(socketio.exceptions.ConnectionError):
        client = socketio.AsyncClient(reconnection=False)
        try:
            await client.connect(
                str(node.make_url("/")),
                headers={"Origin": "https://evil.example"},
                transports=["websocket"],
                wait_timeout=5,
            )
        finally:
            await client.disconnect()
    await publisher.close()
