"""Handlers: the client statuses list and the custom fields of clients.  Everyone reads
them (the forms and filters need them); only admins change them."""

from __future__ import annotations

from aiohttp import web

from crm_core.services import custom_fields as cf
from crm_core.services import statuses as st
from gateway.api.common import actor, database, ok, path_id, read_body
from gateway.api.responses import CustomFieldOut, StatusOut
from gateway.api.schemas import CustomFieldCreate, CustomFieldPatch, StatusCreate, StatusPatch
from gateway.errors import ApiError
from gateway.openapi import operation

__all__ = ["ROUTES"]

W = (401, 403, 404, 409, 422)


def _key(request: web.Request) -> str:
    raw = request.match_info["key"]
    if not raw.isascii() or len(raw) > 20:
        raise ApiError(404, f"status {raw!r} not found")
    return raw


def _page(items: list[dict[str, object]]) -> web.Response:
    return ok({"items": items, "total": len(items), "limit": len(items), "offset": 0})


@operation(
    summary="Client statuses, in order (admins also see how many clients hold each)",
    tag="settings",
    response=StatusOut,
    many=True,
    errors=(401,),
)
async def get_statuses(request: web.Request) -> web.Response:
    async with database(request).sessions() as s:
        items = await st.list_statuses(s, with_counts=actor(request).is_admin)
    return _page(items)


@operation(
    summary="Add a client status (admins)",
    tag="settings",
    body=StatusCreate,
    response=StatusOut,
    status=201,
    errors=W,
)
async def post_status(request: web.Request) -> web.Response:
    body = await read_body(request, StatusCreate)
    async with database(request).transaction() as s:
        row = await st.create_status(s, actor(request), body.model_dump())
        out = st.status_dict(row)
    return ok(out, 201)


@operation(
    summary="Rename, move or (de)activate a client status (admins)",
    tag="settings",
    body=StatusPatch,
    response=StatusOut,
    errors=W,
)
async def patch_status(request: web.Request) -> web.Response:
    key = _key(request)
    body = await read_body(request, StatusPatch)
    async with database(request).transaction() as s:
        row = await st.update_status(s, actor(request), key, body.model_dump(exclude_unset=True))
        out = st.status_dict(row)
    return ok(out)


@operation(
    summary="Delete a client status no client holds (admins; deactivate a used one)",
    tag="settings",
    status=204,
    errors=(401, 403, 404, 409),
)
async def delete_status(request: web.Request) -> web.Response:
    key = _key(request)
    async with database(request).transaction() as s:
        await st.delete_status(s, actor(request), key)
    return web.Response(status=204)


@operation(
    summary="Custom fields of clients, in order",
    tag="settings",
    response=CustomFieldOut,
    many=True,
    errors=(401,),
)
async def get_fields(request: web.Request) -> web.Response:
    async with database(request).sessions() as s:
        rows = await cf.list_fields(s)
    return _page([cf.field_dict(f) for f in rows])


@operation(
    summary="Define a custom field of clients (admins)",
    tag="settings",
    body=CustomFieldCreate,
    response=CustomFieldOut,
    status=201,
    errors=W,
)
async def post_field(request: web.Request) -> web.Response:
    body = await read_body(request, CustomFieldCreate)
    async with database(request).transaction() as s:
        row = await cf.create_field(s, actor(request), body.model_dump())
        out = cf.field_dict(row)
    return ok(out, 201)


@operation(
    summary="Change a custom field (admins; its type only while no client holds a value)",
    tag="settings",
    body=CustomFieldPatch,
    response=CustomFieldOut,
    errors=W,
)
async def patch_field(request: web.Request) -> web.Response:
    field_id = path_id(request)
    body = await read_body(request, CustomFieldPatch)
    async with database(request).transaction() as s:
        changes = body.model_dump(exclude_unset=True)
        row = await cf.update_field(s, actor(request), field_id, changes)
        out = cf.field_dict(row)
    return ok(out)


@operation(
    summary="Delete a custom field no client holds a value of (admins; else deactivate)",
    tag="settings",
    status=204,
    errors=(401, 403, 404, 409),
)
async def delete_field(request: web.Request) -> web.Response:
    field_id = path_id(request)
    async with database(request).transaction() as s:
        await cf.delete_field(s, actor(request), field_id)
    return web.Response(status=204)


ROUTES = [
    ("GET", "/client-statuses", get_statuses),
    ("POST", "/client-statuses", post_status),
    ("PATCH", "/client-statuses/{key}", patch_status),
    ("DELETE", "/client-statuses/{key}", delete_status),
    ("GET", "/custom-fields", get_fields),
    ("POST", "/custom-fields", post_field),
    ("PATCH", "/custom-fields/{id}", patch_field),
    ("DELETE", "/custom-fields/{id}", delete_field),
]
