"""Security review, as tests: what the server exposes in headers, responses and logs.

HSTS over TLS is checked by tests/server/test_tls.py.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from peers.webrtc import ViewerPeer
from server.app import build_app
from server.settings import Settings
from tests.badinput.test_sdp import live_stream
from tests.conftest import Shop
from tests.socket_client import Viewer
from twins.objectstore import S3Storage

Client = TestClient[Any, Any]
JWT_SECRET = "jwt-secret-" + "j" * 32
TURN_SECRET = "turn-secret-" + "t" * 20
S3_SECRET = "s3-secret-" + "s" * 20
TURN_TTL = 600
URL_ID = re.compile(r"^[A-Za-z0-9_-]{22}$")


class Recorder:
    """Every response of a session, headers and body, to search for secrets afterwards."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.seen: list[str] = []

    async def __call__(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.client.request(method, path, **kwargs)
        body = await response.text()
        self.seen.append(f"{method} {path} {response.status}\n{response.headers}\n{body}")
        return response


@pytest.fixture
async def exposed(fuzz_settings: Settings, aiohttp_client: Any) -> Client:
    settings = fuzz_settings.model_copy(
        update={
            "jwt_secret": SecretStr(JWT_SECRET),
            "turn_secret": SecretStr(TURN_SECRET),
            "turn_ttl_seconds": TURN_TTL,
            "ice_servers": ["stun:stun.shop.example:3478", "turn:turn.shop.example:3478"],
            "s3_secret_key": SecretStr(S3_SECRET),
            "log_level": "DEBUG",
        }
    )
    client: Client = await aiohttp_client(build_app(settings))
    return client


async def test_secrets_stay_out_of_responses_and_logs(
    exposed: Client, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    shop = Shop(exposed, database_url)
    call = Recorder(exposed)
    sid, publish_token, publisher = await live_stream(exposed, shop)
    buyer = await shop.account()
    login = await call(
        "POST", "/api/v1/auth/login", json={"email": buyer.email, "password": buyer.password}
    )
    access = (await login.json())["access_token"]
    await call(
        "POST",
        "/api/v1/auth/login",
        json={"email": buyer.email, "password": "wrong " + buyer.password},
    )
    for path in (
        "/api/v1/me",
        f"/api/v1/streams/{sid}",
        "/api/v1/streams",
        "/metrics",
        "/healthz",
        "/readyz",
        "/api/openapi.json",
        "/nope",
    ):
        await call("GET", path, headers={"Authorization": f"Bearer {access}"})
    viewer = ViewerPeer(record=False)
    watched = await call(
        "POST",
        f"/whep/{sid}",
        data=await viewer.offer(),
        headers={"Content-Type": "application/sdp"},
    )
    await viewer.accept(await watched.text())
    await call(
        "POST",
        f"/whip/{sid}",
        data="v=0\r\n",
        headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {publish_token}x"},
    )
    chatter = await Viewer().connect(str(exposed.make_url("/")), token=access)
    await chatter.call("stream:join", {"stream_id": sid})
    await chatter.call("stream:chat", {"stream_id": sid, "text": "hello"})
    await chatter.close()
    await viewer.close()
    await publisher.close()

    responses = "\n".join(call.seen)
    logs = "\n".join(f"{r.getMessage()} {r.exc_text or ''} {r.args}" for r in caplog.records)
    never = {
        "JWT secret": JWT_SECRET,
        "TURN secret": TURN_SECRET,
        "S3 secret": S3_SECRET,
        "a password": buyer.password,
        "a wrong password": "wrong " + buyer.password,
        "a password hash": "$argon2",
        "a publish token": publish_token,
    }
    for what, secret in never.items():
        assert secret not in responses, f"{what} in a response"
        assert secret not in logs, f"{what} in the logs"
    assert access not in logs, "an access token in the logs"
    assert caplog.records, "the logs were captured"


async def test_turn_credentials_are_time_limited(exposed: Client, database_url: str) -> None:
    shop = Shop(exposed, database_url)
    seller = await shop.account("seller")
    sid = (await shop.stream(seller))["id"]
    before = time.time()
    live = await (await exposed.post(f"/api/v1/streams/{sid}/go-live", headers=seller.auth)).json()
    turn = [s for s in live["ice_servers"] if str(s["urls"]).startswith("turn:")]
    assert turn, live["ice_servers"]
    for server in turn:
        expiry, _, user = server["username"].partition(":")
        assert before + TURN_TTL - 5 <= int(expiry) <= time.time() + TURN_TTL, "expires in the TTL"
        assert user and user != seller.email
        digest = hmac.new(TURN_SECRET.encode(), server["username"].encode(), hashlib.sha1).digest()
        assert server["credential"] == base64.b64encode(digest).decode()
    stun = [s for s in live["ice_servers"] if str(s["urls"]).startswith("stun:")]
    assert all(s.get("credential") is None for s in stun)


async def test_presigned_urls_are_short_lived() -> None:
    store = S3Storage(
        bucket="b",
        endpoint_url="http://127.0.0.1:9",
        region="us-east-1",
        access_key="key",
        secret_key=S3_SECRET,
    )
    url = await store.url_for("vod/x/vod.m3u8")
    query = parse_qs(urlsplit(url).query)
    assert int(query["X-Amz-Expires"][0]) <= 3600
    assert S3_SECRET not in url


async def test_headers_of_pages_api_and_errors(node: Client, shop: Shop) -> None:
    sid, _, publisher = await live_stream(node, shop)
    for path in ("/", "/studio", f"/watch/{sid}", "/admin", "/api/docs"):
        page = await node.get(path)
        assert page.status == 200, path
        csp = page.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp, path
        assert (
            "unsafe-eval" not in csp
            and "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]
        )
        assert page.headers["X-Frame-Options"] == "DENY"
    for path in (
        "/",
        "/api/v1/streams",
        f"/api/v1/streams/{sid}",
        "/nope",
        "/api/openapi.json",
        f"/hls/{sid}/index.m3u8",
        "/metrics",
        "/socket.io/?EIO=4&transport=polling",
    ):
        response = await node.get(path)
        assert "Server" not in response.headers, f"{path} names the server"
        assert response.headers.get("X-Content-Type-Options") == "nosniff", path
        assert response.status < 500, path
    await publisher.close()


async def test_ids_in_urls_are_unguessable(node: Client, shop: Shop) -> None:
    sid, token, publisher = await live_stream(node, shop)
    seller = await shop.account("seller")
    products = [(await shop.product(seller))["id"] for _ in range(20)]
    streams = [(await shop.stream(seller))["id"] for _ in range(20)]
    viewer = ViewerPeer(record=False)
    watched = await node.post(
        f"/whep/{sid}", data=await viewer.offer(), headers={"Content-Type": "application/sdp"}
    )
    session = watched.headers["Location"].rsplit("/", 1)[1]
    ids = [sid, seller.id, session, *products, *streams]
    assert all(URL_ID.match(i) for i in ids), ids  # 22 URL-safe characters: 128 random bits
    assert len(set(ids)) == len(ids)
    assert len(token) >= 43, "publish tokens carry at least 256 bits"
    await viewer.close()
    await publisher.close()
