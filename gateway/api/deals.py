"""Handlers: deals (list, read with stage history, change, move stage, win, lose)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.access import Actor
from crm_core.models import Deal
from crm_core.services import deals as svc
from crm_core.stages import STAGES
from gateway.api.common import actor, database, ok, path_id, read_body, read_query
from gateway.api.responses import DealOut, DealWithHistoryOut, StageOut
from gateway.api.schemas import (
    DealCreate,
    DealListQuery,
    DealLose,
    DealPatch,
    DealStageMove,
    Empty,
)
from gateway.openapi import operation

__all__ = ["ROUTES"]

W = (401, 403, 404, 409, 422)


async def _full(s: AsyncSession, who: Actor, deal: Deal) -> dict[str, Any]:
    out = (await svc.deal_dicts(s, [deal]))[0]
    out["history"] = await svc.stage_history(s, who, deal.id)
    return out


@operation(
    summary="List deals (status: a stage, open or closed)",
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
    summary="Create a deal for a client",
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
        deal = await svc.create_deal(s, who, body.model_dump())
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
    summary="Change a deal (title, amount, owner)",
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
    summary="Move a deal to another stage (recorded with who and when)",
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
    summary="Mark a deal won", tag="deals", body=Empty, response=DealWithHistoryOut, errors=W
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
    summary="Mark a deal lost, with a reason",
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
        deal = await svc.lose_deal(s, who, deal_id, body.reason)
        out = await _full(s, who, deal)
    return ok(out)


@operation(
    summary="The deal pipeline's stages with Russian and English labels",
    tag="deals",
    response=StageOut,
    many=True,
    errors=(401,),
)
async def list_stages(request: web.Request) -> web.Response:
    items = [{"code": st.code, "ru": st.ru, "en": st.en, "closed": st.closed} for st in STAGES]
    return ok({"items": items, "total": len(items), "limit": len(items), "offset": 0})


ROUTES = [
    ("GET", "/deals", list_deals),
    ("POST", "/deals", create_deal),
    ("GET", "/deals/{id}", get_deal),
    ("PATCH", "/deals/{id}", patch_deal),
    ("POST", "/deals/{id}/stage", move_stage),
    ("POST", "/deals/{id}/win", win_deal),
    ("POST", "/deals/{id}/lose", lose_deal),
    ("GET", "/stages", list_stages),
]
