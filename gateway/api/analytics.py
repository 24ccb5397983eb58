"""Handlers: analytics — the sales funnel, requests and refusals per period, manager
activity, sales, plan against fact, the most promising clients; and the sales plans.

Every analytics endpoint answers JSON, or with ``?format=csv|xlsx`` the same rows as a
file, or with ``?format=svg`` its chart (``lang=ru|en`` for headers and labels)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import Field, field_validator

from crm_core.services import analytics as svc
from crm_core.services import plans as plans_svc
from gateway.api.analytics_charts import chart_svg
from gateway.api.analytics_export import csv_response, table_of, xlsx_response
from gateway.api.common import actor, database, ok, read_body, read_query
from gateway.api.schemas import Id, Strict, _moment
from gateway.openapi import operation

__all__ = ["ROUTES"]


class ReportQuery(Strict):
    format: Literal["json", "csv", "xlsx", "svg"] = Field(
        "json", description="json; csv or xlsx: the same rows as a file; svg: the chart"
    )
    lang: Literal["ru", "en"] = Field("ru", description="language of headers and labels")


class PeriodQuery(ReportQuery):
    created_from: str | None = Field(None, description="ISO date or datetime, inclusive")
    created_to: str | None = Field(None, description="ISO date (whole day) or datetime")

    @field_validator("created_from", "created_to")
    @classmethod
    def _iso(cls, v: str | None) -> str | None:
        _moment(v, end=False)
        return v

    def window(self) -> tuple[Any, Any]:
        return _moment(self.created_from, end=False), _moment(self.created_to, end=True)


class FunnelQuery(PeriodQuery):
    pipeline_id: Id | None = Field(None, description="the default pipeline if omitted")


class RequestsQuery(PeriodQuery):
    group: Literal["day", "week", "month"] = "day"


class SalesQuery(PeriodQuery):
    group: Literal["day", "week", "month", "manager", "segment", "season"] = Field(
        "month", description="period, manager, client segment or season (month of the year)"
    )


class PlanFactQuery(ReportQuery):
    period: str = Field(..., max_length=7, description="a month (2026-12) or a quarter (2026-Q4)")


class PromisingQuery(ReportQuery):
    limit: int = Field(svc.PROMISING_LIMIT, ge=1, le=50, description="clients per manager")
    owner_id: Id | None = Field(None, description="one manager only")


async def report(name: str, data: dict[str, Any], q: ReportQuery) -> web.Response:
    """``data`` as JSON, or its table as CSV/XLSX, or its chart as SVG (files and charts
    are built in a thread: the event loop keeps serving)."""
    if q.format == "csv":
        return csv_response(table_of(data), q.lang, name)
    if q.format == "xlsx":
        return await asyncio.to_thread(xlsx_response, table_of(data), q.lang, name)
    if q.format == "svg":
        svg = await asyncio.to_thread(chart_svg, name, data, q.lang)
        return web.Response(text=svg, content_type="image/svg+xml", charset="utf-8")
    return ok(data)


@operation(
    summary="Sales funnel of a pipeline: how far deals created in the period got, losses "
    "by stage and by reason",
    tag="analytics",
    query=FunnelQuery,
    errors=(401, 404, 422),
)
async def get_funnel(request: web.Request) -> web.Response:
    q = read_query(request, FunnelQuery)
    async with database(request).sessions() as s:
        return await report(
            "funnel", await svc.funnel(s, actor(request), *q.window(), q.pipeline_id), q
        )


@operation(
    summary="Requests (leads) and refusals per day, week or month, by source",
    tag="analytics",
    query=RequestsQuery,
    errors=(401, 422),
)
async def get_requests(request: web.Request) -> web.Response:
    q = read_query(request, RequestsQuery)
    async with database(request).sessions() as s:
        data = await svc.requests_per_period(s, actor(request), *q.window(), q.group)
    return await report("requests", data, q)


@operation(
    summary="Manager activity: leads, calls made and answered, talk time, emails, "
    "first response, tasks done and overdue, deals won",
    tag="analytics",
    query=PeriodQuery,
    errors=(401, 422),
)
async def get_managers(request: web.Request) -> web.Response:
    q = read_query(request, PeriodQuery)
    async with database(request).sessions() as s:
        data = await svc.manager_activity(s, actor(request), *q.window())
    return await report("managers", data, q)


@operation(
    summary="Sales (won deals, by close date) by period, manager, segment or season",
    tag="analytics",
    query=SalesQuery,
    errors=(401, 422),
)
async def get_sales(request: web.Request) -> web.Response:
    q = read_query(request, SalesQuery)
    async with database(request).sessions() as s:
        data = await svc.sales(s, actor(request), *q.window(), q.group)
    return await report("sales", data, q)


@operation(
    summary="Plan against fact for a month or quarter, per manager and team",
    tag="analytics",
    query=PlanFactQuery,
    errors=(401, 422),
)
async def get_plan_fact(request: web.Request) -> web.Response:
    q = read_query(request, PlanFactQuery)
    period = plans_svc.parse_period(q.period)
    async with database(request).sessions() as s:
        data = await svc.plan_fact(s, actor(request), period)
    return await report("plan-fact", data, q)


@operation(
    summary="Most promising clients per manager, ranked, with the reasons",
    tag="analytics",
    query=PromisingQuery,
    errors=(401, 422),
)
async def get_promising(request: web.Request) -> web.Response:
    q = read_query(request, PromisingQuery)
    async with database(request).sessions() as s:
        data = await svc.promising_clients(
            s, actor(request), datetime.now(UTC), limit=q.limit, owner_id=q.owner_id
        )
    return await report("promising", data, q)


class PlansQuery(Strict):
    period: str = Field(..., max_length=7, description="a month (2026-12) or a quarter (2026-Q4)")


class PlanItem(Strict):
    user_id: Id | None = None
    team: str | None = Field(None, max_length=100)
    amount: str | int | float | None = Field(None, description="amount won, RUB")
    deals: int | None = Field(None, description="deals won")
    calls: int | None = Field(None, description="calls made")
    meetings: int | None = Field(None, description="meetings held")


class PlansPut(Strict):
    period: str = Field(..., max_length=7, description="a month (2026-12) or a quarter (2026-Q4)")
    items: list[PlanItem] = Field(..., max_length=1000)


@operation(
    summary="Sales plans of a month or quarter: a row per manager and team you may see",
    tag="plans",
    query=PlansQuery,
    errors=(401, 422),
)
async def get_plans(request: web.Request) -> web.Response:
    q = read_query(request, PlansQuery)
    period = plans_svc.parse_period(q.period)
    async with database(request).sessions() as s:
        return ok(await plans_svc.get_plans(s, actor(request), period))


@operation(
    summary="Set sales plans (admins; supervisors for their team); null figures: no plan",
    tag="plans",
    body=PlansPut,
    errors=(400, 401, 403, 422),
)
async def put_plans(request: web.Request) -> web.Response:
    body = await read_body(request, PlansPut)
    period = plans_svc.parse_period(body.period)
    items = [i.model_dump() for i in body.items]
    async with database(request).transaction() as s:
        return ok(await plans_svc.put_plans(s, actor(request), period, items))


ROUTES = [
    ("GET", "/analytics/funnel", get_funnel),
    ("GET", "/analytics/requests", get_requests),
    ("GET", "/analytics/managers", get_managers),
    ("GET", "/analytics/sales", get_sales),
    ("GET", "/analytics/plan-fact", get_plan_fact),
    ("GET", "/analytics/promising", get_promising),
    ("GET", "/plans", get_plans),
    ("PUT", "/plans", put_plans),
]
