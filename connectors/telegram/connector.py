"""Telegram transport: the webhook handler the gateway mounts, and the shared update path.

``POST /hooks/telegram/{bot_name}``:

* unknown bot -> 404; ``X-Telegram-Bot-Api-Secret-Token`` wrong or the bot has no
  webhook secret -> 403 (constant-time comparison); body not JSON -> 400;
* a body that does not normalize is still stored, as an ``ignored`` event carrying
  ``meta["parse_error"]`` (the core marks it failed, for replay), and answered 200 so
  Telegram does not stall the bot;
* 200 only after ``ingest`` returned (the inbox row is committed);
  :class:`IngestUnavailable` -> 503, Telegram delivers again later.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from connectors.telegram.config import TelegramBotSettings
from connectors.telegram.media import MediaFetcher
from connectors.telegram.normalize import failed_update_event, normalize_update
from crm_core.events import InboundEvent, NormalizeError
from crm_core.ports import Ingest, IngestReceipt, IngestUnavailable

__all__ = ["SECRET_HEADER", "build_event", "submit_update", "telegram_webhook"]

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def build_event(
    bot_name: str, data: Any, body: bytes, *, media: MediaFetcher | None = None
) -> InboundEvent:
    """Normalize (or build the failed event), then fetch media if asked."""
    try:
        event = normalize_update(data, bot_name=bot_name)
    except NormalizeError as err:
        return failed_update_event(bot_name=bot_name, body=body, error=err)
    if media is not None and event.attachments:
        event = await media.fetch(bot_name, event)
    return event


async def submit_update(
    bot_name: str,
    data: Any,
    body: bytes,
    ingest: Ingest,
    *,
    media: MediaFetcher | None = None,
) -> IngestReceipt:
    """The one path for webhook and polling: build the event and make it durable."""
    event = await build_event(bot_name, data, body, media=media)
    return await ingest(event)


RETRY_AFTER_UNAVAILABLE = "5"  # seconds, with a 503 when the update could not be stored


def _error(status: int, message: str, field: str | None = None) -> web.Response:
    return web.json_response({"error": message, "field": field}, status=status)


def telegram_webhook(
    bots: Mapping[str, TelegramBotSettings],
    ingest: Ingest,
    *,
    media: MediaFetcher | None = None,
) -> Handler:
    """Handler for ``POST /hooks/telegram/{bot_name}``."""
    by_name = dict(bots)

    async def handler(request: web.Request) -> web.StreamResponse:
        name = request.match_info.get("bot_name", "")
        settings = by_name.get(name)
        if settings is None:
            return _error(404, f"unknown Telegram bot {name!r}", "bot_name")
        expected = settings.webhook_secret.encode()
        given = request.headers.get(SECRET_HEADER, "").encode()
        # compare_digest first, so the time taken does not depend on which check failed.
        if not hmac.compare_digest(given, expected) or not expected:
            return _error(403, "bad or missing secret token", SECRET_HEADER)
        body = await request.read()
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            return _error(400, f"body is not JSON: {exc}", "body")
        try:
            receipt = await submit_update(name, data, body, ingest, media=media)
        except IngestUnavailable as exc:
            resp = _error(503, f"cannot store the update now: {exc}")
            resp.headers["Retry-After"] = RETRY_AFTER_UNAVAILABLE
            return resp
        return web.json_response({"ok": True, "duplicate": receipt.duplicate})

    return handler
