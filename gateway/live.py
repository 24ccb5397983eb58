"""Live events for operators: ``GET /live`` (WebSocket) and
``GET /live/sse`` (Server-Sent Events), authenticated with the API token
(``Authorization: Bearer`` or ``?token=`` for browsers), filtered to what the user may see."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

from aiohttp import WSMsgType, web
from sqlalchemy import select

from crm_core.live import LiveEvent
from crm_core.models import User
from crm_core.services.users import user_by_token
from gateway.api.keys import DB
from gateway.keys import LIVE

__all__ = ["may_see", "setup_live"]

HEARTBEAT = 20.0


class _Teams:
    """owner id -> team, refreshed every minute (supervisors see their team's events)."""

    def __init__(self) -> None:
        self.at = 0.0
        self.map: dict[int, str | None] = {}

    async def get(self, app: web.Application) -> dict[int, str | None]:
        if time.monotonic() - self.at > 60:
            async with app[DB].sessions() as s:
                rows = await s.execute(select(User.id, User.team))
                self.map = {r.id: r.team for r in rows}
            self.at = time.monotonic()
        return self.map


TEAMS = web.AppKey("live_teams", _Teams)


def may_see(user: User, event: LiveEvent, teams: dict[int, str | None]) -> bool:
    if event.user_ids is not None and user.id in event.user_ids:
        return True
    if user.role == "admin":
        return True
    if event.owner_id is None:
        return event.user_ids is None and user.role == "supervisor"
    if event.owner_id == user.id:
        return True
    return (
        user.role == "supervisor"
        and user.team is not None
        and teams.get(event.owner_id) == user.team
    )


async def _auth(request: web.Request) -> User:
    header = request.headers.get("Authorization", "")
    token = (
        header[7:].strip() if header.lower().startswith("bearer ") else request.query.get("token")
    )
    if not token:
        raise web.HTTPUnauthorized(
            text=json.dumps({"error": "missing bearer token", "field": "Authorization"}),
            content_type="application/json",
        )
    async with request.app[DB].sessions() as s:
        user = await user_by_token(s, token)
    if user is None or not user.active:
        raise web.HTTPUnauthorized(
            text=json.dumps({"error": "invalid or inactive token", "field": "Authorization"}),
            content_type="application/json",
        )
    return user


def _frame(event: LiveEvent) -> str:
    return json.dumps(
        {"kind": event.kind, "payload": dict(event.payload)}, ensure_ascii=False, default=str
    )


async def websocket(request: web.Request) -> web.StreamResponse:
    user = await _auth(request)
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT)
    await ws.prepare(request)
    app = request.app
    async with app[LIVE].subscribe() as sub:
        await ws.send_str(json.dumps({"kind": "hello", "payload": {"user_id": user.id}}))

        async def pump() -> None:
            while True:
                ev = await sub.queue.get()
                if may_see(user, ev, await app[TEAMS].get(app)):
                    await ws.send_str(_frame(ev))

        task = asyncio.create_task(pump())
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT and msg.data == "ping":
                    await ws.send_str(json.dumps({"kind": "pong", "payload": {}}))
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    return ws


async def sse(request: web.Request) -> web.StreamResponse:
    user = await _auth(request)
    resp = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await resp.prepare(request)
    app = request.app
    async with app[LIVE].subscribe() as sub:
        await resp.write(b"event: hello\ndata: {}\n\n")
        while True:
            try:
                ev = await asyncio.wait_for(sub.queue.get(), HEARTBEAT)
            except TimeoutError:
                await resp.write(b": keep-alive\n\n")
                continue
            if may_see(user, ev, await app[TEAMS].get(app)):
                await resp.write(f"event: {ev.kind}\ndata: {_frame(ev)}\n\n".encode())


def setup_live(app: web.Application) -> None:
    app[TEAMS] = _Teams()
    app.router.add_get("/live", websocket)
    app.router.add_get("/live/sse", sse)
