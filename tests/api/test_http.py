"""The HTTP contract shared by every endpoint: errors, limits, CORS, pages and the spec."""

import io
import json
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from api.rest import rest_api
from tests.conftest import Shop, expect_error

Client = TestClient[Any, Any]
ROOT = Path(__file__).resolve().parents[2]


async def test_wrong_content_type_is_415(client: Client, shop: Shop) -> None:
    seller = await shop.account("seller")
    async with shop.unchanged():
        response = await client.post(
            "/api/v1/products",
            data="title=Mug",
            headers={**seller.auth, "Content-Type": "application/x-www-form-urlencoded"},
        )
        await expect_error(response, 415, "unsupported_media_type")


async def test_malformed_json_is_400(client: Client, shop: Shop) -> None:
    seller = await shop.account("seller")
    headers = {**seller.auth, "Content-Type": "application/json"}
    async with shop.unchanged():
        for raw in ('{"title": "Mug",', "", "[1, 2", "\xff"):
            response = await client.post(
                "/api/v1/products", data=raw.encode("latin-1"), headers=headers
            )
            await expect_error(response, 400, "invalid_json")
        response = await client.post("/api/v1/products", data="[1, 2]", headers=headers)
        await expect_error(response, 422, "invalid")


async def test_body_over_the_limit_is_413(client: Client, shop: Shop) -> None:
    seller = await shop.account("seller")
    body = json.dumps(
        {"title": "Mug", "price_cents": 1, "stock": 1, "description": "x" * 2_000_000}
    )
    async with shop.unchanged():
        response = await client.post(
            "/api/v1/products",
            data=io.BytesIO(body.encode()),
            headers={**seller.auth, "Content-Type": "application/json"},
        )
        await expect_error(response, 413, "payload_too_large")


async def test_unknown_routes_and_methods_answer_json(client: Client) -> None:
    await expect_error(await client.get("/api/v1/nothing-here"), 404, "not_found")
    response = await client.put("/api/v1/products")
    await expect_error(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]


async def test_cors_allows_configured_origins_only(client: Client) -> None:
    preflight = {
        "Origin": "https://shop.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "Authorization, Content-Type",
    }
    response = await client.options("/api/v1/products", headers=preflight)
    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    simple = await client.get("/api/v1/streams", headers={"Origin": "https://shop.example"})
    assert simple.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    foreign = await client.options(
        "/api/v1/products", headers={**preflight, "Origin": "https://evil.example"}
    )
    assert foreign.status == 403
    assert "Access-Control-Allow-Origin" not in foreign.headers
    other = await client.get("/api/v1/streams", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


async def test_openapi_documents_every_endpoint(client: Client) -> None:
    response = await client.get("/api/openapi.json")
    assert response.status == 200
    spec = await response.json()
    assert spec["openapi"].startswith("3.1")
    declared = {(e.method.lower(), e.path) for e in rest_api().endpoints}
    documented = {(m, p) for p, ops in spec["paths"].items() for m in ops}
    assert (
        declared
        | {
            ("post", "/whip/{stream_id}"),
            ("post", "/whep/{stream_id}"),
            ("patch", "/whip/{stream_id}/{session_id}"),
        }
        <= documented
    )
    assert len(declared) >= 22
    schemas = spec["components"]["schemas"]
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            for status, answer in op["responses"].items():
                for media in answer.get("content", {}).values():
                    ref = media["schema"].get("$ref") or media["schema"].get("items", {}).get(
                        "$ref"
                    )
                    if ref:
                        assert ref.rsplit("/", 1)[1] in schemas, (method, path, status)
    register = spec["paths"]["/api/v1/auth/register"]["post"]
    assert set(register["responses"]) == {"201", "409", "422", "429"}
    assert register["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/RegisterIn"
    }
    assert schemas["Error"]["required"] == ["error", "message"]


async def test_committed_openapi_document_is_current(client: Client) -> None:
    served = await (await client.get("/api/openapi.json")).json()
    committed = json.loads((ROOT / "docs" / "openapi.json").read_text())
    assert committed == served, "run `make openapi` and commit docs/openapi.json"


async def test_pages_carry_a_content_security_policy(client: Client) -> None:
    for path in ("/", "/api/docs"):
        response = await client.get(path)
        assert response.status == 200
        assert response.content_type == "text/html"
        csp = response.headers["Content-Security-Policy"]
        assert (
            "script-src 'self'" in csp
            and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
        )
        assert response.headers["X-Frame-Options"] == "DENY"
        assert "<script>" not in await response.text()
    page = await (await client.get("/api/docs")).text()
    for asset in (
        "/static/node_modules/swagger-ui-dist/swagger-ui-bundle.js",
        "/static/node_modules/swagger-ui-dist/swagger-ui.css",
        "/static/js/api-docs.js",
    ):
        assert asset in page
        assert (await client.get(asset)).status == 200, asset
