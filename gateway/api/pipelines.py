"""Handlers: pipelines (sales funnels) with their stages and loss-reason catalogues.
Everyone reads them; only admins create, change or delete them."""

from __future__ import annotations

from aiohttp import web

from crm_core.services import pipelines as svc
from gateway.api.common import actor, database, ok, path_id, read_body
from gateway.api.responses import PipelineOut
from gateway.api.schemas import PipelineCreate, PipelinePatch
from gateway.openapi import operation

__all__ = ["ROUTES"]

W = (400, 401, 403, 404, 409, 422)


@operation(
    summary="Pipelines with their stages (order, probability, required fields, won/lost) "
    "and loss reasons",
    tag="pipelines",
    response=PipelineOut,
    many=True,
    errors=(401,),
)
async def list_pipelines(request: web.Request) -> web.Response:
    async with database(request).transaction() as s:  # may make the default one
        items = await svc.list_pipelines(s)
    return ok({"items": items, "total": len(items), "limit": len(items), "offset": 0})


@operation(summary="One pipeline", tag="pipelines", response=PipelineOut)
async def get_pipeline(request: web.Request) -> web.Response:
    async with database(request).sessions() as s:
        f = await svc.load_funnel(s, path_id(request))
    return ok(svc.pipeline_dict(f))


@operation(
    summary="Create a pipeline (admins): stages in order (won and lost are added when "
    "missing) and its loss-reason catalogue",
    tag="pipelines",
    body=PipelineCreate,
    response=PipelineOut,
    status=201,
    errors=W,
)
async def create_pipeline(request: web.Request) -> web.Response:
    body = await read_body(request, PipelineCreate)
    async with database(request).transaction() as s:
        f = await svc.create_pipeline(s, actor(request), body.model_dump(exclude_unset=True))
        out = svc.pipeline_dict(f)
    return ok(out, 201)


@operation(
    summary="Change a pipeline (admins): name, default, stages (the whole list), loss "
    "reasons (the whole list; a dropped reason is archived)",
    tag="pipelines",
    body=PipelinePatch,
    response=PipelineOut,
    errors=W,
)
async def patch_pipeline(request: web.Request) -> web.Response:
    pipeline_id = path_id(request)
    body = await read_body(request, PipelinePatch)
    async with database(request).transaction() as s:
        changes = body.model_dump(exclude_unset=True)
        f = await svc.update_pipeline(s, actor(request), pipeline_id, changes)
        out = svc.pipeline_dict(f)
    return ok(out)


@operation(
    summary="Delete a pipeline without deals (admins; not the default one)",
    tag="pipelines",
    status=204,
    errors=(401, 403, 404, 409),
)
async def delete_pipeline(request: web.Request) -> web.Response:
    pipeline_id = path_id(request)
    async with database(request).transaction() as s:
        await svc.delete_pipeline(s, actor(request), pipeline_id)
    return web.Response(status=204)


ROUTES = [
    ("GET", "/pipelines", list_pipelines),
    ("POST", "/pipelines", create_pipeline),
    ("GET", "/pipelines/{id}", get_pipeline),
    ("PATCH", "/pipelines/{id}", patch_pipeline),
    ("DELETE", "/pipelines/{id}", delete_pipeline),
]
