"""Handlers: deals (list, board, read with stage history, create, change, move stage,
win, lose, reopen, timeline)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.access import Actor
from crm_core.models import Deal
from crm_core.services import deals as svc
from crm_core.services.pipelines import load_funnel
from crm_core.services.timeline import deal_timeline
from gateway.api.common import actor, database, ok, path_id, read_body, read_query
from gateway.api.responses import BoardOut, DealOut, DealWithHistoryOut, InteractionOut, StageOut
from gateway.api.schemas import (
    BoardQuery,
    DealCreate,
    DealListQuery,
    DealLose,
    DealPatch,
    DealReopen,
    DealStageMove,
    Empty,
    Id,
    Strict,
    TimelineQuery,
)
from gateway.openapi import operation

__all__ = ["ROUTES"]

W = (400, 401, 403, 404, 409, 422)


async def _full(s: AsyncSession, who: Actor, deal: Deal) -> dict[str, Any]:
    out = (await svc.deal_dicts(s, [deal]))[0]
    out["history"] = await svc.stage_history(s, who, deal.id)
    return out


@operation(
    summary="List deals (status: a stage code, open or closed; pipeline, owner, amount, "
    "dates, segment)",
    tag="deals",
    query=DealListQuery,
    response=DealOut,
    many=True,
)
async def list_deals(request: web.Request) -> web.Response:
    flt = read_query(request, DealListQuery).to_filter()
    async with database(request).sessions() as s:
        page = await svc.list_deals(s, actor(request), flt)
    return ok(page.as_dict())


@operation(
    summary="A pipeline's board: per stage the count, the amount and the newest deals",
    tag="deals",
    query=BoardQuery,
    response=BoardOut,
)
async def get_board(request: web.Request) -> web.Response:
    q = read_query(request, BoardQuery)
    flt = q.to_filter()
    for key in ("pipeline_id", "per_stage"):
        flt.extra.pop(key, None)
    async with database(request).sessions() as s:
        out = await svc.board(s, actor(request), q.pipeline_id, flt, q.per_stage)
    return ok(out)


@operation(
    summary="Create a deal for a client (in a pipeline; an amount or line items)",
    tag="deals",
    body=DealCreate,
    response=DealWithHistoryOut,
    status=201,
    errors=W,
)
async def create_deal(request: web.Request) -> web.Response:
    body = await read_body(request, DealCreate)
    who = actor(request)
    async with database(request).transaction() as s:
        deal = await svc.create_deal(s, who, body.model_dump(exclude_unset=True))
        out = await _full(s, who, deal)
    return ok(out, 201)


@operation(summary="Get a deal with its stage history", tag="deals", response=DealWithHistoryOut)
async def get_deal(request: web.Request) -> web.Response:
    who = actor(request)
    async with database(request).sessions() as s:
        deal = await svc.get_deal(s, who, path_id(request))
        out = await _full(s, who, deal)
    return ok(out)


@operation(
    summary="Change a deal (title, amount or line items, currency, owner)",
    tag="deals",
    body=DealPatch,
    response=DealWithHistoryOut,
    errors=W,
)
async def patch_deal(request: web.Request) -> web.Response:
    deal_id = path_id(request)
    body = await read_body(request, DealPatch)
    who = actor(request)
    async with database(request).transaction() as s:
        deal = await svc.update_deal(s, who, deal_id, body.model_dump(exclude_unset=True))
        out = await _full(s, who, deal)
    return ok(out)


@operation(
    summary="Move a deal to another stage of its pipeline (400 naming a field the stage "
    "requires; recorded with who and when)",
    tag="deals",
    body=DealStageMove,
    response=DealWithHistoryOut,
    errors=W,
)
async def move_stage(request: web.Request) -> web.Response:
    deal_id = path_id(request)
    body = await read_body(request, DealStageMove)
    who = actor(request)
    async with database(request).transaction() as s:
        deal = await svc.move_stage(s, who, deal_id, body.stage)
        out = await _full(s, who, deal)
    return ok(out)


@operation(
    summary="Mark a deal won (closes it)",
    tag="deals",
    body=Empty,
    response=DealWithHistoryOut,
    errors=W,
)
async def win_deal(request: web.Request) -> web.Response:
    deal_id = path_id(request)
    await read_body(request, Empty)
    who = actor(request)
    async with database(request).transaction() as s:
        deal = await svc.win_deal(s, who, deal_id)
        out = await _full(s, who, deal)
    return ok(out)


@operation(
    summary="Mark a deal lost, with a reason of its pipeline's catalogue and a comment",
    tag="deals",
    body=DealLose,
    response=DealWithHistoryOut,
    errors=W,
)
async def lose_deal(request: web.Request) -> web.Response:
    deal_id = path_id(request)
    body = await read_body(request, DealLose)
    who = actor(request)
    async with database(request).transaction() as s:
        deal = await svc.lose_deal(s, who, deal_id, body.reason_id, body.comment, body.reason)
        out = await _full(s, who, deal)
    return ok(out)


@operation(
    summary="Reopen a won or lost deal (at the stage it was closed from, or the one given)",
    tag="deals",
    body=DealReopen,
    response=DealWithHistoryOut,
    errors=W,
)
async def reopen_deal(request: web.Request) -> web.Response:
    deal_id = path_id(request)
    body = await read_body(request, DealReopen)
    who = actor(request)
    async with database(request).transaction() as s:
        deal = await svc.reopen_deal(s, who, deal_id, body.stage)
        out = await _full(s, who, deal)
    return ok(out)


@operation(
    summary="A deal's timeline (its calls, mail and chats, and its lead's), newest first",
    tag="deals",
    query=TimelineQuery,
    response=InteractionOut,
    many=True,
)
async def timeline(request: web.Request) -> web.Response:
    deal_id = path_id(request)
    flt = read_query(request, TimelineQuery).to_filter()
    async with database(request).sessions() as s:
        page = await deal_timeline(s, actor(request), deal_id, flt)
    return ok(page.as_dict())


class StagesQuery(Strict):
    pipeline_id: Id | None = None


@operation(
    summary="A pipeline's stages with Russian and English labels (the default pipeline "
    "unless pipeline_id)",
    tag="deals",
    query=StagesQuery,
    response=StageOut,
    many=True,
    errors=(401, 404, 422),
)
async def list_stages(request: web.Request) -> web.Response:
    q = read_query(request, StagesQuery)
    async with database(request).sessions() as s:
        f = await load_funnel(s, q.pipeline_id)
    items = [
        {"code": st.code, "ru": st.name, "en": st.name_en or st.name, "closed": st.kind != "open"}
        for st in f.stages
    ]
    return ok({"items": items, "total": len(items), "limit": len(items), "offset": 0})


ROUTES = [
    ("GET", "/deals", list_deals),
    ("POST", "/deals", create_deal),
    ("GET", "/deals/board", get_board),
    ("GET", "/deals/{id}", get_deal),
    ("PATCH", "/deals/{id}", patch_deal),
    ("POST", "/deals/{id}/stage", move_stage),
    ("POST", "/deals/{id}/win", win_deal),
    ("POST", "/deals/{id}/lose", lose_deal),
    ("POST", "/deals/{id}/reopen", reopen_deal),
    ("GET", "/deals/{id}/timeline", timeline),
    ("GET", "/stages", list_stages),
]
