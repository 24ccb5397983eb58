"""Bearer-token authentication of the REST API.

Every ``/api/v1/*`` request needs ``Authorization: Bearer <token>`` of an active user,
except the OpenAPI document.  Missing or unknown token: 401; inactive user: 403.
The token is hashed and looked up by its hash (see ``crm_core.services.users``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from crm_core.access import Actor
from crm_core.services.users import user_by_token
from gateway.api.keys import ACTOR, API_STATE, USER
from gateway.errors import json_error

__all__ = ["PUBLIC_PATHS", "auth_middleware", "bearer_token"]

PUBLIC_PATHS = frozenset({"/api/v1/openapi.json", "/api/v1/setup"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/api/") or request.path in PUBLIC_PATHS:
        return await handler(request)
    token = bearer_token(request)
    if token is None:
        resp = json_error(401, "authentication required: send Authorization: Bearer <token>")
        resp.headers["WWW-Authenticate"] = 'Bearer realm="crmhub"'
        return resp
    db = request.app[request.app[API_STATE].db_key]
    async with db.sessions() as s:
        user = await user_by_token(s, token)
    if user is None:
        resp = json_error(401, "invalid API token")
        resp.headers["WWW-Authenticate"] = 'Bearer realm="crmhub", error="invalid_token"'
        return resp
    if not user.active:
        return json_error(403, "this user is deactivated")
    request[USER] = user
    request[ACTOR] = Actor.of(user)
    return await handler(request)
