"""VK Callback API webhook: ``POST /hooks/vk/{group_id}``.

* unknown group -> 404; body over ``max_body_bytes`` -> 413; nested deeper than
  :data:`~connectors.vk.guard.MAX_DEPTH` -> 400; wrong or missing ``secret`` -> 403
  (constant time, on every request, confirmation included; every community has a
  secret, see :class:`VkGroupSettings`).  The secret is found by a non-recursive scan
  of the raw bytes (:mod:`connectors.vk.guard`) and checked *before* the body is
  parsed; body not JSON -> 400 (after the secret matched);
* ``confirmation`` -> the bare confirmation code (text/plain);
* every accepted or ignored event -> ``ok`` (text/plain) after ingest returned; a body
  that does not normalize is stored as a failed event (``meta.parse_error``) and also
  answered ``ok``, since VK pauses delivery after repeated errors;
* 503 only when the event could not be stored (:class:`IngestUnavailable`).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from connectors.vk.config import VkGroupSettings
from connectors.vk.guard import MAX_DEPTH, scan_body, secret_matches
from connectors.vk.normalize import failed_callback_event, normalize_callback
from crm_core.events import InboundEvent, NormalizeError
from crm_core.ports import Ingest, IngestUnavailable

__all__ = ["build_callback_event", "vk_callback"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _text(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/plain")


def build_callback_event(group_id: int, data: Any, body: bytes) -> InboundEvent | None:
    """Normalize, or build the failed event; None for ``confirmation``."""
    try:
        return normalize_callback(data, group_id=group_id)
    except NormalizeError as err:
        return failed_callback_event(group_id=group_id, body=body, error=err)


async def _read_at_most(request: web.Request, limit: int) -> bytes | None:
    """The body, or None when it is longer than ``limit`` (read no further)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def vk_callback(groups: Mapping[int, VkGroupSettings], ingest: Ingest) -> Handler:
    """Handler for ``POST /hooks/vk/{group_id}``."""
    by_id = dict(groups)

    async def handler(request: web.Request) -> web.StreamResponse:
        raw_id = request.match_info.get("group_id", "")
        settings = by_id.get(int(raw_id)) if raw_id.isascii() and raw_id.isdigit() else None
        if settings is None:
            return _text(f"unknown VK group {raw_id!r}", 404)
        body = await _read_at_most(request, settings.max_body_bytes)
        if body is None:
            return _text(f"body: larger than {settings.max_body_bytes} bytes", 413)
        scan = scan_body(body)
        if scan.depth > MAX_DEPTH:
            return _text(f"body: nested deeper than {MAX_DEPTH} levels", 400)
        if not secret_matches(scan.secret, settings.secret):
            return _text("bad secret", 403)
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            return _text(f"body is not JSON: {exc}", 400)
        if isinstance(data, dict) and data.get("type") == "confirmation":
            if str(data.get("group_id", settings.group_id)) != str(settings.group_id):
                return _text("group_id does not match", 400)
            return _text(settings.confirmation_code)
        event = build_callback_event(settings.group_id, data, body)
        if event is not None:
            try:
                await ingest(event)
            except IngestUnavailable as exc:
                resp = _text(f"cannot store the event now: {exc}", 503)
                resp.headers["Retry-After"] = "5"
                return resp
        return _text("ok")

    return handler
