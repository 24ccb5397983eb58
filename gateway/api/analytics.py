"""Handlers: analytics — the sales funnel, requests and refusals per period, manager activity."""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from pydantic import Field, field_validator

from crm_core.services import analytics as svc
from gateway.api.common import actor, database, ok, read_query
from gateway.api.schemas import Id, Strict, _moment
from gateway.openapi import operation

__all__ = ["ROUTES"]


class PeriodQuery(Strict):
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
        return ok(await svc.funnel(s, actor(request), *q.window(), q.pipeline_id))


@operation(
    summary="Requests (leads) and refusals per day, week or month, by source",
    tag="analytics",
    query=RequestsQuery,
    errors=(401, 422),
)
async def get_requests(request: web.Request) -> web.Response:
    q = read_query(request, RequestsQuery)
    async with database(request).sessions() as s:
        return ok(await svc.requests_per_period(s, actor(request), *q.window(), q.group))


@operation(
    summary="Manager activity: leads, calls, emails, messages, tasks, deals won",
    tag="analytics",
    query=PeriodQuery,
    errors=(401, 422),
)
async def get_managers(request: web.Request) -> web.Response:
    q = read_query(request, PeriodQuery)
    async with database(request).sessions() as s:
        return ok(await svc.manager_activity(s, actor(request), *q.window()))


ROUTES = [
    ("GET", "/analytics/funnel", get_funnel),
    ("GET", "/analytics/requests", get_requests),
    ("GET", "/analytics/managers", get_managers),
]
