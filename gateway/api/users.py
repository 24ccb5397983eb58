"""Handlers: users (admins and supervisors), the current user, the OpenAPI document."""

from __future__ import annotations

from aiohttp import web

from crm_core.services.users import list_users, user_dict
from gateway.api.common import actor, database, ok
from gateway.api.keys import USER
from gateway.api.responses import UserOut
from gateway.errors import ApiError
from gateway.openapi import build_document, operation

__all__ = ["ROUTES"]


@operation(
    summary="List users (admin: all; supervisor: their team)",
    tag="users",
    response=UserOut,
    many=True,
    errors=(401, 403),
)
async def get_users(request: web.Request) -> web.Response:
    who = actor(request)
    if who.role not in ("admin", "supervisor"):
        raise ApiError(403, "only admins and supervisors may list users")
    async with database(request).sessions() as s:
        users = await list_users(s, who)
    items = [user_dict(u) for u in users]
    return ok({"items": items, "total": len(items), "limit": len(items), "offset": 0})


@operation(summary="The current user", tag="users", response=UserOut, errors=(401,))
async def get_me(request: web.Request) -> web.Response:
    return ok(user_dict(request[USER]))


@operation(summary="This OpenAPI document", tag="meta", public=True, errors=())
async def get_openapi(request: web.Request) -> web.Response:
    return ok(build_document(request.app))


ROUTES = [
    ("GET", "/users", get_users),
    ("GET", "/me", get_me),
    ("GET", "/openapi.json", get_openapi),
]
