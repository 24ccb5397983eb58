"""Live events for operators: ``GET /live`` (WebSocket) and ``GET /live/sse``
(Server-Sent Events), filtered to what the user may see.

Authentication: ``Authorization: Bearer <token>`` (API clients), or ``?ticket=`` from
``POST /api/v1/live/ticket`` (browsers, with their sign-in session or a token: a
single-use ticket valid 30 s, so no secret appears in a URL).  Each stream remembers
its user and the credential it was opened with (``t:<api token id>`` or
``s:<session id>``); every ``live_recheck_seconds`` a query checks them and closes the
streams of a deactivated user, a revoked or expired token, or an ended session (the
API closes them at once in its own process).  On shutdown every stream ends cleanly.
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
from crm_core.services.auth import (
    SessionPolicy,
    TokenRefused,
    authenticate_token,
    valid_credentials,
)
from crm_core.services.users import redeem_live_ticket
from gateway.api.keys import DB
from gateway.keys import LIVE, SETTINGS
from gateway.sessions import session_policy

__all__ = ["REVOKED", "close_streams", "close_streams_of", "may_see", "setup_live"]

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


def _policy(request: web.Request) -> SessionPolicy:
    return session_policy(request.app.get(SETTINGS))


async def _auth(request: web.Request) -> tuple[User, str]:
    """The user and the credential (``t:<id>``, ``s:<id>``) that open this stream."""
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else ""
    ticket = request.query.get("ticket", "")
    if not token and not ticket:
        raise _unauthorized("missing bearer token or ticket")
    db = request.app[DB]
    user: User | None = None
    credential = ""
    if token:
        async with db.sessions() as s:
            with contextlib.suppress(TokenRefused):
                row, user = await authenticate_token(s, token)
                credential = f"t:{row.id}"
    else:
        async with db.transaction() as s:
            found = await redeem_live_ticket(s, ticket, _policy(request))
        if found is not None:
            user, credential = found
    if user is None or not user.active:
        raise _unauthorized("invalid or inactive token" if token else "invalid or expired ticket")
    return user, credential


def _frame(event: LiveEvent) -> str:
    return json.dumps(
        {"kind": event.kind, "payload": dict(event.payload)}, ensure_ascii=False, default=str
    )


def _subscribe(
    request: web.Request, user: User, credential: str
) -> contextlib.AbstractAsyncContextManager[Subscription]:
    return request.app[LIVE].subscribe(user_id=user.id, credential=credential)


async def websocket(request: web.Request) -> web.StreamResponse:
    user, credential = await _auth(request)
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT)
    await ws.prepare(request)
    app = request.app
    async with _subscribe(request, user, credential) as sub:
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
    user, credential = await _auth(request)
    resp = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await resp.prepare(request)
    app = request.app
    async with _subscribe(request, user, credential) as sub:
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
    """Close every open stream of ``user_id`` in this process (deactivated)."""
    return live.close(REVOKED, lambda sub: sub.user_id == user_id)


def close_streams(live: LiveHub, user_id: int, credentials: list[str] | None) -> int:
    """Close this process's streams of ``user_id`` opened with one of ``credentials``
    (``t:<id>``, ``s:<id>``; None: all of them)."""
    if credentials is None:
        return close_streams_of(live, user_id)
    if not credentials:
        return 0
    wanted = set(credentials)
    return live.close(REVOKED, lambda sub: sub.user_id == user_id and sub.credential in wanted)


async def recheck_streams(app: web.Application) -> int:
    """Close the streams whose user is gone or inactive, whose token was revoked or
    expired, or whose session ended."""
    live = app[LIVE]
    subs = [s for s in live.streams() if s.user_id is not None and s.closed_reason is None]
    if not subs:
        return 0
    creds = {s.credential for s in subs if s.credential}
    async with app[DB].sessions() as s:
        valid = await valid_credentials(s, creds, session_policy(app.get(SETTINGS)))
    stale = [sub for sub in subs if sub.credential not in valid]
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
