"""The HTTP server around the app: aiohttp's own refusals answered with our JSON error body.

aiohttp refuses a request it cannot parse (a header line without a colon, a line over 8 KiB,
a bad method or version, bytes that are not HTTP) before any route or middleware sees it, in
plain text, and offers no hook for that answer (aio-libs/aiohttp#3287). `AppRunner` serves the
app with a connection handler whose refusals carry `{"error", "message"}` like every other
error of the API; the connection is closed after them, as aiohttp does.
"""

from __future__ import annotations

import asyncio
import json
import signal
from http import HTTPStatus
from ssl import SSLContext

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from api.web.request_log import AccessLog

_CODES = {400: "bad_request", 500: "internal"}


class _Refusal(web.Response):
    """An answer without the `Server` header, like every other answer of the node."""

    async def _prepare_headers(self) -> None:
        await super()._prepare_headers()
        self.headers.popall("Server", None)


class _JsonErrors(RequestHandler):
    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500:
            self.log_exception("Error handling request from %s", request.remote, exc_info=exc)
        else:
            # Scanners and broken clients send these all day: one line each, no traceback.
            self.logger.info(
                "refused a request from %s that is not valid HTTP: %s", request.remote, exc
            )
        if request.writer.output_size > 0:
            raise ConnectionError("a response was started: the connection is broken")
        phrase = HTTPStatus(status).phrase
        body = {
            "error": _CODES.get(status, phrase.lower().replace(" ", "_")),
            "message": "The request is not valid HTTP" if status == 400 else phrase,
        }
        response = _Refusal(
            status=status,
            text=json.dumps(body),
            content_type="application/json",
            headers={"X-Content-Type-Options": "nosniff"},
        )
        response.force_close()
        return response


class _Server(web.Server):
    def __call__(self) -> RequestHandler:
        return _JsonErrors(self, loop=self._loop, **self._kwargs)


class AppRunner(web.AppRunner):
    """``web.AppRunner`` whose connections answer parse errors with the JSON error body."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        return _Server(
            server.request_handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            loop=server._loop,
            **server._kwargs,
        )


def serve(app: web.Application, host: str, port: int, ssl_context: SSLContext | None) -> None:
    """Serve ``app`` until SIGINT or SIGTERM, then shut it down gracefully, as ``web.run_app``
    does: in-flight requests finish, then the app's cleanup runs while its tasks still run."""

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signal_number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signal_number, stop.set)
        runner = AppRunner(app, access_log_class=AccessLog)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port, ssl_context=ssl_context).start()
            await stop.wait()
        finally:
            await runner.cleanup()

    asyncio.run(run())
