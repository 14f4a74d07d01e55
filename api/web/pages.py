"""HTTP surface shared by every page and endpoint: security headers, CORS, pages, the spec."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp_cors
from aiohttp import web

from api.web.errors import Handler
from api.web.openapi import files, operation
from api.web.routing import Api


def _static_dir() -> Path:
    """The pages and their libraries: beside this module when installed from a wheel
    (pyproject.toml puts static/ there), else at the top of the checkout."""
    here = Path(__file__).resolve().parent
    packaged = here / "static"
    return packaged if packaged.is_dir() else here.parents[1] / "static"


STATIC_DIR = _static_dir()


def page_csp(media_origins: list[str], frame_ancestors: list[str] | None = None) -> str:
    """Pages load only our own scripts and styles: no inline script, nothing third-party.
    Replays may be fetched from the object store's origin (``media_origins``). Only the
    embedded player may be framed, by ``frame_ancestors`` (none by default)."""
    connect = " ".join(["'self'", *media_origins])
    ancestors = " ".join(frame_ancestors) if frame_ancestors else "'none'"
    return (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: https:; media-src 'self' blob:; worker-src 'self' blob:; "
        f"connect-src {connect}; frame-ancestors {ancestors}; base-uri 'self'; form-action 'self'"
    )


HSTS = "max-age=31536000"


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    if request.secure:
        # Served over TLS by this process (`shopcast serve --tls`): browsers stay on HTTPS.
        response.headers.setdefault("Strict-Transport-Security", HSTS)
    return response


async def _hide_server(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.popall("Server", None)


def _page(name: str, csp: str, *, framed: bool = False) -> Handler:
    """``name`` with ``csp``; ``framed``: the CSP's frame-ancestors alone says who may frame it
    (X-Frame-Options has no allow-list), else no one may."""
    path = STATIC_DIR / name
    headers = {"Cache-Control": "no-cache", "Content-Security-Policy": csp}
    if not framed:
        headers["X-Frame-Options"] = "DENY"

    async def serve(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(path, headers=headers)

    return serve


async def _favicon(request: web.Request) -> web.StreamResponse:
    """The pages name their icon; clients that ask for ``/favicon.ico`` anyway get it too."""
    headers = {"Content-Type": "image/svg+xml", "Cache-Control": "public, max-age=86400"}
    return web.FileResponse(STATIC_DIR / "icon.svg", headers=headers)


# Each page: its path, its name, its file in static/ and what it is (also in the OpenAPI document).
PAGES = {
    "/": ("home", "index.html", "Home page: live now, upcoming, replays and search"),
    "/s/{handle}": ("seller", "seller.html", "A seller's page: follow, live, upcoming, past shows"),
    "/studio": ("studio", "studio.html", "The seller's studio: prepare a show and go live"),
    "/watch/{stream_id}": ("watch", "watch.html", "The viewer's page of one show"),
    "/orders": ("orders", "orders.html", "The buyer's orders"),
    "/admin": ("admin", "admin.html", "The admin dashboard"),
    "/admin/shows/{stream_id}": ("admin_show", "admin.html", "The admin dashboard, on one show"),
    "/api/docs": ("api_docs", "api-docs.html", "This document in Swagger UI"),
    "/unsubscribe": ("unsubscribe", "unsubscribe.html", "A notification's unsubscribe link"),
}


def _page_operation(name: str, summary: str, **extra: Any) -> dict[str, Any]:
    return {"get": operation(f"page_{name}", summary, tag="pages", produces="text/html", **extra)}


PAGE_PATHS: dict[str, dict[str, Any]] = {
    **{path: _page_operation(name, summary) for path, (name, _, summary) in PAGES.items()},
    "/embed/{stream_id}": _page_operation(
        "embed", "The viewer's page in embed mode, for the sites of SHOPCAST_CORS_ORIGINS"
    ),
    "/broadcast": _page_operation(
        "broadcast", "The studio's first address", status=301, success="To /studio"
    ),
    "/favicon.ico": {
        "get": operation("favicon", "The icon", tag="pages", produces="image/svg+xml")
    },
    "/static/{path}": files("static_file", "The pages' scripts, styles and browser libraries"),
    "/api/openapi.json": {
        "get": operation("openapi", "This document", tag="operations", produces="application/json")
    },
}


async def _to_studio(request: web.Request) -> web.StreamResponse:
    """The first broadcaster page's address: the studio replaced it."""
    raise web.HTTPMovedPermanently("/studio")


def mount(
    app: web.Application,
    api: Api,
    *,
    spec: dict[str, Any],
    cors_origins: list[str],
    media_origins: list[str],
) -> None:
    """Add the REST API, its OpenAPI document (``spec``), the pages and CORS to ``app``.
    ``cors_origins`` may call the API and frame the embedded player (``/embed/{stream_id}``)."""
    app.on_response_prepare.append(_hide_server)
    app.add_routes(api.routes())
    document = json.dumps(spec).encode()

    async def openapi(request: web.Request) -> web.Response:
        return web.Response(body=document, content_type="application/json")

    app.router.add_get("/api/openapi.json", openapi)
    csp = page_csp(media_origins)
    for path, (_, file, _) in PAGES.items():
        app.router.add_get(path, _page(file, csp))
    app.router.add_get("/broadcast", _to_studio)
    app.router.add_get("/favicon.ico", _favicon)
    # The watch page again, in embed mode (static/js/embedding.js), for the allowed shops' pages.
    embed = _page("watch.html", page_csp(media_origins, cors_origins), framed=bool(cors_origins))
    app.router.add_get("/embed/{stream_id}", embed)
    app.router.add_static("/static/", STATIC_DIR, follow_symlinks=False)
    options = aiohttp_cors.ResourceOptions(  # type: ignore[no-untyped-call]
        allow_credentials=False,
        allow_headers=("Authorization", "Content-Type", "If-Match", "Idempotency-Key"),
        expose_headers=("Location", "ETag", "Link", "Retry-After"),
        allow_methods="*",
        max_age=600,
    )
    cors = aiohttp_cors.setup(app, defaults={origin: options for origin in cors_origins})
    for route in list(app.router.routes()):
        if route.resource is not None and route.resource.canonical.startswith(
            ("/api/v1", "/api/openapi")
        ):
            cors.add(route)
