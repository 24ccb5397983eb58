"""Handlers: users (admins and supervisors), deactivating a user and rotating a token
(admins), the current user, live-stream tickets, the OpenAPI document."""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from pydantic import Field
from sqlalchemy import select

from crm_core.models import User
from crm_core.services.auth import rotate_admin_token
from crm_core.services.users import (
    LIVE_TICKET_SECONDS,
    create_user,
    get_user,
    issue_live_ticket,
    list_users,
    set_active,
    update_user,
    user_dict,
)
from gateway.api.common import actor, database, ok, path_id, read_body
from gateway.api.keys import CREDENTIAL, USER
from gateway.api.responses import LiveTicketOut, UserOut, UserTokenOut
from gateway.api.schemas import Empty, Strict
from gateway.errors import ApiError
from gateway.keys import LIVE
from gateway.live import close_streams, close_streams_of
from gateway.openapi import build_document, operation

__all__ = ["FIRST_ADMIN_COMMAND", "ROUTES"]


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


class MeOut(UserOut):
    csrf_token: str | None = Field(
        None, description="with a sign-in session: send it as X-CSRF-Token on every change"
    )


@operation(
    summary="The current user (with a sign-in session: its CSRF token too)",
    tag="users",
    response=MeOut,
    errors=(401,),
)
async def get_me(request: web.Request) -> web.Response:
    out = user_dict(request[USER])
    cred = request.get(CREDENTIAL)
    if cred is not None and cred.kind == "session":
        out["csrf_token"] = cred.csrf
    return ok(out)


# prints a link to set the password (docs/sign-in.md)
FIRST_ADMIN_COMMAND = "crmhub users invite EMAIL --role admin --name NAME"


@operation(
    summary="Whether this crmhub still needs its first admin (no user yet), and how to "
    "create one; public, for the sign-in page",
    tag="meta",
    public=True,
    errors=(),
)
async def get_setup(request: web.Request) -> web.Response:
    async with database(request).sessions() as s:
        first = await s.scalar(select(User.id).limit(1))
    needs = first is None
    return ok({"needs_first_admin": needs, "command": FIRST_ADMIN_COMMAND if needs else None})


@operation(summary="This OpenAPI document", tag="meta", public=True, errors=())
async def get_openapi(request: web.Request) -> web.Response:
    return ok(build_document(request.app))


class UserPatch(Strict):
    """What an admin may change; a supervisor only hours, absences, capacity and weight
    of their team's members."""

    name: str | None = Field(None, max_length=200)
    role: Literal["admin", "supervisor", "manager"] | None = None
    team: str | None = Field(None, max_length=100)
    extension: str | None = Field(None, max_length=32)
    timezone: str | None = Field(None, max_length=64)
    locale: Literal["ru", "en"] | None = None
    working_hours: dict[str, list[list[str]]] | None = Field(
        None, description='weekday 0 (Monday) to 6 -> [["09:00", "18:00"]]', max_length=7
    )
    absences: list[dict[str, str]] | None = Field(None, max_length=100)
    capacity: int | None = Field(None, ge=0, le=100000)
    weight: int | None = Field(None, ge=1, le=100)
    phone: str | None = Field(None, max_length=32, description="owner.phone in campaigns")
    signature: str | None = Field(None, max_length=2000, description="owner.signature")


class UserCreate(UserPatch):
    email: str = Field(max_length=320)
    role: Literal["admin", "supervisor", "manager"] = "manager"


@operation(
    summary="Create a user (admin); the answer holds their API token, shown once",
    tag="users",
    body=UserCreate,
    response=UserTokenOut,
    status=201,
    errors=(401, 403, 409, 422),
)
async def post_user(request: web.Request) -> web.Response:
    _admin_only(request)
    body = await read_body(request, UserCreate)
    data: dict[str, Any] = body.model_dump(exclude_unset=True)
    async with database(request).transaction() as s:
        user, token = await create_user(
            s,
            body.email,
            body.role,
            name=body.name,
            extension=body.extension,
            team=body.team,
            actor=actor(request),
        )
        rest = {k: v for k, v in data.items() if k not in ("email", "role", "extension", "team")}
        if rest:
            await update_user(s, actor(request), user, rest)
        out = {**user_dict(user), "token": token}
    return ok(out, 201)


@operation(
    summary="Change a user (admin; a supervisor: hours, absences, capacity, weight of their team)",
    tag="users",
    body=UserPatch,
    response=UserOut,
    errors=(401, 403, 404, 409, 422),
)
async def patch_user(request: web.Request) -> web.Response:
    who = actor(request)
    if who.role not in ("admin", "supervisor"):
        raise ApiError(403, "only admins and supervisors may change users")
    user_id = path_id(request)
    body = await read_body(request, UserPatch)
    async with database(request).transaction() as s:
        user = await get_user(s, who, user_id)
        await update_user(s, who, user, body.model_dump(exclude_unset=True))
        out = user_dict(user)
    return ok(out)


def _admin_only(request: web.Request) -> None:
    if not actor(request).is_admin:
        raise ApiError(403, "only admins may do this")


def _close_streams(request: web.Request, user: User) -> None:
    """This process's streams of ``user`` close now; other processes' at their recheck."""
    live = request.app.get(LIVE)
    if live is not None:
        close_streams_of(live, user.id)


async def _set_active(request: web.Request, active: bool) -> web.Response:
    _admin_only(request)
    user_id = path_id(request)
    await read_body(request, Empty)
    async with database(request).transaction() as s:
        user = await get_user(s, actor(request), user_id)
        await set_active(s, user, active, actor=actor(request))
        out = user_dict(user)
    if not active:
        _close_streams(request, user)
    return ok(out)


@operation(
    summary="Deactivate a user (admin): their token is refused and their live streams close",
    tag="users",
    body=Empty,
    response=UserOut,
    errors=(401, 403, 404, 409),
)
async def deactivate_user(request: web.Request) -> web.Response:
    return await _set_active(request, False)


@operation(
    summary="Activate a deactivated user again (admin)",
    tag="users",
    body=Empty,
    response=UserOut,
    errors=(401, 403, 404),
)
async def activate_user(request: web.Request) -> web.Response:
    return await _set_active(request, True)


@operation(
    summary="Give a user a new API token (admin); the one users add or an earlier rotation "
    "gave stops, with its live streams (tokens the user made stay)",
    tag="users",
    body=Empty,
    response=UserTokenOut,
    errors=(401, 403, 404),
)
async def rotate_user_token(request: web.Request) -> web.Response:
    _admin_only(request)
    user_id = path_id(request)
    await read_body(request, Empty)
    async with database(request).transaction() as s:
        user = await get_user(s, actor(request), user_id)
        _row, token, revoked = await rotate_admin_token(s, user, actor=actor(request))
        out = {**user_dict(user), "token": token}
    live = request.app.get(LIVE)
    if live is not None:
        close_streams(live, user.id, [f"t:{i}" for i in revoked])
    return ok(out)


@operation(
    summary="A single-use ticket (30 s) that opens /live or /live/sse without the token in the URL",
    tag="users",
    body=Empty,
    response=LiveTicketOut,
    status=201,
    errors=(401, 403),
)
async def live_ticket(request: web.Request) -> web.Response:
    await read_body(request, Empty)
    async with database(request).transaction() as s:
        ticket = await issue_live_ticket(s, request[USER], credential=request[CREDENTIAL].key)
    return ok({"ticket": ticket, "expires_in": LIVE_TICKET_SECONDS}, 201)


ROUTES = [
    ("GET", "/users", get_users),
    ("POST", "/users", post_user),
    ("PATCH", "/users/{id}", patch_user),
    ("POST", "/users/{id}/deactivate", deactivate_user),
    ("POST", "/users/{id}/activate", activate_user),
    ("POST", "/users/{id}/rotate-token", rotate_user_token),
    ("POST", "/live/ticket", live_ticket),
    ("GET", "/me", get_me),
    ("GET", "/setup", get_setup),
    ("GET", "/openapi.json", get_openapi),
]
