"""Authentication of the REST API: API tokens and sign-in sessions.

Every ``/api/v1/*`` request needs one of

* ``Authorization: Bearer <token>``: an API token (``api_tokens``) of an active user.
  A ``read`` token may only GET/HEAD (403 naming the scope); revoked, expired or
  unknown: 401; inactive user: 403.  No CSRF token is needed: a browser never adds
  this header by itself.
* the ``crmhub_session`` cookie of a live sign-in session (``auth_sessions``).  Every
  unsafe request (POST, PUT, PATCH, DELETE) must also carry ``X-CSRF-Token`` equal to
  the session's token (``POST /auth/login`` and ``GET /me`` answer it), else 403.

except :data:`PUBLIC_PATHS`.  A Bearer header wins over a cookie (and a bad one is
refused, never replaced by the cookie).  Secrets are hashed and looked up by their
hash (``crm_core.services.auth``).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web

from crm_core.access import Actor
from crm_core.services.auth import (
    TokenRefused,
    authenticate_token,
    needs_touch,
    session_by_cookie,
    touch_session,
    touch_token,
)
from gateway.api.keys import ACTOR, API_STATE, CREDENTIAL, USER, Credential
from gateway.errors import json_error
from gateway.keys import SETTINGS
from gateway.sessions import (
    CSRF_HEADER,
    CSRF_MESSAGE,
    SESSION_COOKIE,
    client_address,
    session_policy,
)

__all__ = [
    "CSRF_HEADER",
    "PUBLIC_PATHS",
    "SAFE_METHODS",
    "SESSION_COOKIE",
    "auth_middleware",
    "bearer_token",
    "client_address",
    "session_policy",
]

PUBLIC_PATHS = frozenset(
    {
        "/api/v1/openapi.json",
        "/api/v1/setup",
        "/api/v1/auth/login",
        "/api/v1/auth/logout",
        "/api/v1/auth/forgot",
        "/api/v1/auth/set-password",
        "/api/v1/auth/login/two-factor",  # the second step (gateway/api/two_factor.py)
        "/api/v1/auth/login/two-factor/setup",
        "/api/v1/auth/login/two-factor/enable",
    }
)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# POSTs that only read: a read-scope token may make them (a live-stream ticket).
READ_POSTS = frozenset({"/api/v1/live/ticket"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _unauthorized(message: str, error: str | None = None) -> web.Response:
    resp = json_error(401, message)
    challenge = 'Bearer realm="crmhub"'
    if error:
        challenge += f', error="{error}"'
    resp.headers["WWW-Authenticate"] = challenge
    return resp


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/api/") or request.path in PUBLIC_PATHS:
        return await handler(request)
    db = request.app[request.app[API_STATE].db_key]
    token = bearer_token(request)
    if token is not None:
        async with db.sessions() as s:
            try:
                row, user = await authenticate_token(s, token)
            except TokenRefused as exc:
                return _unauthorized(exc.message, "invalid_token")
        if not user.active:
            return json_error(403, "this user is deactivated")
        if (
            row.scope != "full"
            and request.method not in SAFE_METHODS
            and request.path not in READ_POSTS
        ):
            return json_error(
                403, "this API token has the read scope: it may only read (GET)", "scope"
            )
        if needs_touch(row.last_used_at):
            async with db.transaction() as s:
                await touch_token(s, row.id)
        cred = Credential("token", row.id, row.scope)
    else:
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            return _unauthorized(
                "authentication required: sign in, or send Authorization: Bearer <token>"
            )
        policy = session_policy(request.app.get(SETTINGS))
        async with db.sessions() as s:
            found = await session_by_cookie(s, cookie, policy)
        if found is None:
            resp = _unauthorized("your session has ended: sign in again")
            resp.del_cookie(SESSION_COOKIE, path="/")
            return resp
        sess, user = found
        if not user.active:
            return json_error(403, "this user is deactivated")
        if request.method not in SAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(sent.encode(), sess.csrf_token.encode()):
                return json_error(403, CSRF_MESSAGE, CSRF_HEADER)
        if needs_touch(sess.last_seen_at):
            async with db.transaction() as s:
                await touch_session(s, sess.id)
        cred = Credential("session", sess.id, "full", sess.csrf_token)
    request[USER] = user
    request[ACTOR] = Actor.of(user)
    request[CREDENTIAL] = cred
    return await handler(request)
