"""The OpenAPI 3.1 document, generated from the declared endpoints and their pydantic models."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import models_json_schema

from api.web.routing import JSON, Api, Auth, Endpoint
from api.web.schemas import Error

REF = "#/components/schemas/{model}"
_REASONS = {
    400: "Malformed request",
    401: "Not signed in, or the token is invalid",
    403: "Not allowed for this account",
    404: "Not found",
    409: "Conflicts with the current state",
    413: "Body too large",
    415: "Wrong content type",
    422: "Invalid field values",
    429: "Rate limited; see Retry-After",
    502: "A service it relies on (the payment provider) failed; nothing changed",
    503: "Temporarily unavailable; see Retry-After",
}


def build_spec(
    api: Api,
    *,
    version: str,
    server_url: str = "/",
    extra_paths: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The document for ``api``, plus hand-described paths (``operation``: the routes that are
    not JSON endpoints), whose path parameters are read from their paths."""
    models = _models(api.endpoints)
    _, schemas = models_json_schema([(m, "validation") for m in models], ref_template=REF)
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in api.endpoints:
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = _operation(endpoint)
    for path, operations in (extra_paths or {}).items():
        parameters = _path_parameters(path)
        paths[path] = {
            method: {**op, "parameters": [*parameters, *op.get("parameters", ())]}
            for method, op in operations.items()
        }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Shopcast API",
            "version": version,
            "description": "Live-commerce server: accounts, products, streams. "
            "Errors are {error, message, details} with the HTTP status.",
        },
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


def operation(
    operation_id: str,
    summary: str,
    *,
    tag: str,
    status: int = 200,
    success: str = "Success",
    produces: str | None = None,
    consumes: str | None = None,
    auth: Auth = Auth.NONE,
    errors: dict[int, str] | None = None,
    description: str = "",
) -> dict[str, Any]:
    """A route that is not a JSON endpoint (SDP, HLS, files, pages), described by hand in the
    generated operations' shape: its body ``consumes``, its answer ``produces`` (a media type),
    ``errors`` in the JSON error contract, each with its reason."""
    answer: dict[str, Any] = {"description": success}
    if produces is not None:
        answer["content"] = {produces: {"schema": {"type": "string"}}}
    op: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "tags": [tag],
        "responses": {str(status): answer} | _errors(errors or {}),
    }
    if auth is not Auth.NONE:
        op["security"] = _security(auth)
    if consumes is not None:
        body = {"schema": {"type": "string"}}
        op["requestBody"] = {"required": True, "content": {consumes: body}}
    if description:
        op["description"] = description
    return op


def files(operation_id: str, summary: str) -> dict[str, Any]:
    """A folder served as it is (a static route): any file below it, or 404."""
    return {
        "get": operation(
            operation_id,
            summary,
            tag="files",
            produces="application/octet-stream",
            errors={404: "No such file"},
        )
    }


def _path_parameters(path: str) -> list[dict[str, Any]]:
    return [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{(\w+)}", path)
    ]


def _security(auth: Auth) -> list[dict[str, list[str]]]:
    """For a route that takes a token: required, or optional (anonymous allowed)."""
    bearer: dict[str, list[str]] = {"bearer": []}
    return [bearer] if auth is Auth.REQUIRED else [{}, bearer]


def _errors(reasons: dict[int, str]) -> dict[str, Any]:
    error = {"content": {"application/json": {"schema": {"$ref": REF.format(model="Error")}}}}
    return {str(code): {"description": reason, **error} for code, reason in reasons.items()}


def _models(endpoints: list[Endpoint]) -> list[type[BaseModel]]:
    found: dict[str, type[BaseModel]] = {"Error": Error}
    for e in endpoints:
        for model in (e.body, e.query, _inner(e.response)):
            if model is not None:
                found[model.__name__] = model
    return list(found.values())


def _inner(response: Any) -> type[BaseModel] | None:
    args = getattr(response, "__args__", None)
    model = args[0] if args else response
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _schema_of(response: Any) -> dict[str, Any]:
    if isinstance(response, type) and issubclass(response, BaseModel):
        return {"$ref": REF.format(model=response.__name__)}
    inner = _inner(response)
    if inner is not None:
        return {"type": "array", "items": {"$ref": REF.format(model=inner.__name__)}}
    return TypeAdapter(response).json_schema(ref_template=REF)


def _operation(e: Endpoint) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": e.summary,
        "tags": [e.tag],
        "operationId": e.handler.__name__,
        "parameters": _path_parameters(e.path),
    }
    if e.description:
        op["description"] = e.description
    if e.query is not None:
        schema = e.query.model_json_schema(ref_template=REF)
        op["parameters"] += [
            {
                "name": name,
                "in": "query",
                "required": name in schema.get("required", ()),
                "schema": prop,
            }
            for name, prop in schema["properties"].items()
        ]
    if e.body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _schema_of(e.body)}},
        }
    if e.auth is not Auth.NONE:
        op["security"] = _security(e.auth)
    success: dict[str, Any] = {"description": "Success"}
    if e.produces != JSON:
        success["content"] = {e.produces: {"schema": {"type": "string"}}}
    elif e.response is not None:
        success["content"] = {"application/json": {"schema": _schema_of(e.response)}}
    op["responses"] = {str(e.status): success} | _errors({c: _REASONS[c] for c in e.errors})
    return op
