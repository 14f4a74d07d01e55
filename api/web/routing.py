"""Declared endpoints: one decorator gives the aiohttp route, validation, auth and OpenAPI."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from aiohttp import web
from pydantic import BaseModel, TypeAdapter, ValidationError
from sqlalchemy import select

from api.identity.auth import InvalidToken
from api.identity.models import User
from api.web.context import SERVICES, Context
from api.web.errors import ApiError, validation_error

JSON = "application/json"
# Around the transaction, before any database work: given the request, the token's subject and
# the handler's arguments, it may hold the request back or refuse it with an ApiError.
Precheck = Callable[[web.Request, str | None, dict[str, Any]], AbstractAsyncContextManager[None]]


class Auth(StrEnum):
    NONE = "none"
    OPTIONAL = "optional"
    REQUIRED = "required"


@dataclass(frozen=True)
class Endpoint:
    """One operation of the REST API, as served and as documented."""

    method: str
    path: str
    handler: Callable[..., Awaitable[Any]]
    summary: str
    tag: str
    auth: Auth
    status: int
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: Any = None
    errors: tuple[int, ...] = ()
    description: str = ""
    precheck: Precheck | None = None
    # Anything but JSON (a CSV export): the handler builds and returns the web.Response itself.
    produces: str = JSON

    @property
    def path_params(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.path)


@dataclass
class Api:
    """A collection of endpoints; modules declare into one, the app mounts all of them."""

    endpoints: list[Endpoint] = field(default_factory=list)

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        tag: str,
        auth: Auth = Auth.REQUIRED,
        status: int = 200,
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        response: Any = None,
        errors: Iterable[int] = (),
        description: str = "",
        precheck: Precheck | None = None,
        produces: str = JSON,
    ) -> Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]:
        def register(handler: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
            self.endpoints.append(
                Endpoint(
                    method,
                    path,
                    handler,
                    summary,
                    tag,
                    auth,
                    status,
                    body,
                    query,
                    response,
                    tuple(errors),
                    description,
                    precheck,
                    produces,
                )
            )
            return handler

        return register

    def include(self, other: Api) -> None:
        self.endpoints.extend(other.endpoints)

    def routes(self) -> list[web.RouteDef]:
        return [web.route(e.method, e.path, _serve(e)) for e in self.endpoints]


def _serve(endpoint: Endpoint) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    adapter = TypeAdapter(endpoint.response) if endpoint.response is not None else None

    async def handle(request: web.Request) -> web.StreamResponse:
        services = request.app[SERVICES]
        user_id = _token_subject(request, endpoint.auth)
        kwargs: dict[str, Any] = {name: request.match_info[name] for name in endpoint.path_params}
        if endpoint.query is not None:
            kwargs["query"] = _validated(endpoint.query, dict(request.query))
        if endpoint.body is not None:
            kwargs["body"] = _validated(endpoint.body, await _json_body(request))
        sessions = services.reads if endpoint.method == "GET" else services.sessions
        guard = endpoint.precheck or _unguarded
        async with guard(request, user_id, kwargs), sessions.begin() as session:
            user = None
            if user_id is not None:
                user = await session.scalar(select(User).where(User.id == user_id))
                if user is None:
                    raise _unauthorized("The account of this token no longer exists")
            ctx = Context(request, session, user, services)
            result = await endpoint.handler(ctx, **kwargs)
        for job in ctx.committed:
            await job()
        if isinstance(result, web.StreamResponse):
            return result  # the handler's own body, of the media type it ``produces``
        if adapter is None:
            return web.Response(status=endpoint.status)
        return web.Response(
            body=adapter.dump_json(result), status=endpoint.status, content_type=JSON
        )

    return handle


def _unguarded(
    _request: web.Request, _user_id: str | None, _kwargs: dict[str, Any]
) -> AbstractAsyncContextManager[None]:
    return nullcontext()


def _validated(model: type[BaseModel], data: Any) -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


async def _json_body(request: web.Request) -> Any:
    if request.content_type != JSON:
        raise ApiError(415, "unsupported_media_type", f"Send the body as {JSON}")
    raw = await request.read()
    if not raw:
        raise ApiError(400, "invalid_json", "The request body is empty")
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_json", "The request body is not UTF-8") from None
    except json.JSONDecodeError:
        raise  # answered by the error middleware, with where it failed
    except (RecursionError, ValueError):
        # Nested past Python's recursion limit, or an integer over int's 4,300 digits.
        raise ApiError(
            400, "invalid_json", "The body nests too deeply or holds a number too long"
        ) from None


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _token_subject(request: web.Request, auth: Auth) -> str | None:
    """The user id the bearer token names; checked before any body is read or row touched."""
    if auth is Auth.NONE:
        return None
    token = bearer_token(request)
    if token is None:
        if auth is Auth.REQUIRED:
            raise _unauthorized("Sign in: send Authorization: Bearer <access token>")
        return None
    try:
        return request.app[SERVICES].tokens.subject(token)
    except InvalidToken as exc:
        raise _unauthorized(f"Invalid access token: {exc}") from None


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})
