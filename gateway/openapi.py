"""The OpenAPI 3.1 document of ``/api/v1``, built from the routes the app registered.

Each handler carries its metadata (summary, query and body models, response model)
through the :func:`operation` decorator; :func:`build_document` walks ``app.router``
so the document cannot drift from the routes.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel

__all__ = ["API_PREFIX", "Operation", "build_document", "documented_routes", "operation"]

API_PREFIX = "/api/v1"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Handler)
_PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")


@dataclass(frozen=True, slots=True)
class Operation:
    summary: str
    tag: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    many: bool = False  # the response is a page of ``response`` items
    status: int = 200
    public: bool = False
    errors: tuple[int, ...] = field(default=(401, 404, 422))
    body_type: str = "application/json"  # or multipart/form-data (uploads)


def operation(**kwargs: Any) -> Callable[[H], H]:
    """Attach OpenAPI metadata to a handler: ``@operation(summary=..., tag=...)``."""
    op = Operation(**kwargs)

    def wrap(handler: H) -> H:
        handler.__openapi__ = op  # type: ignore[attr-defined]
        return handler

    return wrap


def documented_routes(app: web.Application) -> list[tuple[str, str, Operation | None]]:
    """(method, path, metadata) of every registered ``/api/v1`` route except HEAD."""
    out = []
    for route in app.router.routes():
        info = route.resource.canonical if route.resource is not None else ""
        if not info.startswith(API_PREFIX) or route.method in ("HEAD", "*"):
            continue
        out.append((route.method, info, getattr(route.handler, "__openapi__", None)))
    return out


_ERROR_SCHEMA = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "field": {"type": "string"}},
    "required": ["error"],
}
_ERROR_TEXT = {
    400: "Malformed JSON",
    401: "Missing or invalid token",
    403: "Forbidden (inactive user, assignment out of reach)",
    404: "Not found (or not visible to you)",
    409: "Conflict",
    422: "Validation error naming the field",
}


def _schema(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in schema.pop("$defs", {}).items():
        components[name] = sub
    components[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _query_params(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema()
    required = set(schema.get("required", []))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": prop}
        for name, prop in schema.get("properties", {}).items()
    ]


def _operation(
    method: str, path: str, op: Operation | None, comps: dict[str, Any]
) -> dict[str, Any]:
    if op is None:
        return {"summary": f"{method} {path}", "responses": {"200": {"description": "OK"}}}
    out: dict[str, Any] = {
        "summary": op.summary,
        "tags": [op.tag],
        "operationId": f"{method.lower()}_{path[len(API_PREFIX) :].strip('/')}".replace("/", "_")
        .replace("{", "")
        .replace("}", ""),
    }
    params = [
        {
            "name": n,
            "in": "path",
            "required": True,
            "schema": {"type": "integer"} if n.endswith("id") else {"type": "string"},
        }
        for n in _PARAM.findall(path)
    ]
    if op.query is not None:
        params += _query_params(op.query)
    if params:
        out["parameters"] = params
    if op.body is not None:
        out["requestBody"] = {
            "required": True,
            "content": {op.body_type: {"schema": _schema(op.body, comps)}},
        }
    ok: dict[str, Any] = {"description": "OK"}
    if op.response is not None:
        item = _schema(op.response, comps)
        schema: dict[str, Any] = item
        if op.many:
            schema = {
                "type": "object",
                "properties": {
                    "items": {"type": "array", "items": item},
                    "total": {"type": "integer"},
                    "limit": {"type": "integer"},
                    "offset": {"type": "integer"},
                    "next_after": {"type": ["string", "null"]},
                    "total_capped": {"type": "boolean"},
                },
                "required": ["items", "total", "limit", "offset"],
            }
        ok["content"] = {"application/json": {"schema": schema}}
    responses: dict[str, Any] = {str(op.status): ok}
    codes = set(op.errors) | ({400} if op.body is not None else set())
    if op.public and op.errors == Operation.__dataclass_fields__["errors"].default:
        codes.discard(401)  # public with the default errors: no 401 (login lists its own)
    for code in sorted(codes):
        responses[str(code)] = {
            "description": _ERROR_TEXT.get(code, "Error"),
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    out["responses"] = responses
    if op.public:
        out["security"] = []
    return out


def build_document(app: web.Application, *, version: str = "1") -> dict[str, Any]:
    components: dict[str, Any] = {"Error": _ERROR_SCHEMA}
    paths: dict[str, dict[str, Any]] = {}
    for method, path, op in documented_routes(app):
        paths.setdefault(path, {})[method.lower()] = _operation(method, path, op, components)
    return {
        "openapi": "3.1.0",
        "info": {"title": "crmhub API", "version": version},
        "servers": [{"url": "/"}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(components.items())),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
