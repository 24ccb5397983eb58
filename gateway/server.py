"""How the HTTP server runs: timeouts against slow clients (slowloris).

aiohttp has one timer for a connection that waits for a request: it starts when the
connection opens and again after every answer, and closes the connection when complete
request headers have not arrived by then (``keepalive_timeout``).  We set it to
``http.header_timeout_seconds`` (aiohttp's own default is an hour).  A request body must
then arrive whole within ``http.body_timeout_seconds`` (:func:`body_timeout_middleware`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web

from gateway.settings import Settings

__all__ = ["body_timeout_middleware", "server_options"]

log = structlog.get_logger("crmhub.server")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def server_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``web.run_app`` / ``web.AppRunner``."""
    return {"keepalive_timeout": settings.http.header_timeout_seconds}


def body_timeout_middleware(seconds: float) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Close the connection when a request's body has not arrived whole in ``seconds``
    (a client trickling its body must not hold a connection and a handler for ever)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.can_read_body or request.content.is_eof():
            return await handler(request)

        expired = False

        def expire() -> None:
            nonlocal expired
            if not request.content.is_eof() and request.transport is not None:
                expired = True
                log.warning("http_body_timeout", path=request.path, seconds=seconds)
                request.transport.close()

        timer = asyncio.get_running_loop().call_later(seconds, expire)
        try:
            return await handler(request)
        except ConnectionError:
            if not expired:
                raise
            return web.Response(status=408)  # not sent: the connection is closed
        finally:
            timer.cancel()

    return middleware
