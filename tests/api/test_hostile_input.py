"""Hostile input an attacker sent a running node (issue 14): each answered with the JSON error
and the right status, never a 500, and nothing stored, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from server.app import build_app
from server.http import AppRunner
from server.settings import Settings
from tests.api.test_commerce import live_show
from tests.conftest import Shop, expect_error

Client = TestClient[Any, Any]
JSON = {"Content-Type": "application/json"}


async def raw_request(client: Client, head: bytes, body: bytes = b"") -> tuple[int, Any]:
    """Send bytes an HTTP client library would refuse to; return the status and JSON body."""
    length = f"Content-Length: {len(body)}\r\n".encode()
    request = head + length + b"Connection: close\r\n\r\n" + body
    status, _, payload = await raw_exchange(client.server.host, client.server.port, request)
    return status, payload


async def raw_exchange(host: str, port: int, request: bytes) -> tuple[int, bytes, Any]:
    """Send ``request`` as it is; the status, the head and the JSON body of the answer."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request)
        await writer.drain()
        response = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    header, _, payload = response.partition(b"\r\n\r\n")
    assert b"application/json" in header, header
    return int(header.split(b" ", 2)[1]), header, json.loads(payload)


class ServedServer(TestServer):
    """The test server, on the runner `shopcast serve` uses."""

    async def _make_runner(self, **kwargs: Any) -> web.BaseRunner:
        return AppRunner(self.app, **kwargs)


async def test_requests_aiohttp_cannot_parse(
    settings: Settings, database_url: str, aiohttp_client: Any
) -> None:
    # aiohttp refuses these itself, before any route: the server's runner answers them in JSON.
    client: Client = await aiohttp_client(ServedServer(build_app(settings)))
    shop = Shop(client, database_url)
    seller = await shop.account("seller")
    host, port = client.server.host, client.server.port
    async with shop.unchanged():
        for request in (
            b"GET /api/v1/users/me HTTP/1.1\r\nHost: shop\r\nno colon here\r\n\r\n",
            b"GET /healthz HTTP/1.1\r\nHost: shop\r\nX-Long: " + b"a" * 10_000 + b"\r\n\r\n",
            b"G\x00T /healthz HTTP/1.1\r\nHost: shop\r\n\r\n",
            b"GET /healthz HTTP/9.7\r\nHost: shop\r\n\r\n",
            b"POST /api/v1/products HTTP/1.1\r\nHost: shop\r\n"
            + f"Authorization: Bearer {seller.token}\r\n".encode()
            + b"Content-Length: 5\r\nContent-Length: 7\r\n\r\n{}",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(32),
        ):
            status, head, body = await raw_exchange(host, port, request)  # and it closes
            assert (status, body["error"]) == (400, "bad_request"), request[:40]
            assert set(body) == {"error", "message"}
            assert b"nosniff" in head and b"Server:" not in head
    assert (await client.get("/healthz")).status == 200, "the node keeps serving"


async def test_header_bytes_that_are_not_text(client: Client, shop: Shop) -> None:
    _, sid, (pid,) = await live_show(client, shop)
    buyer = await shop.account()
    async with shop.unchanged():
        status, body = await raw_request(
            client,
            b"GET /api/v1/users/me HTTP/1.1\r\nHost: shop\r\nAuthorization: Bearer \xff\xfe\r\n",
        )
        assert (status, body["error"]) == (401, "unauthorized")
        status, body = await raw_request(
            client,
            f"POST /whep/{sid} HTTP/1.1\r\nHost: shop\r\nContent-Type: application/sdp\r\n".encode()
            + b"Authorization: Bearer \xc3\x28\r\n",
            b"v=0\r\n",
        )
        assert (status, body["error"]) == (401, "unauthorized")
        status, body = await raw_request(
            client,
            f"GET /hls/{sid}/index.m3u8 HTTP/1.1\r\nHost: shop\r\n".encode() + b"X-Note: \xff\r\n",
        )
        assert (status, body["error"]) == (400, "invalid_header")
        order = json.dumps({"product_id": pid, "quantity": 1}).encode()
        status, body = await raw_request(
            client,
            f"POST /api/v1/streams/{sid}/orders HTTP/1.1\r\nHost: shop\r\n".encode()
            + f"Authorization: Bearer {buyer.token}\r\nContent-Type: application/json\r\n".encode()
            + b"Idempotency-Key: \xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8\r\n",
            order,
        )
        assert (status, body["error"]) == (400, "invalid_header")


async def test_bodies_nested_too_deeply_or_with_huge_numbers(client: Client, shop: Shop) -> None:
    seller = await shop.account("seller")
    deep = b'{"title": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    huge = b'{"title": "Mug", "price_cents": ' + b"9" * 5000 + b', "stock": 1}'
    async with shop.unchanged():
        for body in (deep, huge):
            response = await client.post(
                "/api/v1/products", data=body, headers={**seller.auth, **JSON}
            )
            await expect_error(response, 400, "invalid_json")


async def test_nul_in_text_is_refused(client: Client, shop: Shop, viewers: Any) -> None:
    seller = await shop.account("seller")
    async with shop.unchanged():
        for field, value in (("title", "Mug\x00"), ("description", "a\x00b")):
            body = {"title": "Mug", "price_cents": 100, "stock": 1, field: value}
            response = await client.post("/api/v1/products", json=body, headers=seller.auth)
            await expect_error(response, 422, "invalid")
        response = await client.post(
            "/api/v1/auth/register",
            json={"email": "nul@example.com", "password": "long enough", "display_name": "\x00"},
        )
        await expect_error(response, 422, "invalid")
    _, sid, _ = await live_show(client, shop)
    chatter = await shop.account()
    socket = await viewers(chatter)
    assert (await socket.call("stream:join", {"stream_id": sid}))["ok"]
    ack = await socket.call("stream:chat", {"stream_id": sid, "text": "hi\x00there"})
    assert ack == {"ok": False, "error": "invalid", "message": ack["message"]}
