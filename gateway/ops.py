"""``/healthz``, ``/readyz`` and ``/metrics``."""

from __future__ import annotations

import asyncio

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select

from crm_core.models import InboxEvent
from gateway.api.keys import DB
from gateway.keys import HEALTH, METRICS

__all__ = ["setup_ops"]


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready when the database answers; connectors' link state is reported alongside
    (a PBX or mailbox that is down degrades the hub but does not stop it)."""
    app = request.app
    body: dict[str, object] = {"database": "ok"}
    status = 200
    try:
        await asyncio.wait_for(app[DB].ping(), 3)
    except Exception as exc:
        body["database"] = f"unreachable: {exc}"
        status = 503
    connectors = [h.to_json() for h in app[HEALTH].all()]
    body["connectors"] = connectors
    degraded = [c for c in app[HEALTH].all() if not c.ok]
    body["status"] = "unavailable" if status != 200 else ("degraded" if degraded else "ok")
    return web.json_response(body, status=status)


async def metrics(request: web.Request) -> web.Response:
    app = request.app
    m = app[METRICS]
    for h in app[HEALTH].all():
        m.connector_up.labels(h.channel, h.name).set(1 if h.ok else 0)
    try:
        async with app[DB].sessions() as s:
            failed = await s.scalar(
                select(func.count()).select_from(InboxEvent).where(InboxEvent.status == "failed")
            )
        m.inbox_failed.set(int(failed or 0))
    except Exception:  # metrics must answer even when the database does not
        pass
    resp = web.Response(body=generate_latest(m.registry))
    resp.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    resp.charset = "utf-8"
    return resp


def setup_ops(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
