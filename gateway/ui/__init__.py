"""The operator UI under ``/ui``: plain HTML, CSS and JavaScript modules, no build step.

``setup_ui(app)`` serves ``static/index.html`` at ``/ui/`` and the assets under
``/ui/static/``, with a strict Content-Security-Policy: scripts and styles only from
this server, no inline script, inbound HTML shown only in sandboxed ``srcdoc`` frames.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

__all__ = ["CSP", "STATIC", "setup_ui"]

STATIC = Path(__file__).resolve().parent / "static"

CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        # Inline styles only matter inside sandboxed email frames (no scripts run there).
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "media-src 'self' https: http:",
        "frame-src 'self' about:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)

_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


async def _index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "index.html", headers=_HEADERS)


async def _to_index(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/ui/")


async def _headers(request: web.Request, response: web.StreamResponse) -> None:
    if request.path.startswith("/ui/static/"):
        for name, value in _HEADERS.items():
            response.headers.setdefault(name, value)


def setup_ui(app: web.Application) -> None:
    """Add ``/`` and ``/ui`` (redirects), ``/ui/`` (the page) and ``/ui/static/*`` (assets)."""
    app.router.add_get("/", _to_index)
    app.router.add_get("/ui", _to_index)
    app.router.add_get("/ui/", _index)
    app.router.add_get("/ui/set-password", _index)  # the page behind invitation/reset links
    app.router.add_static("/ui/static/", STATIC, follow_symlinks=False)
    app.on_response_prepare.append(_headers)
