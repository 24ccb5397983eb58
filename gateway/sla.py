"""SLA timers and task reminders in the service (filled in by the routing issue)."""

from __future__ import annotations

from aiohttp import web

__all__ = ["setup_sla"]


def setup_sla(app: web.Application) -> None:
    """Append the reminders/SLA worker to ``app.cleanup_ctx``."""
    return None
