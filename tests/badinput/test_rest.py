"""Hypothesis-generated JSON bodies for the main REST endpoints, shaped by docs/openapi.json:
any answer but a 500; a refusal is a JSON error and changes nothing."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import strategies as st

from tests.api.test_commerce import live_show
from tests.badinput.conftest import SHARED_RANDOM, fuzz
from tests.conftest import Shop

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120), SHARED_RANDOM]
Client = TestClient[Any, Any]
SPEC = json.loads((Path(__file__).resolve().parents[2] / "docs" / "openapi.json").read_text())
REFUSALS = {400, 401, 403, 404, 409, 413, 415, 422, 429}

# (method, path, who sends it): the endpoints that take a JSON body, but media uploads.
ENDPOINTS = [
    ("POST", "/api/v1/auth/register", None),
    ("POST", "/api/v1/auth/login", None),
    ("PATCH", "/api/v1/users/{user_id}", "admin"),
    ("POST", "/api/v1/products", "seller"),
    ("PATCH", "/api/v1/products/{product_id}", "seller"),
    ("POST", "/api/v1/streams", "seller"),
    ("PATCH", "/api/v1/streams/{stream_id}/settings", "seller"),
    ("POST", "/api/v1/streams/{stream_id}/products", "seller"),
    ("POST", "/api/v1/streams/{stream_id}/products/{product_id}/tag", "seller"),
    ("PUT", "/api/v1/streams/{stream_id}/slow-mode", "seller"),
    ("POST", "/api/v1/streams/{stream_id}/pins", "seller"),
    ("POST", "/api/v1/streams/{stream_id}/orders", "buyer"),
    ("POST", "/api/v1/streams/{stream_id}/auctions", "seller"),
    ("POST", "/api/v1/streams/{stream_id}/delay", "buyer"),
    ("POST", "/api/v1/webhooks", "seller"),
    ("POST", "/api/v1/me/push-subscriptions", "buyer"),
    ("PATCH", "/api/v1/me/notifications", "buyer"),
    ("PUT", "/api/v1/me/notifications/sellers/{seller_id}", "buyer"),
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=8,
)


def body_fields(method: str, path: str) -> list[str]:
    operation = SPEC["paths"][path][method.lower()]
    ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = SPEC["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return sorted(schema.get("properties", {}))


def bodies(fields: list[str]) -> st.SearchStrategy[Any]:
    """Objects with the endpoint's own field names and wrong-ish values, or any JSON at all."""
    shaped = st.fixed_dictionaries({}, optional={name: json_values for name in fields})
    return st.one_of(shaped, shaped, json_values)


@pytest.mark.parametrize(
    ("method", "path", "who"), ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in ENDPOINTS]
)
async def test_fuzzed_json_bodies(
    node: Client, shop: Shop, method: str, path: str, who: str | None
) -> None:
    seller, sid, (pid,) = await live_show(node, shop)
    accounts = {
        "seller": seller,
        "buyer": await shop.account(),
        "admin": await shop.account("admin"),
    }
    url = path.format(
        stream_id=sid, product_id=pid, user_id=accounts["buyer"].id, seller_id=seller.id
    )
    headers = dict(accounts[who].auth) if who else {}
    seen: set[int] = set()

    async def send(body: Any) -> None:
        before = await shop.snapshot()
        sent = {**headers, "Idempotency-Key": secrets.token_hex(8)}
        response = await node.request(method, url, json=body, headers=sent)
        seen.add(response.status)
        assert response.status < 300 or response.status in REFUSALS, await response.text()
        if response.status >= 400:
            error = await response.json()
            assert isinstance(error["error"], str) and error["message"], error
            assert await shop.snapshot() == before, f"a refused {method} {path} wrote"

    await fuzz(send, examples=15, body=bodies(body_fields(method, path)))
    assert seen & REFUSALS, "the fuzzer never reached a refusal"
    assert (await node.get("/readyz")).status == 200
