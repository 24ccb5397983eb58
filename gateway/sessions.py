"""What the sign-in pieces share without importing the API: the session cookie's
name, the CSRF header, the session policy from the settings, the client's address."""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web

from crm_core.services.auth import SessionPolicy
from gateway.keys import SETTINGS
from gateway.settings import Settings

__all__ = [
    "CSRF_HEADER",
    "CSRF_MESSAGE",
    "SESSION_COOKIE",
    "client_address",
    "session_policy",
]

SESSION_COOKIE = "crmhub_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_MESSAGE = (
    f"missing or wrong {CSRF_HEADER} header: a change made with a sign-in session needs "
    "the session's CSRF token"
)


def session_policy(settings: Settings | None) -> SessionPolicy:
    if settings is None:
        return SessionPolicy()
    return SessionPolicy(
        idle=timedelta(hours=settings.session_idle_hours),
        lifetime=timedelta(days=settings.session_max_days),
    )


def client_address(request: web.Request) -> str:
    """The client's address: the first ``X-Forwarded-For`` hop when crmhub sits behind
    a proxy that sets it (``webforms.trust_forwarded``, as deploy/nginx does), else the
    peer's address."""
    settings = request.app.get(SETTINGS)
    if settings is not None and settings.webforms.trust_forwarded:
        first = request.headers.get("X-Forwarded-For", "").split(",")[0].strip()
        if first:
            return first[:64]
    return (request.remote or "")[:64]
