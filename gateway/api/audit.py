"""Handlers: the audit log (``GET /api/v1/audit``), admins and supervisors only."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import Field, field_validator

from crm_core.services import audit as svc
from gateway.api.common import actor, database, ok, read_query
from gateway.api.schemas import Id, Strict, _moment
from gateway.openapi import operation

__all__ = ["ROUTES"]

Entity = Literal["client", "lead", "deal", "task", "user", "sales_plan", "contact_person", "outbox"]
assert set(Entity.__args__) == set(svc.ENTITIES)  # type: ignore[attr-defined]


class AuditQuery(Strict):
    entity: Entity | None = None
    entity_id: Id | None = None
    user_id: Id | None = Field(None, description="who made the change")
    created_from: str | None = Field(None, description="ISO date or datetime, inclusive")
    created_to: str | None = Field(None, description="ISO date (whole day) or datetime")
    limit: int = Field(50, ge=1, le=200)
    offset: int = Field(0, ge=0, le=1_000_000)

    @field_validator("created_from", "created_to")
    @classmethod
    def _iso(cls, v: str | None) -> str | None:
        _moment(v, end=False)
        return v


@operation(
    summary="Audit log: who changed what and when, {field: [old, new]}; newest first",
    tag="audit",
    query=AuditQuery,
    errors=(401, 403, 422),
)
async def get_audit(request: web.Request) -> web.Response:
    q = read_query(request, AuditQuery)
    async with database(request).sessions() as s:
        return ok(
            await svc.list_audit(
                s,
                actor(request),
                entity=q.entity,
                entity_id=q.entity_id,
                user_id=q.user_id,
                start=_moment(q.created_from, end=False),
                end=_moment(q.created_to, end=True),
                limit=q.limit,
                offset=q.offset,
            )
        )


ROUTES = [("GET", "/audit", get_audit)]
