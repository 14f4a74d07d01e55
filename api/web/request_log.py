"""Each HTTP request's id, and its one access log line.

`request_ids` gives every request an id (the client's `X-Request-ID` when it sends a sane
one, else a fresh one), binds it, and the request's `stream_id` and `session_id` when its
route has them, in structlog's contextvars, and the response carries it back in
`X-Request-ID`. aiohttp runs each request in its own task, so what a handler binds stays with
its request, and the access line (`AccessLog`, written in that task after the response)
carries the ids too.
"""

from __future__ import annotations

import logging
import re
import secrets

import structlog
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest

from api.web.errors import Handler

HEADER = "X-Request-ID"
REQUEST_ID = web.RequestKey("request_id", str)
_SANE_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
# LL-HLS players poll the playlist and fetch a part several times a second each: at info they
# would be most of the log.
_POLLS = ("/hls/",)


@web.middleware
async def request_ids(request: web.Request, handler: Handler) -> web.StreamResponse:
    sent = request.headers.get(HEADER, "")
    request_id = sent if _SANE_ID.fullmatch(sent) else secrets.token_hex(16)
    request[REQUEST_ID] = request_id
    ids = {
        name: request.match_info[name]
        for name in ("stream_id", "session_id")
        if name in request.match_info
    }
    structlog.contextvars.bind_contextvars(request_id=request_id, **ids)
    return await handler(request)


async def send_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """An ``on_response_prepare`` signal: every answer, errors and streams included."""
    if REQUEST_ID in request:
        response.headers[HEADER] = request[REQUEST_ID]


def _route(request: BaseRequest) -> str:
    resource = request.match_info.route.resource if isinstance(request, web.Request) else None
    return resource.canonical if resource is not None else "unmatched"


class AccessLog(AbstractAccessLogger):
    """aiohttp's access log as one structured line per request; HLS polls at debug."""

    def log(self, request: BaseRequest, response: web.StreamResponse, time: float) -> None:
        route = _route(request)
        level = logging.DEBUG if route.startswith(_POLLS) else logging.INFO
        if not self.logger.isEnabledFor(level):
            return
        structlog.get_logger(self.logger.name).log(
            level,
            "request",
            method=request.method,
            path=request.path,
            route=route,
            status=response.status,
            bytes=response.body_length,
            duration_seconds=round(time, 6),
            remote=request.remote,
            user_agent=request.headers.get("User-Agent"),
        )
