"""Handlers: mass operations on clients (``POST /bulk/{action}``) and their jobs
(``GET /jobs/{id}``).

Each action's body holds the action's parameters and the selection: ``client_ids``, or
``segment_id``, or ``filters`` (the clients list's query parameters).  For the
``segment`` action, whose own ``segment_id`` is the segment to change, and whenever a
name clashes, the selection may also come nested: ``"selection": {"segment_id": 7}``.
The answer is ``202 {"job_id"}`` at once; the job runs in the background
(``crm_core.jobs``).  The same ``Idempotency-Key`` from the same user answers the same
job.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from aiohttp import web
from pydantic import Field, field_validator, model_validator
from sqlalchemy import select

from crm_core.jobs import JobRunner
from crm_core.models import Job, User
from crm_core.services import bulk as svc
from crm_core.services.common import Invalid, NotFound
from gateway.api.clients import CF_PREFIX, MAX_CF_FILTERS
from gateway.api.common import actor, database, ok, path_id, read_body
from gateway.api.outgoing import idempotency_key
from gateway.api.schemas import ClientListQuery, Id, Strict, TaskKind
from gateway.openapi import operation

__all__ = ["JOB_RUNNER", "ROUTES", "BulkFilters"]

JOB_RUNNER = web.AppKey("job_runner", JobRunner)
W = (400, 401, 403, 404, 409, 422)
Tag = Field(min_length=1, max_length=100)


class BulkFilters(ClientListQuery):
    """The clients list's filters (as ``GET /clients`` takes them; paging and sorting
    ignored), ``cf.<key>`` on custom fields included (or ``"cf": {key: value}``)."""

    cf: dict[str, str] | None = Field(
        None,
        max_length=MAX_CF_FILTERS,
        description="custom fields: {key: value}, as cf.<key>=value in the list",
    )

    @model_validator(mode="before")
    @classmethod
    def _custom_keys(cls, data: Any) -> Any:
        """``"cf.<key>": value`` (the list's query as the UI sends it) into ``cf``."""
        if not isinstance(data, dict):
            return data
        plain = {k: v for k, v in data.items() if not str(k).startswith(CF_PREFIX)}
        custom = {
            str(k)[len(CF_PREFIX) :]: str(v) if isinstance(v, int | float) else v
            for k, v in data.items()
            if k not in plain
        }
        if not custom:
            return data
        given = plain.get("cf")
        if given is not None and not isinstance(given, dict):
            return data  # refused below (cf is an object; cf.<key> is not a field)
        merged = {**(given or {}), **custom}
        return {**plain, "cf": merged}

    @field_validator("cf")
    @classmethod
    def _custom_values(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for key, v in (value or {}).items():
            if not key or len(key) > 100 or len(v) > 200 or "\x00" in key + v:
                raise ValueError(f"cf.{key}: a key of 1-100 and a value of at most 200 characters")
        return value or None


class Selection(Strict):
    client_ids: list[Id] | None = Field(None, min_length=1, max_length=svc.MAX_CLIENT_IDS)
    segment_id: Id | None = None
    filters: BulkFilters | None = None


class _Bulk(Strict):
    client_ids: list[Id] | None = Field(None, min_length=1, max_length=svc.MAX_CLIENT_IDS)
    segment_id: Id | None = None
    filters: BulkFilters | None = None
    selection: Selection | None = Field(None, description="the selection, nested")

    def picked(self) -> dict[str, Any]:
        keys = ("client_ids", "segment_id", "filters")
        # (where, which): top level or nested, exactly one in all
        given: list[Any] = [self for k in keys if getattr(self, k) is not None]
        if self.selection is not None:
            nested = self.selection
            given += [nested for k in keys if getattr(nested, k) is not None]
        if len(given) != 1:
            raise Invalid("give exactly one of client_ids, segment_id or filters", "client_ids")
        src = given[0]
        if src.client_ids is not None:
            return {"client_ids": sorted(set(src.client_ids))}
        if src.segment_id is not None:
            return {"segment_id": src.segment_id}
        flt = src.filters.to_filter()
        filters: dict[str, Any] = {
            "q": flt.q,
            "status": flt.status,
            "owner_id": flt.owner_id,
            "phone": flt.phone,
            "email": flt.email,
            "created_from": flt.created_from,
            "created_to": flt.created_to,
            **flt.extra,
        }
        return {"filters": {k: v for k, v in filters.items() if v is not None}}

    def params(self) -> dict[str, Any]:
        skip = {"client_ids", "segment_id", "filters", "selection"}
        return {k: v for k, v in self.model_dump().items() if k not in skip}


class BulkTasks(_Bulk):
    kind: TaskKind
    title: str = Field(min_length=1, max_length=500)
    start_date: date
    per_manager_per_day: int = Field(ge=1, le=1000)
    assignee_id: Id | None = Field(None, description="default: each client's owner")
    due_time: str = Field("10:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    workdays_only: bool = Field(True, description="spread over Monday-Friday only")
    note: str | None = Field(None, max_length=10000)


class BulkOwner(_Bulk):
    owner_id: Id


class BulkStatus(_Bulk):
    status: str = Field(min_length=1, max_length=20)


class BulkTags(_Bulk):
    add: list[str] = Field([], max_length=50, json_schema_extra={"items": {"maxLength": 100}})
    remove: list[str] = Field([], max_length=50)

    @model_validator(mode="after")
    def _tags(self) -> BulkTags:
        for name in ("add", "remove"):
            for tag in getattr(self, name):
                if not tag.strip() or len(tag) > 100:
                    raise ValueError(f"{name}: a tag is 1-100 characters")
        self.add = [t.strip() for t in self.add]
        self.remove = [t.strip() for t in self.remove]
        return self


class BulkSegment(Strict):
    """``segment_id`` is the manual segment to change; the selection is ``client_ids``,
    ``filters`` or ``selection`` (nested, e.g. another segment)."""

    segment_id: Id
    mode: Literal["add", "remove"] | None = None
    add: bool | None = Field(None, description="same as mode=add")
    remove: bool | None = Field(None, description="same as mode=remove")
    client_ids: list[Id] | None = Field(None, min_length=1, max_length=svc.MAX_CLIENT_IDS)
    filters: BulkFilters | None = None
    selection: Selection | None = None

    def picked(self) -> dict[str, Any]:
        sel = _Bulk(client_ids=self.client_ids, filters=self.filters, selection=self.selection)
        return sel.picked()

    def params(self) -> dict[str, Any]:
        mode = self.mode
        if mode is None and self.add:
            mode = "add"
        if mode is None and self.remove:
            mode = "remove"
        if mode is None:
            raise Invalid("mode must be add or remove", "mode")
        return {"segment_id": self.segment_id, "mode": mode}


def _handler(action: str, model: type[Any]) -> Any:
    @operation(
        summary=f"Mass operation on clients: {action} (a background job)",
        tag="bulk",
        body=model,
        status=202,
        errors=W,
    )
    async def handle(request: web.Request) -> web.Response:
        body = await read_body(request, model)
        key = idempotency_key(request)
        selection = body.picked()
        async with database(request).transaction() as s:
            job, _ = await svc.queue_job(s, actor(request), action, body.params(), selection, key)
            job_id = job.id
        runner = request.app.get(JOB_RUNNER)
        if runner is not None:
            runner.wake()
        return ok({"job_id": job_id}, 202)

    handle.__name__ = f"bulk_{action}"
    return handle


@operation(summary="A background job's progress", tag="bulk")
async def get_job(request: web.Request) -> web.Response:
    job_id = path_id(request)
    who = actor(request)
    async with database(request).sessions() as s:
        job = await s.get(Job, job_id)
        visible = job is not None and (who.is_admin or job.user_id == who.user_id)
        if job is not None and not visible and who.is_supervisor and who.team is not None:
            team = await s.scalar(select(User.team).where(User.id == job.user_id))
            visible = team == who.team
        if job is None or not visible:
            raise NotFound(f"job {job_id} not found")
        out = svc.job_dict(job)
    return ok(out)


ROUTES = [
    ("POST", "/bulk/tasks", _handler("tasks", BulkTasks)),
    ("POST", "/bulk/owner", _handler("owner", BulkOwner)),
    ("POST", "/bulk/status", _handler("status", BulkStatus)),
    ("POST", "/bulk/tags", _handler("tags", BulkTags)),
    ("POST", "/bulk/segment", _handler("segment", BulkSegment)),
    ("GET", "/jobs/{id}", get_job),
]
