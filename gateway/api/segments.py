"""Handlers: segments of the client base (manual and by rules), their live counts and
clients, the managers assigned to them, and a rebalance running off the request.

A rebalance (``PUT /segments/{id}/managers`` with ``"rebalance": true``) is planned in
one read, then written in short transactions of :data:`REBALANCE_BATCH` clients (each
through the store's writer slot on SQLite), so the rest of the base keeps taking
writes; its progress shows in ``GET /segments/{id}`` as ``rebalance``.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from crm_core.access import Actor
from crm_core.db import Database
from crm_core.models import utcnow
from crm_core.services import clients as clients_svc
from crm_core.services import segments as svc
from crm_core.services.common import ListFilter, iso
from crm_core.services.segment_rules import OPS, RuleError
from gateway.api.common import actor, database, ok, path_id, read_body, read_query
from gateway.api.responses import ClientOut
from gateway.api.schemas import PageQuery
from gateway.errors import ApiError, json_dumps
from gateway.openapi import operation

__all__ = ["REBALANCE_BATCH", "ROUTES", "SEGMENT_JOBS", "SegmentJobs", "setup_segments"]

log = structlog.get_logger("crmhub.segments")
REBALANCE_BATCH = 500
W = (400, 401, 403, 404, 409, 422)


@dataclass
class SegmentJobs:
    """Rebalances running in this process: their tasks and progress per segment."""

    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    progress: dict[int, dict[str, Any]] = field(default_factory=dict)


SEGMENT_JOBS = web.AppKey("segment_jobs", SegmentJobs)


def setup_segments(app: web.Application) -> None:
    app[SEGMENT_JOBS] = SegmentJobs()

    async def stop(app: web.Application) -> None:
        for task in list(app[SEGMENT_JOBS].tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app.on_cleanup.append(stop)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class SegmentCreate(_Body):
    name: str = Field(max_length=100)
    description: str | None = Field(None, max_length=2000)
    kind: str | None = Field(None, description="manual | rule (default: rule when rules given)")
    client_ids: list[int] | None = Field(None, description="manual: its clients")
    rules: dict[str, Any] | None = Field(
        None, description='rule: {"all"|"any": [{"field","op","value"} or nested groups]}'
    )


class SegmentPatch(_Body):
    name: str | None = Field(None, max_length=100)
    description: str | None = Field(None, max_length=2000)
    rules: dict[str, Any] | None = None
    client_ids: list[int] | None = Field(None, description="manual: replaces its clients")
    add_client_ids: list[int] | None = None
    remove_client_ids: list[int] | None = None


class RulesPreview(_Body):
    rules: dict[str, Any]


class ManagersPut(_Body):
    user_ids: list[int] = Field(max_length=500)
    strategy: str = Field("round_robin", description="round_robin | least_loaded")
    rebalance: bool = False


class SegmentOut(BaseModel):
    id: int
    name: str
    description: str
    kind: str
    rules: dict[str, Any] | None
    strategy: str | None
    manager_ids: list[int]
    created_by: int | None
    created_at: str | None
    updated_at: str | None
    client_count: int = Field(description="clients the caller may see, up to 10,000")
    count_capped: bool
    rebalance: dict[str, Any] | None = None


class CountOut(BaseModel):
    count: int
    count_capped: bool


def _rule_error(exc: RuleError) -> web.Response:
    body = {"error": exc.message, "error_ru": exc.message_ru, "field": exc.field}
    return web.json_response(body, status=400, dumps=json_dumps)


def _jobs(request: web.Request) -> SegmentJobs:
    jobs = request.app.get(SEGMENT_JOBS)
    if jobs is None:  # an app built without setup_segments (older test apps)
        jobs = SegmentJobs()
        request.app[SEGMENT_JOBS] = jobs
    return jobs


async def _out(request: web.Request, s: Any, segs: list[Any]) -> list[dict[str, Any]]:
    items = await svc.segment_dicts(s, actor(request), segs)
    progress = _jobs(request).progress
    for item in items:
        item["rebalance"] = progress.get(item["id"])
    return items


@operation(
    summary="List segments with their live counts (a manager's: of their own clients)",
    tag="segments",
    response=SegmentOut,
    many=True,
)
async def list_segments(request: web.Request) -> web.Response:
    async with database(request).sessions() as s:
        items = await _out(request, s, await svc.list_segments(s))
    return ok({"items": items, "total": len(items), "limit": len(items), "offset": 0})


@operation(
    summary="Create a segment: manual (client_ids) or by rules",
    tag="segments",
    body=SegmentCreate,
    response=SegmentOut,
    status=201,
    errors=W,
)
async def create_segment(request: web.Request) -> web.Response:
    body = await read_body(request, SegmentCreate)
    try:
        async with database(request).transaction() as s:
            seg = await svc.create_segment(s, actor(request), body.model_dump())
            out = (await _out(request, s, [seg]))[0]
    except RuleError as exc:
        return _rule_error(exc)
    return ok(out, 201)


@operation(summary="Get a segment", tag="segments", response=SegmentOut)
async def get_segment(request: web.Request) -> web.Response:
    async with database(request).sessions() as s:
        seg = await svc.get_segment(s, path_id(request))
        out = (await _out(request, s, [seg]))[0]
    return ok(out)


@operation(
    summary="Change a segment (name, rules; a manual one's clients)",
    tag="segments",
    body=SegmentPatch,
    response=SegmentOut,
    errors=W,
)
async def patch_segment(request: web.Request) -> web.Response:
    seg_id = path_id(request)
    body = await read_body(request, SegmentPatch)
    try:
        async with database(request).transaction() as s:
            seg = await svc.update_segment(
                s, actor(request), seg_id, body.model_dump(exclude_unset=True)
            )
            out = (await _out(request, s, [seg]))[0]
    except RuleError as exc:
        return _rule_error(exc)
    return ok(out)


@operation(summary="Delete a segment (its clients stay)", tag="segments", status=204, errors=W)
async def delete_segment(request: web.Request) -> web.Response:
    seg_id = path_id(request)
    if seg_id in _running(request):
        raise ApiError(409, f"segment {seg_id} is being rebalanced; retry when it is done")
    async with database(request).transaction() as s:
        await svc.delete_segment(s, actor(request), seg_id)
    return web.Response(status=204)


@operation(
    summary="The clients of a segment (those the caller may see)",
    tag="segments",
    query=PageQuery,
    response=ClientOut,
    many=True,
)
async def segment_clients(request: web.Request) -> web.Response:
    seg_id = path_id(request)
    q = read_query(request, PageQuery)
    flt = ListFilter(limit=q.limit, offset=q.offset, after=q.after or None)
    flt.extra["segment"] = seg_id
    async with database(request).sessions() as s:
        page = await clients_svc.list_clients(s, actor(request), flt)
    return ok(page.as_dict())


@operation(
    summary="How many clients the rules hold now (the editor's live count); validates them",
    tag="segments",
    body=RulesPreview,
    response=CountOut,
    errors=(400, 401, 422),
)
async def preview(request: web.Request) -> web.Response:
    body = await read_body(request, RulesPreview)
    try:
        async with database(request).sessions() as s:
            out = await svc.preview_count(s, actor(request), body.rules)
    except RuleError as exc:
        return _rule_error(exc)
    return ok(out)


@operation(summary="The fields and operators a rule may use", tag="segments", errors=(401,))
async def rule_fields(request: web.Request) -> web.Response:
    async with database(request).sessions() as s:
        items = await svc.rule_fields(s)
    return ok({"items": items, "ops": list(OPS)})


def _running(request: web.Request) -> set[int]:
    return {k for k, v in _jobs(request).progress.items() if v.get("state") == "running"}


@operation(
    summary="Assign managers to a segment (its clients without an owner get one of them; "
    "rebalance: share all its clients among them, in the background)",
    tag="segments",
    body=ManagersPut,
    response=SegmentOut,
    errors=W,
)
async def put_managers(request: web.Request) -> web.Response:
    seg_id = path_id(request)
    body = await read_body(request, ManagersPut)
    who = actor(request)
    if seg_id in _running(request):
        raise ApiError(409, f"segment {seg_id} is being rebalanced; retry when it is done")
    db = database(request)
    async with db.transaction() as s:
        _, plan = await svc.set_managers(s, who, seg_id, body.user_ids, body.strategy)
    if body.rebalance and body.user_ids:
        async with db.sessions() as s:
            plan = await svc.plan_rebalance(s, who, seg_id)
        _start_rebalance(request, db, who, plan, "rebalance")
    elif plan.moves:  # many unowned clients: their first owners in the background
        _start_rebalance(request, db, who, plan, "assign")
    async with db.sessions() as s:
        out = (await _out(request, s, [await svc.get_segment(s, seg_id)]))[0]
    return ok(out)


def _start_rebalance(
    request: web.Request, db: Database, who: Actor, plan: svc.RebalancePlan, kind: str
) -> None:
    """``kind`` rebalance (every client shared anew) or assign (unowned clients only)."""
    jobs = _jobs(request)
    progress: dict[str, Any] = {
        "kind": kind,
        "state": "running",
        "total": plan.total,
        "to_move": len(plan.moves),
        "moved": 0,
        "started_at": iso(utcnow()),
        "finished_at": None,
        "error": None,
    }
    jobs.progress[plan.segment_id] = progress

    async def run() -> None:
        try:
            for i in range(0, len(plan.moves), REBALANCE_BATCH):
                batch = plan.moves[i : i + REBALANCE_BATCH]
                async with db.transaction() as s:
                    done = await svc.apply_rebalance_batch(
                        s, who, plan.segment_id, batch, only_unowned=kind == "assign"
                    )
                progress["moved"] += done
                await asyncio.sleep(0)  # let other requests take the writer slot
            progress["state"] = "done"
        except asyncio.CancelledError:
            progress["state"] = "cancelled"
            raise
        except Exception as exc:  # reported in the progress; the batches done stay
            log.exception("segment_rebalance_failed", segment_id=plan.segment_id)
            progress["state"] = "failed"
            progress["error"] = str(exc)[:300]
        finally:
            progress["finished_at"] = iso(utcnow())

    task = asyncio.create_task(run(), name=f"segment-rebalance-{plan.segment_id}")
    jobs.tasks.add(task)
    task.add_done_callback(jobs.tasks.discard)


ROUTES = [
    ("GET", "/segments", list_segments),
    ("POST", "/segments", create_segment),
    ("POST", "/segments/preview", preview),
    ("GET", "/segments/fields", rule_fields),
    ("GET", "/segments/{id}", get_segment),
    ("PATCH", "/segments/{id}", patch_segment),
    ("DELETE", "/segments/{id}", delete_segment),
    ("GET", "/segments/{id}/clients", segment_clients),
    ("PUT", "/segments/{id}/managers", put_managers),
]
