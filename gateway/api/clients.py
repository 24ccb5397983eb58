"""Handlers: clients, their contact persons and their timeline."""

from __future__ import annotations

from aiohttp import web

from crm_core.services import clients as svc
from crm_core.services.common import ListFilter
from crm_core.services.contacts import (
    contact_dicts,
    create_contact,
    delete_contact,
    list_contacts,
    update_contact,
)
from crm_core.services.timeline import client_timeline
from gateway.api.common import actor, database, ok, path_id, read_body, read_query
from gateway.api.responses import ClientOut, ContactOut, InteractionOut
from gateway.api.schemas import (
    ClientCreate,
    ClientListQuery,
    ClientPatch,
    ContactCreate,
    ContactPatch,
    PageQuery,
    TimelineQuery,
)
from gateway.errors import ApiError
from gateway.openapi import operation

__all__ = ["ROUTES"]

W = (401, 403, 404, 409, 422)


CF_PREFIX = "cf."
MAX_CF_FILTERS = 10


def split_custom(request: web.Request) -> tuple[dict[str, str], dict[str, str]]:
    """The query's plain parameters and its ``cf.<key>=value`` ones (custom fields)."""
    plain: dict[str, str] = {}
    custom: dict[str, str] = {}
    for key in request.query:
        value = request.query.getall(key)[-1]
        if key.startswith(CF_PREFIX):
            if len(value) > 200:
                raise ApiError(422, f"{key}: String should have at most 200 characters", key)
            if "\x00" in value:
                raise ApiError(422, f"{key}: must not contain the NUL character", key)
            custom[key[len(CF_PREFIX) :]] = value
        else:
            plain[key] = value
    if len(custom) > MAX_CF_FILTERS:
        raise ApiError(422, f"at most {MAX_CF_FILTERS} cf. filters", "cf")
    return plain, custom


def client_list_filter(request: web.Request) -> ListFilter:
    """The list's query: ``cf.<key>=value`` (custom fields) beside the model's filters."""
    plain, custom = split_custom(request)
    flt = ClientListQuery.model_validate(plain).to_filter()
    if custom:
        flt.extra["cf"] = custom
    return flt


@operation(
    summary="List clients: filters on the profile, cf.<key>=value on custom fields, ?sort=",
    tag="clients",
    query=ClientListQuery,
    response=ClientOut,
    many=True,
)
async def list_clients(request: web.Request) -> web.Response:
    flt = client_list_filter(request)
    async with database(request).sessions() as s:
        page = await svc.list_clients(s, actor(request), flt)
    return ok(page.as_dict())


@operation(
    summary="Create a client",
    tag="clients",
    body=ClientCreate,
    response=ClientOut,
    status=201,
    errors=W,
)
async def create_client(request: web.Request) -> web.Response:
    body = await read_body(request, ClientCreate)
    async with database(request).transaction() as s:
        who = actor(request)
        client = await svc.create_client(s, who, body.model_dump())
        out = (await svc.client_dicts(s, [client], who))[0]
    return ok(out, 201)


@operation(summary="Get a client", tag="clients", response=ClientOut)
async def get_client(request: web.Request) -> web.Response:
    async with database(request).sessions() as s:
        who = actor(request)
        client = await svc.get_client(s, who, path_id(request))
        out = (await svc.client_dicts(s, [client], who))[0]
    return ok(out)


@operation(summary="Change a client", tag="clients", body=ClientPatch, response=ClientOut, errors=W)
async def patch_client(request: web.Request) -> web.Response:
    client_id = path_id(request)
    body = await read_body(request, ClientPatch)
    async with database(request).transaction() as s:
        who = actor(request)
        client = await svc.update_client(s, who, client_id, body.model_dump(exclude_unset=True))
        out = (await svc.client_dicts(s, [client], who))[0]
    return ok(out)


@operation(
    summary="A client's timeline (its own, its leads' and deals' interactions), newest first",
    tag="clients",
    query=TimelineQuery,
    response=InteractionOut,
    many=True,
)
async def timeline(request: web.Request) -> web.Response:
    client_id = path_id(request)
    flt = read_query(request, TimelineQuery).to_filter()
    async with database(request).sessions() as s:
        page = await client_timeline(s, actor(request), client_id, flt)
    return ok(page.as_dict())


@operation(
    summary="A client's contact persons",
    tag="clients",
    query=PageQuery,
    response=ContactOut,
    many=True,
)
async def get_contacts(request: web.Request) -> web.Response:
    client_id = path_id(request)
    flt = read_query(request, PageQuery).to_filter()
    async with database(request).sessions() as s:
        page = await list_contacts(s, actor(request), client_id, flt)
    return ok(page.as_dict())


@operation(
    summary="Add a contact person to a client",
    tag="clients",
    body=ContactCreate,
    response=ContactOut,
    status=201,
    errors=W,
)
async def post_contact(request: web.Request) -> web.Response:
    client_id = path_id(request)
    body = await read_body(request, ContactCreate)
    async with database(request).transaction() as s:
        person = await create_contact(s, actor(request), client_id, body.model_dump())
        out = (await contact_dicts(s, [person]))[0]
    return ok(out, 201)


@operation(
    summary="Change a contact person (phones/emails given replace theirs)",
    tag="clients",
    body=ContactPatch,
    response=ContactOut,
    errors=W,
)
async def patch_contact(request: web.Request) -> web.Response:
    person_id = path_id(request)
    body = await read_body(request, ContactPatch)
    async with database(request).transaction() as s:
        person = await update_contact(
            s, actor(request), person_id, body.model_dump(exclude_unset=True)
        )
        out = (await contact_dicts(s, [person]))[0]
    return ok(out)


@operation(
    summary="Remove a contact person and their phones and emails",
    tag="clients",
    status=204,
    errors=(401, 404),
)
async def remove_contact(request: web.Request) -> web.Response:
    person_id = path_id(request)
    async with database(request).transaction() as s:
        await delete_contact(s, actor(request), person_id)
    return web.Response(status=204)


ROUTES = [
    ("GET", "/clients", list_clients),
    ("POST", "/clients", create_client),
    ("GET", "/clients/{id}", get_client),
    ("PATCH", "/clients/{id}", patch_client),
    ("GET", "/clients/{id}/timeline", timeline),
    ("GET", "/clients/{id}/contacts", get_contacts),
    ("POST", "/clients/{id}/contacts", post_contact),
    ("PATCH", "/contacts/{id}", patch_contact),
    ("DELETE", "/contacts/{id}", remove_contact),
]
