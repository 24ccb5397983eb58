"""Handlers: leads (list, read, change, create by hand, convert, reject)."""

from __future__ import annotations

from aiohttp import web

from crm_core.services import leads as svc
from crm_core.services.timeline import lead_timeline
from gateway.api.common import actor, database, ok, path_id, read_body, read_query
from gateway.api.responses import ConvertOut, InteractionOut, LeadOut
from gateway.api.schemas import (
    LeadConvert,
    LeadCreate,
    LeadListQuery,
    LeadPatch,
    LeadReject,
    TimelineQuery,
)
from gateway.openapi import operation

__all__ = ["ROUTES"]

W = (401, 403, 404, 409, 422)


@operation(
    summary="List leads (filters: phone in any spelling, email, owner, status, period)",
    tag="leads",
    query=LeadListQuery,
    response=LeadOut,
    many=True,
)
async def list_leads(request: web.Request) -> web.Response:
    flt = read_query(request, LeadListQuery).to_filter()
    async with database(request).sessions() as s:
        page = await svc.list_leads(s, actor(request), flt)
    return ok(page.as_dict())


@operation(
    summary="Create a lead by hand",
    tag="leads",
    body=LeadCreate,
    response=LeadOut,
    status=201,
    errors=W,
)
async def create_lead(request: web.Request) -> web.Response:
    body = await read_body(request, LeadCreate)
    async with database(request).transaction() as s:
        lead = await svc.create_lead(s, actor(request), body.model_dump())
        out = (await svc.lead_dicts(s, [lead]))[0]
    return ok(out, 201)


@operation(summary="Get a lead", tag="leads", response=LeadOut)
async def get_lead(request: web.Request) -> web.Response:
    async with database(request).sessions() as s:
        lead = await svc.get_lead(s, actor(request), path_id(request))
        out = (await svc.lead_dicts(s, [lead]))[0]
    return ok(out)


@operation(
    summary="Change a lead (owner, status new/in_progress, name, ...)",
    tag="leads",
    body=LeadPatch,
    response=LeadOut,
    errors=W,
)
async def patch_lead(request: web.Request) -> web.Response:
    lead_id = path_id(request)
    body = await read_body(request, LeadPatch)
    async with database(request).transaction() as s:
        changes = body.model_dump(exclude_unset=True)
        lead = await svc.update_lead(s, actor(request), lead_id, changes)
        out = (await svc.lead_dicts(s, [lead]))[0]
    return ok(out)


@operation(
    summary="Convert a lead into a client (new or reused) and a deal at the first "
    "stage, in one transaction",
    tag="leads",
    body=LeadConvert,
    response=ConvertOut,
    errors=W,
)
async def convert_lead(request: web.Request) -> web.Response:
    lead_id = path_id(request)
    body = await read_body(request, LeadConvert)
    async with database(request).transaction() as s:
        out = await svc.convert_lead(
            s, actor(request), lead_id, body.model_dump(exclude_unset=True)
        )
    return ok(out)


@operation(
    summary="Reject a lead with a reason", tag="leads", body=LeadReject, response=LeadOut, errors=W
)
async def reject_lead(request: web.Request) -> web.Response:
    lead_id = path_id(request)
    body = await read_body(request, LeadReject)
    async with database(request).transaction() as s:
        lead = await svc.reject_lead(s, actor(request), lead_id, body.reason)
        out = (await svc.lead_dicts(s, [lead]))[0]
    return ok(out)


@operation(
    summary="A lead's timeline (its calls, mail, chats and form; with its client's history "
    "once it has a client), newest first",
    tag="leads",
    query=TimelineQuery,
    response=InteractionOut,
    many=True,
)
async def timeline(request: web.Request) -> web.Response:
    lead_id = path_id(request)
    flt = read_query(request, TimelineQuery).to_filter()
    async with database(request).sessions() as s:
        page = await lead_timeline(s, actor(request), lead_id, flt)
    return ok(page.as_dict())


ROUTES = [
    ("GET", "/leads", list_leads),
    ("POST", "/leads", create_lead),
    ("GET", "/leads/{id}", get_lead),
    ("GET", "/leads/{id}/timeline", timeline),
    ("PATCH", "/leads/{id}", patch_lead),
    ("POST", "/leads/{id}/convert", convert_lead),
    ("POST", "/leads/{id}/reject", reject_lead),
]
