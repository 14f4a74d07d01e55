"""The pages: served with their security headers, every asset they load present, HTTPS for dev."""

import re
import ssl
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from cryptography import x509

from api.web.pages import page_csp
from server.app import build_app
from server.settings import Settings
from server.tls import ensure_certificate, server_context

Client = TestClient[Any, Any]
STATIC = Path(__file__).resolve().parents[2] / "static"
PAGES = ("/", "/studio", "/watch/abc", "/embed/abc", "/orders", "/admin", "/admin/shows/abc")
ASSET = re.compile(r"""(?:src|href)="(/static/[^"]+)"|from "(/static/[^"]+)"|from "\./([^"]+)\"""")


async def test_pages_have_a_strict_policy_and_no_inline_script(client: Client) -> None:
    for path in PAGES:
        response = await client.get(path)
        assert response.status == 200, path
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self';" in csp and "connect-src 'self'" in csp
        assert "Strict-Transport-Security" not in response.headers
        assert "<script>" not in await response.text()


def frame_ancestors(csp: str) -> str:
    return next(d for d in csp.split("; ") if d.startswith("frame-ancestors ")).split(" ", 1)[1]


async def test_only_the_embedded_player_may_be_framed_and_only_by_the_allowed_origins(
    client: Client,
) -> None:
    embed = await client.get("/embed/abc")
    assert frame_ancestors(embed.headers["Content-Security-Policy"]) == "https://shop.example"
    assert "X-Frame-Options" not in embed.headers
    assert await embed.text() == (STATIC / "watch.html").read_text()
    for path in (p for p in PAGES if not p.startswith("/embed/")):
        response = await client.get(path)
        assert frame_ancestors(response.headers["Content-Security-Policy"]) == "'none'", path
        assert response.headers["X-Frame-Options"] == "DENY", path


async def test_without_allowed_origins_nobody_may_frame_the_player(
    settings: Settings, aiohttp_client: Any
) -> None:
    settings.cors_origins = []
    client = await aiohttp_client(build_app(settings))
    embed = await client.get("/embed/abc")
    assert frame_ancestors(embed.headers["Content-Security-Policy"]) == "'none'"
    assert embed.headers["X-Frame-Options"] == "DENY"
    several = Settings(
        _env_file=None,
        cors_origins="https://a.example, http://127.0.0.2:8001",  # type: ignore[arg-type]
    )
    assert frame_ancestors(page_csp([], several.cors_origins)) == (
        "https://a.example http://127.0.0.2:8001"
    )


async def test_every_asset_a_page_loads_is_served(client: Client) -> None:
    seen: set[str] = set()
    queue = [(await (await client.get(path)).text(), "/static/js/") for path in PAGES]
    while queue:
        text, base = queue.pop()
        for match in ASSET.finditer(text):
            asset = match[1] or match[2] or base + match[3]
            if asset in seen:
                continue
            seen.add(asset)
            response = await client.get(asset)
            assert response.status == 200, asset
            if asset.startswith("/static/js/"):
                queue.append((await response.text(), "/static/js/"))
    assert {"/static/js/studio.js", "/static/js/watch.js", "/static/js/admin.js"} <= seen
    assert {"/static/js/orders.js", "/static/js/purchase.js"} <= seen
    assert "/static/node_modules/uplot/dist/uPlot.esm.js" in seen


async def test_every_page_names_its_icon_and_favicon_ico_is_served(client: Client) -> None:
    for path in (*PAGES, "/api/docs"):
        assert '<link rel="icon" href="/static/icon.svg"' in await (await client.get(path)).text()
    icon = await client.get("/favicon.ico")
    assert icon.status == 200 and icon.content_type == "image/svg+xml"
    assert (await icon.read()) == (STATIC / "icon.svg").read_bytes()


async def test_user_text_is_never_parsed_as_html() -> None:
    for script in (STATIC / "js").glob("*.js"):
        code = script.read_text()
        assert "innerHTML" not in code and "insertAdjacentHTML" not in code, script.name


async def test_broadcast_moved_to_the_studio(client: Client) -> None:
    response = await client.get("/broadcast", allow_redirects=False)
    assert response.status == 301
    assert response.headers["Location"] == "/studio"


async def test_tls_serves_hsts(settings: Settings, tmp_path: Path) -> None:
    server = TestServer(build_app(settings))
    await server.start_server(ssl=server_context(tmp_path, "127.0.0.1"))
    client: Client = TestClient(server)
    assert str(client.make_url("/")).startswith("https://")
    try:
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE
        response = await client.get("/studio", ssl=insecure)
        assert response.status == 200
        assert response.headers["Strict-Transport-Security"] == "max-age=31536000"
    finally:
        await client.close()


def test_the_certificate_is_made_once_and_names_the_host(tmp_path: Path) -> None:
    cert_path, key_path = ensure_certificate(tmp_path, "192.168.1.20")
    first = cert_path.read_bytes()
    assert key_path.stat().st_mode & 0o077 == 0
    cert = x509.load_pem_x509_certificate(first)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    addresses = {str(a) for a in names.get_values_for_type(x509.IPAddress)}
    assert {"127.0.0.1", "192.168.1.20"} <= addresses
    assert ensure_certificate(tmp_path, "192.168.1.20")[0].read_bytes() == first
