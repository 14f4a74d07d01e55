"""The served OpenAPI document is valid OpenAPI 3.1 and names every route the app serves."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, make_mocked_request
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

Client = TestClient[Any, Any]
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


async def served(client: Client) -> dict[str, Any]:
    response = await client.get("/api/openapi.json")
    assert response.status == 200
    return dict(await response.json())


def cors_preflight(route: web.AbstractRoute) -> bool:
    """aiohttp_cors's own OPTIONS answer, added to every /api route it covers."""
    return getattr(route.handler, "__qualname__", "") == "_PreflightHandler._preflight_handler"


async def test_the_served_document_is_valid_openapi_3_1(client: Client) -> None:
    spec = await served(client)
    validate(spec, cls=OpenAPIV31SpecValidator)
    operations = [op for ops in spec["paths"].values() for m, op in ops.items() if m in METHODS]
    ids = [op["operationId"] for op in operations]
    assert len(ids) == len(set(ids)), "operationIds are unique"


async def test_every_route_is_documented_and_every_documented_path_is_served(
    client: Client,
) -> None:
    spec = await served(client)
    app = client.server.app
    reached: set[web.AbstractRoute] = set()
    for path, operations in spec["paths"].items():
        url = re.sub(r"{\w+}", "x", path)
        for method in operations:
            match = await app.router.resolve(make_mocked_request(method.upper(), url, app=app))
            assert match.http_exception is None, (method, path)
            reached.add(match.route)
    served_routes = {
        (route.method, route.resource.canonical if route.resource else "")
        for route in app.router.routes()
        if route.method != "HEAD" and not cors_preflight(route) and route not in reached
    }
    assert served_routes == set(), "routes missing from the OpenAPI document"
    for needed in ("/hls/{stream_id}/index.m3u8", "/media/{path}", "/metrics", "/socket.io/"):
        assert needed in spec["paths"]
    session = spec["paths"]["/whep/{stream_id}/{session_id}"]["patch"]
    assert [p["name"] for p in session["parameters"]] == ["stream_id", "session_id"]
    assert session["operationId"] == "whep_patch_session"
