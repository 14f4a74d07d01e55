"""Hostile paths and queries on the file-serving routes (live HLS, the local object store):
a 4xx, never a 500, never a file from outside what the route serves."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import strategies as st
from yarl import URL

from server.settings import Settings
from tests.badinput.conftest import SHARED_RANDOM, fuzz
from tests.badinput.test_sdp import live_stream
from tests.conftest import Shop, eventually

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120), SHARED_RANDOM]
Client = TestClient[Any, Any]
SENTINEL = b"sentinel: never served"


def traversals() -> list[str]:
    """Ways up to ``secret.txt`` from 1 to 5 directories deep, plain, encoded and odd."""
    names = ["/etc/passwd", "%00init.mp4", "init.mp4%00.m3u8"]
    for depth in range(1, 6):
        for up in ("../", "..%2f", "%2e%2e/", "%2e%2e%2f", "....//", "..\\", "..%5c"):
            names.append(up * depth + "secret.txt")
    return names


async def test_hostile_hls_paths_and_queries(
    node: Client, shop: Shop, fuzz_settings: Settings
) -> None:
    sid, _, publisher = await live_stream(node, shop)
    media = fuzz_settings.resolved_media_dir
    for directory in (media.parent, media, media / "recordings"):
        (directory / "secret.txt").write_bytes(SENTINEL)

    async def recorded() -> bool:
        return "#EXTINF" in await (await node.get(f"/hls/{sid}/index.m3u8")).text()

    await eventually(recorded, 20, "nothing recorded")
    for base in (f"/hls/{sid}/", "/media/"):
        for name in traversals():
            response = await node.get(URL(base + name, encoded=True))
            body = await response.read()
            assert 400 <= response.status < 500, (base, name, response.status)
            assert SENTINEL not in body and b"root:" not in body, (base, name)

    async def query(msn: str, part: str) -> None:
        url = f"/hls/{sid}/index.m3u8?_HLS_msn={quote(msn)}&_HLS_part={quote(part)}"
        response = await node.get(URL(url, encoded=True))
        assert response.status in (200, 400, 503), (msn, part, response.status)

    numbers = st.one_of(st.integers(-5, 10**20).map(str), st.text(max_size=12))
    await fuzz(query, examples=30, msn=numbers, part=numbers)

    async def segment(name: str) -> None:
        response = await node.get(URL(f"/hls/{sid}/{quote(name, safe='')}", encoded=True))
        assert response.status in (200, 400, 404, 503), (name, response.status)

    await fuzz(segment, examples=30, name=st.text(min_size=1, max_size=30))
    assert (await node.get(f"/hls/{sid}/index.m3u8")).status == 200
    await publisher.close()
