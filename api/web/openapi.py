"""The OpenAPI 3.1 document, generated from the declared endpoints and their pydantic models."""

from __future__ import annotations

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
    """The document for ``api``, plus hand-described paths (WHIP/WHEP speak SDP, not JSON)."""
    models = _models(api.endpoints)
    _, schemas = models_json_schema([(m, "validation") for m in models], ref_template=REF)
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in api.endpoints:
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = _operation(endpoint)
    paths.update(extra_paths or {})
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
        "parameters": [
            {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
            for p in e.path_params
        ],
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
    if e.auth is Auth.REQUIRED:
        op["security"] = [{"bearer": []}]
    elif e.auth is Auth.OPTIONAL:
        op["security"] = [{}, {"bearer": []}]
    success: dict[str, Any] = {"description": "Success"}
    if e.produces != JSON:
        success["content"] = {e.produces: {"schema": {"type": "string"}}}
    elif e.response is not None:
        success["content"] = {"application/json": {"schema": _schema_of(e.response)}}
    error = {"content": {"application/json": {"schema": {"$ref": REF.format(model="Error")}}}}
    op["responses"] = {str(e.status): success} | {
        str(code): {"description": _REASONS[code], **error} for code in e.errors
    }
    return op
