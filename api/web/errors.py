"""The error contract: every failure is JSON ``{"error", "message", "details"}`` with its status."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from twins.ratelimit import Limit, RateLimiter

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Codes for aiohttp's own HTTP exceptions, so routing and size errors read like ours.
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
    503: "unavailable",
}


class ApiError(Exception):
    """A refusal with a stable machine-readable code; raising it rolls the request back."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = dict(details or {})
        self.headers = dict(headers or {})


async def within_limit(limiter: RateLimiter, key: str, limit: Limit, message: str) -> None:
    """Take one of ``key``'s tokens, or refuse with ``429 rate_limited`` and when to retry."""
    wait = await limiter.acquire(key, limit)
    if wait:
        raise ApiError(
            429, "rate_limited", message, headers={"Retry-After": str(max(1, round(wait)))}
        )


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def forbidden(message: str) -> ApiError:
    return ApiError(403, "forbidden", message)


def error_response(error: ApiError) -> web.Response:
    body = {"error": error.code, "message": error.message, "details": error.details}
    return web.json_response(body, status=error.status, headers=error.headers)


def validation_error(exc: ValidationError) -> ApiError:
    problems = [
        {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"], "type": e["type"]}
        for e in exc.errors(include_url=False, include_input=False)
    ]
    first = problems[0]
    where = f"{first['field']}: " if first["field"] else ""
    return ApiError(422, "invalid", f"{where}{first['message']}", {"errors": problems})


def check_headers(request: web.Request) -> None:
    """Header bytes that are not UTF-8 reach us as surrogate escapes, on which any later
    ``encode`` (a token check, a database driver) fails: refuse them here, for every route."""
    for name, value in request.headers.items():
        if value.isascii():
            continue
        try:
            value.encode()
        except UnicodeEncodeError:
            if name.lower() == "authorization":
                raise ApiError(
                    401,
                    "unauthorized",
                    "The Authorization header is not UTF-8 text",
                    headers={"WWW-Authenticate": "Bearer"},
                ) from None
            raise ApiError(400, "invalid_header", f"The {name} header is not UTF-8 text") from None


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        check_headers(request)
        return await handler(request)
    except ApiError as exc:
        return error_response(exc)
    except ValidationError as exc:
        return error_response(validation_error(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "error")
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        return error_response(ApiError(exc.status, code, exc.reason, headers=headers))
    except json.JSONDecodeError as exc:
        return error_response(ApiError(400, "invalid_json", f"Body is not valid JSON: {exc.msg}"))
    except DBAPIError as exc:
        if not database_unreachable(exc):
            log.exception("database error on %s %s", request.method, request.path)
            return error_response(ApiError(500, "internal", "Internal server error"))
        log.warning("database unavailable on %s %s", request.method, request.path, exc_info=True)
        return _retry_shortly("database_unavailable", "The database is unreachable")
    except PoolTimeout:
        log.warning("no database connection free on %s %s", request.method, request.path)
        return _retry_shortly("database_busy", "The database is busy")
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(ApiError(500, "internal", "Internal server error"))


def _retry_shortly(code: str, reason: str) -> web.Response:
    return error_response(
        ApiError(503, code, f"{reason}; retry shortly", headers={"Retry-After": "2"})
    )


def database_unreachable(exc: DBAPIError) -> bool:
    """A lost or refused connection (a restart, a failover), not a fault of the request."""
    return isinstance(exc, OperationalError | InterfaceError) or exc.connection_invalidated
