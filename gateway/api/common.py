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
    "read_capped",
    "read_query",
]

M = TypeVar("M", bound=BaseModel)

# A JSON body of the API (uploads of files have their own, larger limits: messages.py,
# emails.py).  Read from the stream with this cap, not the app-wide client_max_size.
MAX_BODY_BYTES = 4 * 2**20
# Deeper JSON is refused before it reaches pydantic or a recursive walk (RecursionError).
MAX_JSON_DEPTH = 32
TOO_DEEP = f"the JSON body is nested deeper than {MAX_JSON_DEPTH} levels"


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
    """Parse the JSON object body into ``model``: 400 if it is not JSON, 413 over
    ``MAX_BODY_BYTES``, 422 naming the field if a value is wrong.  An empty body counts
    as ``{}``."""
    return parse_body(await read_capped(request, MAX_BODY_BYTES), model)


async def read_capped(request: web.Request, max_bytes: int, note: str = "") -> bytes:
    """The request body; 413 naming the limit (in MiB, plus ``note``) when it is longer
    than ``max_bytes`` (Content-Length first, then while reading)."""
    too_big = ApiError(413, f"the body is larger than {max_bytes // 2**20} MiB{note}")
    if request.content_length is not None and request.content_length > max_bytes:
        raise too_big
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > max_bytes:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


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
        except RecursionError:
            raise ApiError(400, TOO_DEEP) from None
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object")
    if _deeper_than(data, MAX_JSON_DEPTH):
        raise ApiError(400, TOO_DEEP)
    nul = _nul_at(data)
    if nul is not None:  # PostgreSQL text cannot hold it: refused here, never a 500 there
        raise ApiError(400, f"{nul}: text must not contain NUL (\\u0000) characters", nul)
    return data


def _nul_at(data: Any) -> str | None:
    """The path (``a.0.b``) of the first key or string holding a NUL character, if any."""
    stack: list[tuple[Any, str]] = [(data, "")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, str):
            if "\x00" in node:
                return path or "body"
        elif isinstance(node, dict):
            for k, v in node.items():
                where = f"{path}.{k}" if path else str(k)
                if "\x00" in k:
                    return where
                stack.append((v, where))
        elif isinstance(node, list):
            stack.extend((v, f"{path}.{i}" if path else str(i)) for i, v in enumerate(node))
    return None


def _deeper_than(data: Any, limit: int) -> bool:
    """Whether objects/arrays nest more than ``limit`` levels (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def read_query(request: web.Request, model: type[M]) -> M:
    """Query parameters into ``model``; a repeated parameter keeps its last value."""
    return model.model_validate({k: request.query.getall(k)[-1] for k in request.query})


def ok(data: Any, status: int = 200) -> web.Response:
    """JSON with Russian text as it is (not \\u-escaped)."""
    return web.json_response(data, status=status, dumps=json_dumps)
