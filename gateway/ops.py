"""``/healthz``, ``/readyz`` and ``/metrics``.

``/readyz`` tells anyone the status and each connector's state; the reasons (error
texts: hosts, logins, PBX answers) only to an admin's bearer token or to an address in
``http.status_details_from``, as one clean line.  ``/metrics`` carries no error text.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select

from crm_core.models import InboxEvent
from crm_core.ports import ConnectorHealth
from crm_core.services.users import user_by_token
from gateway.api.keys import DB
from gateway.auth import bearer_token
from gateway.keys import HEALTH, METRICS, SETTINGS

__all__ = ["setup_ops"]


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready when the database answers; connectors' link state is reported alongside
    (a PBX or mailbox that is down degrades the hub but does not stop it)."""
    app = request.app
    details = await _may_see_details(request)
    body: dict[str, object] = {"database": "ok"}
    status = 200
    try:
        await asyncio.wait_for(app[DB].ping(), 3)
    except Exception as exc:
        body["database"] = f"unreachable: {one_line(str(exc))}" if details else "unreachable"
        status = 503
    body["connectors"] = [_connector(h, details) for h in app[HEALTH].all()]
    if details and status == 200:
        await _leaders(app, body)
    degraded = [c for c in app[HEALTH].all() if not c.ok]
    body["status"] = "unavailable" if status != 200 else ("degraded" if degraded else "ok")
    return web.json_response(body, status=status)


_AMI_MESSAGE = re.compile(r"<Message\b(?P<fields>.*?)>", re.DOTALL)
_FIELD = re.compile(r"""(?P<k>\w+)=(?P<v>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")""")
MAX_REASON = 300


def _ami_message(m: re.Match[str]) -> str:
    fields = {f["k"].lower(): f["v"][1:-1] for f in _FIELD.finditer(m["fields"])}
    parts = [fields.get("response", ""), fields.get("message", "")]
    return ": ".join(p for p in parts if p) or "AMI error"


def one_line(text: str) -> str:
    """A connector's reason as one clean line: a panoramisk ``<Message ...>`` repr becomes
    ``Response: Message``, whitespace and control characters collapse, long text is cut."""
    text = _AMI_MESSAGE.sub(_ami_message, text)
    text = " ".join(re.sub(r"[\x00-\x1f\x7f]", " ", text).split())
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"


async def _leaders(app: web.Application, body: dict[str, Any]) -> None:
    """Who leads which connector (PostgreSQL: the lock holder's process name)."""
    from crm_core.db import process_name
    from gateway.leader import holders, lock_names

    body["process"] = process_name()
    locks = lock_names(app[SETTINGS])
    try:
        held = await asyncio.wait_for(holders(app[DB], list(locks.values())), 3)
    except Exception:  # pragma: no cover - the database answered the ping just now
        return
    for c in body["connectors"]:
        if c["name"] in locks:
            c["leader"] = held.get(locks[c["name"]])


def _connector(h: ConnectorHealth, details: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"name": h.name, "channel": h.channel, "state": h.state.value}
    if details:
        out["reason"] = one_line(h.reason) if h.reason else None
        out["since"] = h.since.isoformat()
    return out


async def _may_see_details(request: web.Request) -> bool:
    """An address in ``http.status_details_from``, or an active admin's bearer token."""
    allowed = request.app[SETTINGS].http.status_details_from
    if allowed and request.remote:
        try:
            ip = ipaddress.ip_address(request.remote)
        except ValueError:
            ip = None
        if ip is not None and any(ip in ipaddress.ip_network(n, strict=False) for n in allowed):
            return True
    token = bearer_token(request)
    if token is None:
        return False
    try:
        async with request.app[DB].sessions() as s:
            user = await asyncio.wait_for(user_by_token(s, token), 3)
    except Exception:  # the database is down: no details, the status still answers
        return False
    return user is not None and user.active and user.role == "admin"


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
