"""Log lines as JSON objects carrying the request's, stream's and session's ids."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
import structlog
from aiohttp.test_utils import TestClient, TestServer

from api.realtime.payloads import StreamIn
from api.realtime.sockets import Realtime
from api.web.context import SERVICES
from api.web.request_log import AccessLog
from server.app import build_app
from server.logs import configure_logging
from server.settings import Settings
from tests.api.test_signaling import go_live, publish, wait_status
from tests.conftest import Shop
from tests.socket_client import Viewer

Client = TestClient[Any, Any]
Lines = Callable[[], list[dict[str, Any]]]


@pytest.fixture
async def client(
    settings: Settings, aiohttp_client: Callable[..., Awaitable[Client]]
) -> AsyncIterator[Client]:
    """The app served with the access log ``shopcast serve`` uses."""
    server = TestServer(build_app(settings))
    await server.start_server(access_log_class=AccessLog)
    yield await aiohttp_client(server)


def _logging(level: str) -> Iterator[Lines]:
    root = logging.getLogger()
    kept, kept_level = list(root.handlers), root.level
    out = io.StringIO()
    configure_logging(level, "json", out)
    try:
        # Every line must be one JSON object: json.loads fails the test on any other.
        yield lambda: [json.loads(line) for line in out.getvalue().splitlines()]
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in kept:
            root.addHandler(handler)
        root.setLevel(kept_level)
        structlog.reset_defaults()


@pytest.fixture
def info_lines() -> Iterator[Lines]:
    yield from _logging("INFO")


@pytest.fixture
def debug_lines() -> Iterator[Lines]:
    yield from _logging("DEBUG")


def _access(lines: list[dict[str, Any]], path: str) -> list[dict[str, Any]]:
    return [line for line in lines if line["logger"] == "aiohttp.access" and line["path"] == path]


async def test_each_request_has_an_id_in_its_access_line_and_response(
    client: Client, info_lines: Lines
) -> None:
    first = await client.get("/api/v1/streams/no-such-show")
    sent = await client.get("/healthz", headers={"X-Request-ID": "lb-7f3a.1"})
    junk = await client.get("/healthz", headers={"X-Request-ID": "two words\t" + "x" * 200})
    lines = info_lines()
    (line,) = _access(lines, "/api/v1/streams/no-such-show")
    assert first.status == 404
    assert line["request_id"] == first.headers["X-Request-ID"]
    assert len(line["request_id"]) == 32
    assert line["stream_id"] == "no-such-show"
    assert line["route"] == "/api/v1/streams/{stream_id}"
    assert (line["level"], line["event"], line["status"], line["method"]) == (
        "info",
        "request",
        404,
        "GET",
    )
    assert line["timestamp"].endswith("Z")
    assert sent.headers["X-Request-ID"] == "lb-7f3a.1"
    assert [line["request_id"] for line in _access(lines, "/healthz")] == [
        "lb-7f3a.1",
        junk.headers["X-Request-ID"],
    ]
    assert junk.headers["X-Request-ID"] != "two words"
    assert len({first.headers["X-Request-ID"], junk.headers["X-Request-ID"]}) == 2


async def test_a_whip_publish_logs_its_stream_and_session_and_hls_polls_stay_below_info(
    client: Client, shop: Shop, info_lines: Lines
) -> None:
    seller = await shop.account("seller")
    sid = (await shop.stream(seller))["id"]
    publisher, response = await publish(client, sid, await go_live(client, seller, sid))
    try:
        await wait_status(client, sid, "live")
        await client.get(f"/hls/{sid}/index.m3u8")
    finally:
        await publisher.close()
    request_id = response.headers["X-Request-ID"]
    session_id = response.headers["Location"].rsplit("/", 1)[1]
    lines = [line for line in info_lines() if line.get("request_id") == request_id]
    assert {line["logger"] for line in lines} >= {"aiohttp.access", "api.streaming.signaling"}
    for line in lines:
        assert line["stream_id"] == sid, line
    (opened,) = [line for line in lines if line["event"] == "WHIP session opened"]
    assert opened["session_id"] == session_id
    (access,) = _access(lines, f"/whip/{sid}")
    assert (access["session_id"], access["status"]) == (session_id, 201)
    assert not _access(info_lines(), f"/hls/{sid}/index.m3u8")


async def test_hls_polls_are_logged_at_debug(client: Client, debug_lines: Lines) -> None:
    response = await client.get("/hls/no-such-show/index.m3u8")
    (line,) = _access(debug_lines(), "/hls/no-such-show/index.m3u8")
    assert line["level"] == "debug"
    assert line["route"] == "/hls/{stream_id}/index.m3u8"
    assert line["request_id"] == response.headers["X-Request-ID"]


async def test_a_socket_event_logs_its_sid_and_stream(client: Client, info_lines: Lines) -> None:
    realtime = client.app[SERVICES].rooms
    assert isinstance(realtime, Realtime)
    viewer = await Viewer().connect(str(client.make_url("/")))
    try:
        (sid,) = realtime.members

        async def handler(sid: str, body: StreamIn) -> dict[str, Any]:
            logging.getLogger("api.realtime.test").info("handled")
            return {"ok": True}

        event = realtime._guarded(StreamIn, handler)  # the wrapper every event goes through
        # In a task of its own, as python-socketio runs each event.
        assert await asyncio.ensure_future(event(sid, {"stream_id": "show-1"})) == {"ok": True}
    finally:
        await viewer.close()
    (line,) = [line for line in info_lines() if line["event"] == "handled"]
    assert (line["sid"], line["stream_id"]) == (sid, "show-1")
