"""Behind the operator's proxy each client keeps its own rate limits; without a trusted proxy a
forged X-Forwarded-For changes nothing (SQLite and PostgreSQL)."""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from api.web.proxies import client_address
from server.app import build_app
from server.settings import Settings
from tests.conftest import Shop

Client = TestClient[Any, Any]


async def login_statuses(client: Client, email: str, forwarded_for: str, tries: int) -> list[int]:
    body = {"email": email, "password": "wrong password"}
    headers = {"X-Forwarded-For": forwarded_for}
    return [
        (await client.post("/api/v1/auth/login", json=body, headers=headers)).status
        for _ in range(tries)
    ]


@pytest.mark.parametrize("trusted", [True, False])
async def test_rate_limits_follow_the_client_behind_a_trusted_proxy(
    settings: Settings,
    aiohttp_client: Callable[..., Awaitable[Client]],
    database_url: str,
    trusted: bool,
) -> None:
    settings.auth_burst = 2
    settings.auth_attempts_per_minute = 1
    if trusted:
        settings.trusted_proxies = ["127.0.0.0/8"]  # the test client is the proxy
    client = await aiohttp_client(build_app(settings))
    account = await Shop(client, database_url).account()
    first = await login_statuses(client, account.email, "198.51.100.7", 3)
    assert first == [401, 401, 429]
    other = await login_statuses(client, account.email, "192.0.2.1, 198.51.100.8", 1)
    # Trusted: another client's allowance. Not trusted: the header is anyone's to forge.
    assert other == ([401] if trusted else [429])


def test_the_nearest_untrusted_hop_is_the_client() -> None:
    proxies = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8::/32")]
    assert client_address("10.0.0.5", "203.0.113.9, 10.1.1.1", proxies) == "203.0.113.9"
    assert client_address("10.0.0.5", "198.51.100.1, 203.0.113.9", proxies) == "203.0.113.9"
    assert client_address("203.0.113.50", "198.51.100.1", proxies) == "203.0.113.50"
    assert client_address("10.0.0.5", "", proxies) == "10.0.0.5"
    assert client_address("10.0.0.5", "10.2.2.2", proxies) == "10.0.0.5"
    assert client_address("10.0.0.5", "not-an-address", proxies) == "10.0.0.5"
    assert client_address("2001:db8::1", "2001:0db8:0::2, 2a00::1", proxies) == "2a00::1"
    assert client_address("10.0.0.5", "203.0.113.9", []) == "10.0.0.5"
