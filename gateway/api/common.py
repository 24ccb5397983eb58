"""Helpers shared by the API handlers: the actor, the database, bodies, queries, ids."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel

from crm_core.access import Actor
from crm_core.db import Database
from gateway.api.keys import ACTOR, API_STATE
from gateway.errors import ApiError, json_dumps

__all__ = [
    "actor",
    "database",
    "json_object",
    "ok",
    "parse_body",
    "path_id",
    "read_body",
    "read_query",
]

M = TypeVar("M", bound=BaseModel)


def actor(request: web.Request) -> Actor:
    return request[ACTOR]


def database(request: web.Request) -> Database:
    return request.app[request.app[API_STATE].db_key]


def path_id(request: web.Request, name: str = "id") -> int:
    raw = request.match_info[name]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise ApiError(404, f"{name} {raw!r} not found")
    return int(raw)


async def read_body(request: web.Request, model: type[M]) -> M:
    """Parse the JSON object body into ``model``: 400 if it is not JSON, 422 naming the
    field if a value is wrong.  An empty body counts as ``{}``."""
    return parse_body(await request.read(), model)


def parse_body(raw: bytes, model: type[M]) -> M:
    """A JSON object (empty counts as ``{}``) into ``model``: 400 if it is not JSON or not
    an object, 422 naming the field if a value is wrong."""
    return model.model_validate(json_object(raw))


def json_object(raw: bytes) -> dict[str, Any]:
    """A request body that must be a JSON object (empty counts as ``{}``); 400 otherwise."""
    data: Any = {}
    if raw.strip():
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"malformed JSON body: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object")
    return data


def read_query(request: web.Request, model: type[M]) -> M:
    """Query parameters into ``model``; a repeated parameter keeps its last value."""
    return model.model_validate({k: request.query.getall(k)[-1] for k in request.query})


def ok(data: Any, status: int = 200) -> web.Response:
    """JSON with Russian text as it is (not \\u-escaped)."""
    return web.json_response(data, status=status, dumps=json_dumps)
