"""Mass operations on clients: plan a task for each, change the owner, set the status,
add or remove tags, add to or remove from a manual segment.

A request becomes a row of ``jobs`` (:func:`queue_job`, idempotent per user and
``Idempotency-Key``); ``crm_core.jobs.JobRunner`` runs it in batches of clients in id
order, each batch one short transaction (:func:`run_batch`) that also moves the job's
cursor, so a restart resumes after the last committed batch.

Selection (:func:`select_clients`, the ONE place that turns a selection into client
ids): ``client_ids``, ``segment_id`` or the clients list's ``filters``.  A client the
job's user may not change (a manager: not theirs; a supervisor: outside their team) is
skipped, never changed.

Audit: one ``audit_entries`` row per changed client (``entity='client'``, action
``bulk_owner`` / ``bulk_status`` / ``bulk_tags`` / ``bulk_segment``) and one per created
task (``entity='task'``, action ``create``), each with ``{"job_id", "changes": {field:
[old, new]}}``, written in the batch's transaction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Select, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.access import Actor, can_assign_to
from crm_core.models import (
    AuditEntry,
    Client,
    ClientStatus,
    ClientTag,
    Job,
    Segment,
    SegmentClient,
    Task,
    User,
)
from crm_core.models import utcnow as _now
from crm_core.reminders import local_to_utc
from crm_core.services.clients import LIST_FILTER_KEYS
from crm_core.services.common import (
    Conflict,
    Invalid,
    NotFound,
    check_assignee,
    jsonable,
)
from crm_core.services.segments import in_segment

__all__ = [
    "BULK_ACTIONS",
    "FILTER_KEYS",
    "MAX_CLIENT_IDS",
    "BatchResult",
    "due_day",
    "job_dict",
    "job_total",
    "queue_job",
    "run_batch",
    "select_clients",
    "validate_params",
]

BULK_ACTIONS = ("tasks", "owner", "status", "tags", "segment")
MAX_CLIENT_IDS = 10_000
ERRORS_KEPT = 100  # per-client errors kept on the job (the counters count them all)
# The clients list filters a selection may use (``GET /clients`` query parameters): the
# list's own, read by the list's own function (crm_core/services/clients.py).
FILTER_KEYS = LIST_FILTER_KEYS


# -- selection ------------------------------------------------------------------


async def _filters_condition(s: AsyncSession, actor: Actor, filters: dict[str, Any]) -> list[Any]:
    """The clients list's filters as conditions, by the list's own function: the job
    selects exactly the clients the list shows (only visible ones).  Unknown filters are
    refused rather than ignored: a mass change must never reach further than the list
    the user looked at."""
    from crm_core.services.clients import client_conditions, list_filter

    return list(await client_conditions(s, actor, list_filter(filters)))


async def select_clients(s: AsyncSession, actor: Actor, selection: dict[str, Any]) -> Select[Any]:
    """``SELECT clients.id`` of the selected clients (not yet ordered), before the
    per-client permission check (which skips rather than hides).

    ``selection`` holds exactly one of ``client_ids`` (a list), ``segment_id`` or
    ``filters`` (the clients list's, see :data:`FILTER_KEYS`; already parsed).

    Segments: manual ones through ``segment_clients``, rule ones through their compiled
    SQL condition (``crm_core.services.segments.in_segment``).
    """
    query = select(Client.id)
    if selection.get("client_ids") is not None:
        return query.where(Client.id.in_(selection["client_ids"]))
    if selection.get("segment_id") is not None:
        seg_id = int(selection["segment_id"])
        if selection.get("segment_kind", "manual") == "rule":
            return query.where(await in_segment(s, seg_id))  # the compiled rules
        members = select(SegmentClient.client_id).where(SegmentClient.segment_id == seg_id)
        return query.where(Client.id.in_(members))
    return query.where(*await _filters_condition(s, actor, selection.get("filters") or {}))


async def job_total(
    s: AsyncSession, actor: Actor, selection: dict[str, Any]
) -> tuple[int, int | None, int]:
    """(clients selected, their highest id, ids given that name no client)."""
    ids = (await select_clients(s, actor, selection)).subquery()
    row = (await s.execute(select(func.count(), func.max(ids.c.id)))).one()
    total, max_id = int(row[0] or 0), row[1]
    missing = 0
    if selection.get("client_ids") is not None:
        missing = len(set(selection["client_ids"])) - total
    return total, (int(max_id) if max_id is not None else None), missing


# -- queueing -------------------------------------------------------------------


async def _segment(s: AsyncSession, seg_id: int, field_name: str) -> Segment:
    seg = await s.get(Segment, seg_id)
    if seg is None:
        raise Invalid(f"segment {seg_id} does not exist", field_name)
    return seg


async def _statuses(s: AsyncSession) -> list[str]:
    rows = list(await s.scalars(select(ClientStatus.key).where(ClientStatus.active.is_(True))))
    if rows:
        return rows
    from crm_core.services.clients import CLIENT_STATUSES

    return list(CLIENT_STATUSES)


async def validate_params(
    s: AsyncSession, actor: Actor, action: str, params: dict[str, Any]
) -> dict[str, Any]:
    """Check an action's parameters before anything is queued (422 naming the field);
    returns them JSON-ready."""
    if action not in BULK_ACTIONS:
        raise NotFound(f"bulk action {action} not found")
    if action == "owner":
        await check_assignee(s, actor, int(params["owner_id"]), "owner_id")
    elif action == "status":
        allowed = await _statuses(s)
        if params.get("status") not in allowed:
            raise Invalid(f"status must be one of {', '.join(allowed)}", "status")
    elif action == "tags":
        if not params.get("add") and not params.get("remove"):
            raise Invalid("give tags to add or to remove", "add")
    elif action == "segment":
        seg = await _segment(s, int(params["segment_id"]), "segment_id")
        if seg.kind != "manual":
            raise Invalid(f"segment {seg.id} is not a manual segment", "segment_id")
        if params.get("mode") not in ("add", "remove"):
            raise Invalid("mode must be add or remove", "mode")
    elif action == "tasks":
        from crm_core.services.tasks import TASK_KINDS

        if params.get("kind") not in TASK_KINDS:
            raise Invalid(f"kind must be one of {', '.join(TASK_KINDS)}", "kind")
        if params.get("assignee_id") is not None:
            await check_assignee(s, actor, int(params["assignee_id"]), "assignee_id")
    return dict(jsonable(params))


def _request_hash(action: str, params: dict[str, Any], selection: dict[str, Any]) -> str:
    blob = json.dumps([action, params, selection], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


async def queue_job(
    s: AsyncSession,
    actor: Actor,
    action: str,
    params: dict[str, Any],
    selection: dict[str, Any],
    idempotency_key: str | None,
) -> tuple[Job, bool]:
    """The job for this request: (job, created).  The same key from the same user answers
    the job it created before (409 when the key came with another request)."""
    if selection.get("segment_id") is not None:
        seg = await _segment(s, int(selection["segment_id"]), "segment_id")
        selection = {**selection, "segment_kind": seg.kind}
    params = await validate_params(s, actor, action, params)
    selection = dict(jsonable(selection))
    digest = _request_hash(action, params, selection)
    if idempotency_key is not None:
        prev = await s.scalar(
            select(Job).where(Job.user_id == actor.user_id, Job.idempotency_key == idempotency_key)
        )
        if prev is not None:
            if prev.request_hash != digest:
                raise Conflict(
                    f"Idempotency-Key {idempotency_key!r} is already used", "Idempotency-Key"
                )
            return prev, False
    await select_clients(s, actor, selection)  # refuses a bad filter now, not in the runner
    job = Job(
        kind="bulk",
        action=action,
        user_id=actor.user_id,
        idempotency_key=idempotency_key,
        request_hash=digest,
        params=params,
        selection=selection,
        status="queued",
        processed=0,
        skipped=0,
        errors=[],
        state={},
        attempts=0,
    )
    s.add(job)
    await s.flush()
    return job, True


def job_dict(job: Job) -> dict[str, Any]:
    def iso(v: datetime | None) -> str | None:
        return v.isoformat() if v is not None else None

    return {
        "id": job.id,
        "job_id": job.id,
        "action": job.action,
        "status": job.status,
        "total": job.total,
        "processed": job.processed,
        "skipped": job.skipped,
        "skipped_by_reason": dict(job.state.get("skipped_by_reason", {})),
        "errors": list(job.errors or []),
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
    }


# -- running ----------------------------------------------------------------------


@dataclass(slots=True)
class BatchResult:
    """What one batch did: clients looked at, how many skipped and why, errors."""

    last_id: int | None = None
    seen: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)

    def skip(self, reason: str, client_id: int) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        if len(self.errors) < ERRORS_KEPT:
            self.errors.append({"client_id": client_id, "error": reason})


def _may_change(actor: Actor, owner_id: int | None, team_ids: set[int]) -> bool:
    if actor.is_admin:
        return True
    if owner_id is None:
        return False
    if owner_id == actor.user_id:
        return True
    return actor.is_supervisor and owner_id in team_ids


async def _team_ids(s: AsyncSession, actor: Actor) -> set[int]:
    if not actor.is_supervisor or actor.team is None:
        return set()
    return set(await s.scalars(select(User.id).where(User.team == actor.team)))


def due_day(start: date, index: int, workdays_only: bool) -> date:
    """The ``index``-th day (0-based) from ``start``, counting only Monday-Friday when
    ``workdays_only`` (a weekend ``start`` moves to the Monday after)."""
    if not workdays_only:
        return start + timedelta(days=index)
    day = start
    while day.weekday() >= 5:
        day += timedelta(days=1)
    weeks, rest = divmod(index, 5)
    day += timedelta(weeks=weeks)
    for _ in range(rest):
        day += timedelta(days=1)
        while day.weekday() >= 5:
            day += timedelta(days=1)
    return day


def _audit_rows(
    actor: Actor, job: Job, entity: str, action: str, changes: list[tuple[int, dict[str, Any]]]
) -> list[dict[str, Any]]:
    now = _now()
    return [
        {
            "at": now,
            "user_id": actor.user_id,
            "action": action,
            "entity": entity,
            "entity_id": entity_id,
            "details": jsonable({"job_id": job.id, "changes": diff}),
        }
        for entity_id, diff in changes
    ]


async def run_batch(s: AsyncSession, job: Job, actor: Actor, limit: int) -> BatchResult:
    """Handle the next ``limit`` selected clients after ``job.cursor`` (up to
    ``job.max_id``) in the caller's transaction; the caller moves the job's counters."""
    res = BatchResult()
    ids_q = await select_clients(s, actor, job.selection)
    if job.cursor is not None:
        ids_q = ids_q.where(Client.id > job.cursor)
    if job.max_id is not None:
        ids_q = ids_q.where(Client.id <= job.max_id)
    ids_q = ids_q.order_by(Client.id).limit(limit)
    rows = (
        await s.execute(
            select(Client.id, Client.owner_id, Client.status)
            .where(Client.id.in_(ids_q.scalar_subquery()))
            .order_by(Client.id)
        )
    ).all()
    if not rows:
        return res
    res.last_id = int(rows[-1][0])
    res.seen = len(rows)
    team = await _team_ids(s, actor)
    allowed = []
    for cid, owner, status in rows:
        if _may_change(actor, owner, team):
            allowed.append((int(cid), owner, status))
        else:
            res.skip("not_allowed", int(cid))
    if allowed:
        handler = _HANDLERS[job.action]
        await handler(s, job, actor, allowed, res)
    return res


Row = tuple[int, int | None, str]


async def _bulk_owner(
    s: AsyncSession, job: Job, actor: Actor, rows: Sequence[Row], res: BatchResult
) -> None:
    new = int(job.params["owner_id"])
    changed = [(cid, old) for cid, old, _ in rows if old != new]
    if not changed:
        return
    await s.execute(
        update(Client)
        .where(Client.id.in_([c for c, _ in changed]))
        .values(owner_id=new, updated_at=_now())
        .execution_options(synchronize_session=False)
    )
    diffs = [(cid, {"owner_id": [old, new]}) for cid, old in changed]
    await s.execute(insert(AuditEntry), _audit_rows(actor, job, "client", "bulk_owner", diffs))


async def _bulk_status(
    s: AsyncSession, job: Job, actor: Actor, rows: Sequence[Row], res: BatchResult
) -> None:
    new = str(job.params["status"])
    changed = [(cid, old) for cid, _, old in rows if old != new]
    if not changed:
        return
    await s.execute(
        update(Client)
        .where(Client.id.in_([c for c, _ in changed]))
        .values(status=new, updated_at=_now())
        .execution_options(synchronize_session=False)
    )
    diffs = [(cid, {"status": [old, new]}) for cid, old in changed]
    await s.execute(insert(AuditEntry), _audit_rows(actor, job, "client", "bulk_status", diffs))


async def _bulk_tags(
    s: AsyncSession, job: Job, actor: Actor, rows: Sequence[Row], res: BatchResult
) -> None:
    add = list(dict.fromkeys(job.params.get("add") or []))
    remove = set(job.params.get("remove") or []) - set(add)
    ids = [cid for cid, _, _ in rows]
    before: dict[int, set[str]] = {cid: set() for cid in ids}
    for cid, tag in await s.execute(
        select(ClientTag.client_id, ClientTag.tag).where(ClientTag.client_id.in_(ids))
    ):
        before[int(cid)].add(tag)
    new_rows = [
        {"client_id": cid, "tag": tag} for cid in ids for tag in add if tag not in before[cid]
    ]
    if new_rows:
        await s.execute(insert(ClientTag), new_rows)
    if remove:
        await s.execute(
            delete(ClientTag)
            .where(ClientTag.client_id.in_(ids), ClientTag.tag.in_(sorted(remove)))
            .execution_options(synchronize_session=False)
        )
    diffs = []
    for cid in ids:
        after = (before[cid] | set(add)) - remove
        if after != before[cid]:
            diffs.append((cid, {"tags": [sorted(before[cid]), sorted(after)]}))
    if diffs:
        await s.execute(insert(AuditEntry), _audit_rows(actor, job, "client", "bulk_tags", diffs))


async def _bulk_segment(
    s: AsyncSession, job: Job, actor: Actor, rows: Sequence[Row], res: BatchResult
) -> None:
    seg_id = int(job.params["segment_id"])
    ids = [cid for cid, _, _ in rows]
    members = set(
        await s.scalars(
            select(SegmentClient.client_id).where(
                SegmentClient.segment_id == seg_id, SegmentClient.client_id.in_(ids)
            )
        )
    )
    if job.params["mode"] == "add":
        changed = [cid for cid in ids if cid not in members]
        if changed:
            now = _now()
            await s.execute(
                insert(SegmentClient),
                [{"segment_id": seg_id, "client_id": cid, "added_at": now} for cid in changed],
            )
        diffs = [(cid, {"segment_id": [None, seg_id]}) for cid in changed]
    else:
        changed = [cid for cid in ids if cid in members]
        if changed:
            await s.execute(
                delete(SegmentClient)
                .where(SegmentClient.segment_id == seg_id, SegmentClient.client_id.in_(changed))
                .execution_options(synchronize_session=False)
            )
        diffs = [(cid, {"segment_id": [seg_id, None]}) for cid in changed]
    if diffs:
        await s.execute(
            insert(AuditEntry), _audit_rows(actor, job, "client", "bulk_segment", diffs)
        )


async def _open_on(s: AsyncSession, user: User, day: date) -> int:
    """Open tasks ``user`` already has due on ``day`` (their time zone)."""
    start = local_to_utc(datetime.combine(day, time()), user.timezone)
    end = local_to_utc(datetime.combine(day + timedelta(days=1), time()), user.timezone)
    q = select(func.count()).where(
        Task.assignee_id == user.id, Task.status == "open", Task.due_at >= start, Task.due_at < end
    )
    return int(await s.scalar(q) or 0)


async def _bulk_tasks(
    s: AsyncSession, job: Job, actor: Actor, rows: Sequence[Row], res: BatchResult
) -> None:
    """One open task per client, due on the first day (from ``start_date``, Monday to
    Friday unless ``workdays_only`` is false) on which its assignee has fewer than
    ``per_manager_per_day`` open tasks (those they had already count too), at
    ``due_time`` in the assignee's time zone.  Each assignee's current day and its count
    live in ``job.state`` so a resumed job continues the same spread."""
    p = job.params
    per_day = int(p["per_manager_per_day"])
    start = date.fromisoformat(str(p["start_date"]))
    at = time.fromisoformat(str(p.get("due_time") or "10:00"))
    workdays = bool(p.get("workdays_only", True))
    fixed = p.get("assignee_id")
    slots: dict[str, list[int]] = {k: list(v) for k, v in job.state.get("slots", {}).items()}
    wanted = {int(fixed)} if fixed is not None else {o for _, o, _ in rows if o is not None}
    users = {u.id: u for u in await s.scalars(select(User).where(User.id.in_(sorted(wanted))))}
    now = _now()
    tasks: list[dict[str, Any]] = []
    for cid, owner, _ in rows:
        uid = int(fixed) if fixed is not None else owner
        if uid is None:
            res.skip("no_owner", cid)
            continue
        user = users.get(uid)
        if user is None or not can_assign_to(actor, user):
            res.skip("assignee_not_allowed", cid)
            continue
        if str(uid) not in slots:
            slots[str(uid)] = [0, await _open_on(s, user, due_day(start, 0, workdays))]
        slot = slots[str(uid)]
        while slot[1] >= per_day:
            slot[0] += 1
            slot[1] = await _open_on(s, user, due_day(start, slot[0], workdays))
        slot[1] += 1
        day = due_day(start, slot[0], workdays)
        due = local_to_utc(datetime.combine(day, at), user.timezone)
        tasks.append(
            {
                "kind": p["kind"],
                "title": p["title"],
                "status": "open",
                "due_at": due,
                "remind_at": due,
                "assignee_id": uid,
                "client_id": cid,
                "created_by": actor.user_id,
                "note": p.get("note") or "",
                "created_at": now,
            }
        )
    job.state = {**job.state, "slots": slots}
    if not tasks:
        return
    ids = await _insert_tasks(s, tasks)
    diffs = [
        (tid, {"client_id": [None, t["client_id"]], "assignee_id": [None, t["assignee_id"]]})
        for tid, t in zip(ids, tasks, strict=True)
    ]
    await s.execute(insert(AuditEntry), _audit_rows(actor, job, "task", "create", diffs))


async def _insert_tasks(s: AsyncSession, tasks: list[dict[str, Any]]) -> list[int]:
    """Insert task rows; their ids in the same order.  SQLite: the batch holds the only
    write transaction (BEGIN IMMEDIATE under the writer lock), so the ids after the
    highest are ours to give (``INTEGER PRIMARY KEY`` would pick the same); one plain
    executemany, where RETURNING in parameter order would go row by row.  PostgreSQL:
    ``INSERT ... RETURNING`` sorted by parameter order (one statement per page)."""
    if s.get_bind().dialect.name == "sqlite":
        first = int(await s.scalar(select(func.max(Task.id))) or 0) + 1
        for n, row in enumerate(tasks):
            row["id"] = first + n
        await s.execute(insert(Task), tasks)
        return [first + n for n in range(len(tasks))]
    stmt = insert(Task).returning(Task.id, sort_by_parameter_order=True)
    return list(await s.scalars(stmt, tasks))


_HANDLERS = {
    "owner": _bulk_owner,
    "status": _bulk_status,
    "tags": _bulk_tags,
    "segment": _bulk_segment,
    "tasks": _bulk_tasks,
}
