"""VK Callback API webhook: ``POST /hooks/vk/{group_id}``.

* unknown group -> 404; body not JSON -> 400; wrong ``secret`` -> 403 (constant time;
  checked on every request when the group has a secret, confirmation included);
* ``confirmation`` -> the bare confirmation code (text/plain);
* every accepted or ignored event -> ``ok`` (text/plain) after ingest returned; a body
  that does not normalize is stored as a failed event (``meta.parse_error``) and also
  answered ``ok``, since VK pauses delivery after repeated errors;
* 503 only when the event could not be stored (:class:`IngestUnavailable`).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from connectors.vk.config import VkGroupSettings
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


def _secret_ok(settings: VkGroupSettings, data: Any) -> bool:
    if not settings.secret:
        return True
    given = data.get("secret") if isinstance(data, dict) else None
    if not isinstance(given, str):
        given = ""
    return hmac.compare_digest(given.encode(), settings.secret.encode())


def vk_callback(groups: Mapping[int, VkGroupSettings], ingest: Ingest) -> Handler:
    """Handler for ``POST /hooks/vk/{group_id}``."""
    by_id = dict(groups)

    async def handler(request: web.Request) -> web.StreamResponse:
        raw_id = request.match_info.get("group_id", "")
        settings = by_id.get(int(raw_id)) if raw_id.isdigit() else None
        if settings is None:
            return _text(f"unknown VK group {raw_id!r}", 404)
        body = await request.read()
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            return _text(f"body is not JSON: {exc}", 400)
        if not _secret_ok(settings, data):
            return _text("bad secret", 403)
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
