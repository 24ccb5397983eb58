"""Live events for operators: ``GET /live`` (WebSocket) and ``GET /live/sse``
(Server-Sent Events), filtered to what the user may see.

Authentication: ``Authorization: Bearer <token>`` (API clients), or ``?ticket=`` from
``POST /api/v1/live/ticket`` (browsers: a single-use ticket valid 30 s, so the token
never appears in a URL).  Each stream remembers its user and the hash of the token it
was opened with; every ``live_recheck_seconds`` one query compares them with the users
table and closes the streams of a deactivated user or a rotated token (the admin API
closes them at once in its own process).  On shutdown every stream ends cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator

import structlog
from aiohttp import WSCloseCode, WSMsgType, web
from sqlalchemy import select

from crm_core.live import LiveEvent, LiveHub, Subscription, SubscriptionClosed
from crm_core.models import User
from crm_core.services.users import redeem_live_ticket, user_by_token
from gateway.api.keys import DB
from gateway.keys import LIVE, SETTINGS

__all__ = ["REVOKED", "close_streams_of", "may_see", "setup_live"]

HEARTBEAT = 20.0
REVOKED = "revoked"
WS_REVOKED = 4401  # application close code: the token no longer opens this stream
_LEFT = "left"  # the browser closed the socket
log = structlog.get_logger("crmhub.live")


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


def _unauthorized(message: str) -> web.HTTPUnauthorized:
    return web.HTTPUnauthorized(
        text=json.dumps({"error": message, "field": "Authorization"}),
        content_type="application/json",
    )


async def _auth(request: web.Request) -> User:
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else ""
    ticket = request.query.get("ticket", "")
    if not token and not ticket:
        raise _unauthorized("missing bearer token or ticket")
    db = request.app[DB]
    if token:
        async with db.sessions() as s:
            user = await user_by_token(s, token)
    else:
        async with db.transaction() as s:
            user = await redeem_live_ticket(s, ticket)
    if user is None or not user.active:
        raise _unauthorized("invalid or inactive token" if token else "invalid or expired ticket")
    return user


def _frame(event: LiveEvent) -> str:
    return json.dumps(
        {"kind": event.kind, "payload": dict(event.payload)}, ensure_ascii=False, default=str
    )


def _subscribe(
    request: web.Request, user: User
) -> contextlib.AbstractAsyncContextManager[Subscription]:
    return request.app[LIVE].subscribe(user_id=user.id, credential=user.token_hash)


async def websocket(request: web.Request) -> web.StreamResponse:
    user = await _auth(request)
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT)
    await ws.prepare(request)
    app = request.app
    async with _subscribe(request, user) as sub:
        await ws.send_str(json.dumps({"kind": "hello", "payload": {"user_id": user.id}}))

        async def read() -> None:
            try:
                async for msg in ws:
                    if msg.type == WSMsgType.TEXT and msg.data == "ping":
                        await ws.send_str(json.dumps({"kind": "pong", "payload": {}}))
                    elif msg.type == WSMsgType.ERROR:
                        break
            finally:
                sub.close(_LEFT)

        # One reader task; this handler alone writes and closes.  Closing here (not from
        # a second task while the reader waits) lets the close handshake finish, so the
        # browser sees our close code, not an abnormal closure (1006).
        reader = asyncio.create_task(read())
        try:
            while True:
                ev = await sub.next()
                if may_see(user, ev, await app[TEAMS].get(app)):
                    await ws.send_str(_frame(ev))
        except SubscriptionClosed as closed:
            if closed.reason != _LEFT:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
                code = WS_REVOKED if closed.reason == REVOKED else WSCloseCode.GOING_AWAY
                await ws.close(code=code, message=closed.reason.encode())
        except ConnectionResetError:  # the browser went away mid-send
            pass
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
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
    async with _subscribe(request, user) as sub:
        try:
            await resp.write(b"event: hello\ndata: {}\n\n")
            while True:
                try:
                    ev = await asyncio.wait_for(sub.next(), HEARTBEAT)
                except TimeoutError:
                    await resp.write(b": keep-alive\n\n")
                    continue
                if may_see(user, ev, await app[TEAMS].get(app)):
                    await resp.write(f"event: {ev.kind}\ndata: {_frame(ev)}\n\n".encode())
        except SubscriptionClosed as closed:
            data = json.dumps({"reason": closed.reason})
            await resp.write(f"event: bye\ndata: {data}\n\n".encode())
            await resp.write_eof()
        except ConnectionResetError:  # the browser went away: nothing to answer
            pass
    return resp


def close_streams_of(live: LiveHub, user_id: int) -> int:
    """Close every open stream of ``user_id`` in this process (deactivated, token rotated)."""
    return live.close(REVOKED, lambda sub: sub.user_id == user_id)


async def recheck_streams(app: web.Application) -> int:
    """Close the streams whose user is gone or inactive or whose token was rotated."""
    live = app[LIVE]
    subs = [s for s in live.streams() if s.user_id is not None and s.closed_reason is None]
    if not subs:
        return 0
    ids = {s.user_id for s in subs}
    async with app[DB].sessions() as s:
        rows = await s.execute(
            select(User.id, User.active, User.token_hash).where(User.id.in_(ids))
        )
        current = {r.id: r.token_hash for r in rows if r.active}
    stale = [sub for sub in subs if current.get(sub.user_id or 0) != sub.credential]
    for sub in stale:
        sub.close(REVOKED)
    if stale:
        log.info("live_streams_revoked", streams=len(stale))
    return len(stale)


async def _recheck_loop(app: web.Application) -> AsyncIterator[None]:
    interval = app[SETTINGS].live_recheck_seconds if SETTINGS in app else 3.0

    async def loop() -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await recheck_streams(app)
            except Exception as exc:  # the database may be away for a moment
                log.warning("live_recheck_failed", error=str(exc))

    task = asyncio.create_task(loop(), name="live-recheck")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def setup_live(app: web.Application) -> None:
    app[TEAMS] = _Teams()
    app.router.add_get("/live", websocket)
    app.router.add_get("/live/sse", sse)
    app.cleanup_ctx.append(_recheck_loop)
