from typing import Any

from aiohttp.test_utils import TestClient


async def test_healthz_and_readyz(client: TestClient[Any, Any]) -> None:
    for path in ("/healthz", "/readyz"):
        response = await client.get(path)
        assert response.status == 200
        assert await response.json() == {"status": "ok"}
        assert "Server" not in response.headers
        assert response.headers["X-Content-Type-Options"] == "nosniff"
