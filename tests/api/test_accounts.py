from collections.abc import Awaitable, Callable
from typing import Any

import jwt
from aiohttp.test_utils import TestClient

from server.app import build_app
from server.settings import Settings
from tests.conftest import Shop, expect_error

Client = TestClient[Any, Any]


async def test_register_returns_user_and_working_token(client: Client) -> None:
    body = {"email": "Ana@Example.com", "password": "long enough", "display_name": " Ana "}
    response = await client.post("/api/v1/auth/register", json=body)
    assert response.status == 201
    data = await response.json()
    assert data["user"]["email"] == "ana@example.com"
    assert data["user"]["display_name"] == "Ana"
    assert data["user"]["role"] == "viewer"
    assert data["token_type"] == "bearer"
    assert data["expires_in"] > 0
    assert "password" not in str(data["user"])
    me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {data['access_token']}"})
    assert me.status == 200
    assert (await me.json())["id"] == data["user"]["id"]


async def test_register_as_seller_with_neighborhood(client: Client) -> None:
    body = {
        "email": "s@example.com",
        "password": "long enough",
        "display_name": "S",
        "role": "seller",
        "neighborhood": "Kreuzberg",
    }
    data = await (await client.post("/api/v1/auth/register", json=body)).json()
    assert data["user"]["role"] == "seller"
    assert data["user"]["neighborhood"] == "Kreuzberg"


async def test_register_refuses_staff_roles_and_bad_fields(client: Client, shop: Shop) -> None:
    cases = [
        {"email": "a@example.com", "password": "long enough", "display_name": "A", "role": "admin"},
        {
            "email": "a@example.com",
            "password": "long enough",
            "display_name": "A",
            "role": "moderator",
        },
        {"email": "not-an-email", "password": "long enough", "display_name": "A"},
        {"email": "a@example.com", "password": "short", "display_name": "A"},
        {"email": "a@example.com", "password": "long enough", "display_name": "   "},
        {"email": "a@example.com", "password": "long enough", "display_name": "A", "extra": 1},
        {"email": "a@example.com", "password": "long enough"},
    ]
    async with shop.unchanged():
        for body in cases:
            response = await client.post("/api/v1/auth/register", json=body)
            await expect_error(response, 422, "invalid")


async def test_emails_reserved_from_mail_are_refused_in_words(client: Client, shop: Shop) -> None:
    """The same rule as `shopcast create-admin` (tests/server/test_cli.py)."""
    body = {"email": "admin@shop.test", "password": "long enough", "display_name": "A"}
    async with shop.unchanged():
        refused = await expect_error(
            await client.post("/api/v1/auth/register", json=body), 422, "invalid"
        )
        assert refused["message"] == (
            "email: The part after the @-sign is a special-use or reserved name that cannot be "
            "used with email."
        )
        login = {"email": "admin@shop.test", "password": "long enough"}
        await expect_error(await client.post("/api/v1/auth/login", json=login), 422, "invalid")
    accepted = await client.post(
        "/api/v1/auth/register", json={**body, "email": " Ann@Example.COM "}
    )
    assert accepted.status == 201 and (await accepted.json())["user"]["email"] == "ann@example.com"


async def test_register_duplicate_email_is_409(client: Client, shop: Shop) -> None:
    account = await shop.account()
    body = {"email": account.email.upper(), "password": "long enough", "display_name": "B"}
    async with shop.unchanged():
        await expect_error(
            await client.post("/api/v1/auth/register", json=body), 409, "email_taken"
        )


async def test_login(client: Client, shop: Shop) -> None:
    account = await shop.account("seller")
    ok = await client.post(
        "/api/v1/auth/login", json={"email": account.email, "password": account.password}
    )
    assert ok.status == 200
    data = await ok.json()
    assert data["user"]["id"] == account.id
    assert (
        await client.get("/api/v1/me", headers={"Authorization": f"Bearer {data['access_token']}"})
    ).status == 200
    for body in (
        {"email": account.email, "password": "wrong password"},
        {"email": "nobody@example.com", "password": "correct horse"},
    ):
        await expect_error(
            await client.post("/api/v1/auth/login", json=body), 401, "invalid_credentials"
        )


async def test_auth_endpoints_are_rate_limited(
    settings: Settings, database_url: str, aiohttp_client: Callable[..., Awaitable[Client]]
) -> None:
    settings.auth_attempts_per_minute = 1
    settings.auth_burst = 3
    client = await aiohttp_client(build_app(settings))
    body = {"email": "nobody@example.com", "password": "whatever1"}
    statuses = [(await client.post("/api/v1/auth/login", json=body)).status for _ in range(3)]
    assert statuses == [401] * 3
    response = await client.post("/api/v1/auth/login", json=body)
    await expect_error(response, 429, "rate_limited")
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    # Sign-up has its own bucket, and a refused sign-up creates no account.
    register = {"password": "long enough", "display_name": "N"}
    for n in range(3):
        body = {**register, "email": f"n{n}@example.com"}
        assert (await client.post("/api/v1/auth/register", json=body)).status == 201
    async with Shop(client, database_url).unchanged():
        response = await client.post(
            "/api/v1/auth/register", json={**register, "email": "n3@example.com"}
        )
        await expect_error(response, 429, "rate_limited")


async def test_me_requires_a_valid_token(client: Client, shop: Shop, settings: Any) -> None:
    account = await shop.account()
    secret = settings.ensure_jwt_secret()
    forged = {
        "none algorithm": jwt.encode(
            {"sub": account.id, "exp": 2**31, "iat": 0, "typ": "access"}, key=None, algorithm="none"
        ),
        "wrong key": jwt.encode(
            {"sub": account.id, "exp": 2**31, "iat": 0, "typ": "access"},
            "not the key of this server, but long enough",
            algorithm="HS256",
        ),
        "expired": jwt.encode(
            {"sub": account.id, "exp": 1000, "iat": 0, "typ": "access"}, secret, algorithm="HS256"
        ),
        "not access": jwt.encode(
            {"sub": account.id, "exp": 2**31, "iat": 0}, secret, algorithm="HS256"
        ),
        "garbage": "abc.def.ghi",
    }
    response = await client.get("/api/v1/me")
    await expect_error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"] == "Bearer"
    for token in forged.values():
        response = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        await expect_error(response, 401, "unauthorized")
    await expect_error(
        await client.get("/api/v1/me", headers={"Authorization": account.token}),
        401,
        "unauthorized",
    )


async def test_token_of_deleted_account_is_refused(client: Client, shop: Shop) -> None:
    account = await shop.account()
    await shop.execute("DELETE FROM users WHERE id = :id", id=account.id)
    await expect_error(await client.get("/api/v1/me", headers=account.auth), 401, "unauthorized")


async def test_follow_and_unfollow(client: Client, shop: Shop) -> None:
    seller = await shop.account("seller")
    viewer = await shop.account()
    url = f"/api/v1/users/{seller.id}/follow"
    assert (await client.post(url, headers=viewer.auth)).status == 204
    assert (await client.post(url, headers=viewer.auth)).status == 204
    profile = await (await client.get(f"/api/v1/users/{seller.id}", headers=viewer.auth)).json()
    assert profile["followers"] == 1
    assert profile["following"] is True
    assert "email" not in profile
    assert (await client.delete(url, headers=viewer.auth)).status == 204
    profile = await (await client.get(f"/api/v1/users/{seller.id}", headers=viewer.auth)).json()
    assert (profile["followers"], profile["following"]) == (0, False)


async def test_follow_refusals_change_nothing(client: Client, shop: Shop) -> None:
    seller = await shop.account("seller")
    viewer = await shop.account()
    async with shop.unchanged():
        await expect_error(
            await client.post(f"/api/v1/users/{seller.id}/follow"), 401, "unauthorized"
        )
        await expect_error(
            await client.post(f"/api/v1/users/{seller.id}/follow", headers=seller.auth),
            422,
            "cannot_follow_self",
        )
        await expect_error(
            await client.post(f"/api/v1/users/{viewer.id}/follow", headers=seller.auth),
            422,
            "not_a_seller",
        )
        await expect_error(
            await client.post("/api/v1/users/nope/follow", headers=viewer.auth), 404, "not_found"
        )
        await expect_error(await client.get("/api/v1/users/nope"), 404, "not_found")


async def test_admin_lists_users_and_grants_roles(client: Client, shop: Shop) -> None:
    admin = await shop.account("admin")
    viewer = await shop.account()
    users = await (await client.get("/api/v1/users", headers=admin.auth)).json()
    assert {u["id"] for u in users} == {admin.id, viewer.id}
    response = await client.patch(
        f"/api/v1/users/{viewer.id}", json={"role": "moderator"}, headers=admin.auth
    )
    assert response.status == 200
    assert (await response.json())["role"] == "moderator"
    me = await (await client.get("/api/v1/me", headers=viewer.auth)).json()
    assert me["role"] == "moderator"
    listed = await client.get("/api/v1/users?limit=1&offset=1", headers=viewer.auth)
    assert len(await listed.json()) == 1


async def test_role_changes_are_admin_only(client: Client, shop: Shop) -> None:
    admin = await shop.account("admin")
    moderator = await shop.account("moderator")
    viewer = await shop.account()
    async with shop.unchanged():
        for who in (viewer, moderator):
            response = await client.patch(
                f"/api/v1/users/{viewer.id}", json={"role": "admin"}, headers=who.auth
            )
            await expect_error(response, 403, "forbidden")
        await expect_error(await client.get("/api/v1/users", headers=viewer.auth), 403, "forbidden")
        response = await client.patch(
            f"/api/v1/users/{admin.id}", json={"role": "viewer"}, headers=admin.auth
        )
        await expect_error(response, 409, "own_role")
        response = await client.patch(
            f"/api/v1/users/{viewer.id}", json={"role": "king"}, headers=admin.auth
        )
        await expect_error(response, 422, "invalid")
        response = await client.patch(
            "/api/v1/users/nope", json={"role": "seller"}, headers=admin.auth
        )
        await expect_error(response, 404, "not_found")
