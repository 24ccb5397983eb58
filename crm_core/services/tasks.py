"""Tasks: call back, send an offer, offer a discount, check a payment, send documents.

Statuses: ``open`` -> ``done`` (or ``cancelled``).  Snoozing moves ``due_at`` and the
reminder of an open task.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.access import Actor, visible_tasks
from crm_core.models import Task, User
from crm_core.models import utcnow as _now
from crm_core.reminders import local_to_utc
from crm_core.services.common import (
    COUNT_CAP,
    Conflict,
    Invalid,
    ListFilter,
    NotFound,
    Page,
    audit,
    check_assignee,
    count_capped,
    iso,
)

__all__ = [
    "TASK_KINDS",
    "TASK_STATUSES",
    "complete_task",
    "create_task",
    "get_task",
    "list_tasks",
    "snooze_task",
    "task_dicts",
    "update_task",
]

TASK_KINDS = (
    "call_back",
    "send_offer",
    "offer_discount",
    "check_payment",
    "send_documents",
    "other",
)
TASK_STATUSES = ("open", "done", "cancelled")


async def task_dicts(s: AsyncSession, tasks: list[Task]) -> list[dict[str, Any]]:
    return [
        {
            "id": t.id,
            "kind": t.kind,
            "title": t.title,
            "status": t.status,
            "due_at": iso(t.due_at),
            "remind_at": iso(t.remind_at),
            "reminded_at": iso(t.reminded_at),
            "sla_due_at": iso(t.sla_due_at),
            "sla_warned_at": iso(t.sla_warned_at),
            "escalated_at": iso(t.escalated_at),
            "assignee_id": t.assignee_id,
            "client_id": t.client_id,
            "lead_id": t.lead_id,
            "deal_id": t.deal_id,
            "created_by": t.created_by,
            "note": t.note,
            "created_at": iso(t.created_at),
            "closed_at": iso(t.closed_at),
        }
        for t in tasks
    ]


async def get_task(s: AsyncSession, actor: Actor, task_id: int) -> Task:
    task = await s.scalar(select(Task).where(Task.id == task_id, visible_tasks(actor)))
    if task is None:
        raise NotFound(f"task {task_id} not found")
    return task


async def list_tasks(s: AsyncSession, actor: Actor, flt: ListFilter) -> Page:
    query = select(Task).where(visible_tasks(actor))
    assignee = flt.extra.get("assignee_id", flt.owner_id)
    if assignee is not None:
        query = query.where(Task.assignee_id == assignee)
    if flt.status:
        query = query.where(Task.status == flt.status)
    if flt.extra.get("due_before") is not None:
        query = query.where(Task.due_at < flt.extra["due_before"])
    for key in ("client_id", "lead_id", "deal_id", "kind"):
        if flt.extra.get(key) is not None:
            query = query.where(getattr(Task, key) == flt.extra[key])
    if flt.created_from is not None:
        query = query.where(Task.created_at >= flt.created_from)
    if flt.created_to is not None:
        query = query.where(Task.created_at < flt.created_to)
    if flt.q:
        query = query.where(Task.title.ilike(f"%{flt.q.strip()}%"))
    return await _due_order_page(s, query, flt)


def _task_cursor(flt: ListFilter) -> tuple[datetime | None, int] | None:
    if flt.after is None:
        return None
    due, _, ident = flt.after.rpartition("|")
    try:
        return (datetime.fromisoformat(due) if due else None), int(ident)
    except ValueError:
        raise Invalid("after must be the next_after of a previous page", "after") from None


async def _due_order_page(s: AsyncSession, query: Any, flt: ListFilter) -> Page:
    """Tasks by due time (those without one last), then id: first the dated tasks in
    (due_at, id) index order, then the undated in id order, so no sort of the whole
    set is needed on either database.  ``after`` (``"<due_at>|<id>"``) continues a
    previous page by an index seek."""
    cursor = _task_cursor(flt)
    total = await count_capped(s, query, COUNT_CAP)
    dated = query.where(Task.due_at.is_not(None)).order_by(Task.due_at, Task.id)
    undated = query.where(Task.due_at.is_(None)).order_by(Task.id)
    offset = flt.offset
    rows: list[Task] = []
    if cursor is not None and cursor[0] is None:
        undated = undated.where(Task.id > cursor[1])
    else:
        if cursor is not None:
            due, ident = cursor
            dated = dated.where((Task.due_at > due) | ((Task.due_at == due) & (Task.id > ident)))
        rows = list(await s.scalars(dated.limit(flt.limit).offset(offset)))
        if rows:
            offset = 0  # the undated rows follow right after these
        elif offset:
            # The offset went past every dated row: skip the rest of it among the undated.
            offset -= await count_capped(s, dated, offset)
    if len(rows) < flt.limit:
        rows += list(await s.scalars(undated.limit(flt.limit - len(rows)).offset(offset)))
    nxt = None
    if len(rows) == flt.limit:
        last = rows[-1]
        nxt = f"{last.due_at.isoformat() if last.due_at else ''}|{last.id}"
    return Page(await task_dicts(s, rows), total, flt.limit, flt.offset, nxt, total >= COUNT_CAP)


async def _check_links(s: AsyncSession, actor: Actor, data: dict[str, Any]) -> None:
    """Links must point at rows the actor can see (hidden ones answer "not found")."""
    from crm_core.services.clients import get_client
    from crm_core.services.deals import get_deal
    from crm_core.services.leads import get_lead

    if data.get("client_id") is not None:
        await get_client(s, actor, data["client_id"])
    if data.get("lead_id") is not None:
        await get_lead(s, actor, data["lead_id"])
    if data.get("deal_id") is not None:
        await get_deal(s, actor, data["deal_id"])


async def create_task(s: AsyncSession, actor: Actor, data: dict[str, Any]) -> Task:
    """``data``: kind, title, due_at, assignee_id, client_id, lead_id, deal_id, note."""
    kind = data.get("kind") or "other"
    if kind not in TASK_KINDS:
        raise Invalid(f"kind must be one of {', '.join(TASK_KINDS)}", "kind")
    title = (data.get("title") or "").strip()
    if not title:
        raise Invalid("title must not be empty", "title")
    assignee_id = data.get("assignee_id") or actor.user_id
    await check_assignee(s, actor, assignee_id, "assignee_id")
    await _check_links(s, actor, data)
    due_at = data.get("due_at")
    if data.get("due_local") is not None:
        if due_at is not None:
            raise Invalid("give either due_at or due_local", "due_local")
        due_at = local_to_utc(data["due_local"], await _tz_of(s, assignee_id))
    task = Task(
        kind=kind,
        title=title,
        status="open",
        due_at=due_at,
        remind_at=due_at,
        assignee_id=assignee_id,
        client_id=data.get("client_id"),
        lead_id=data.get("lead_id"),
        deal_id=data.get("deal_id"),
        created_by=actor.user_id,
        note=data.get("note") or "",
    )
    s.add(task)
    await s.flush()
    await audit(s, actor, "create", "task", task.id, data)
    return task


async def update_task(s: AsyncSession, actor: Actor, task_id: int, changes: dict[str, Any]) -> Task:
    task = await get_task(s, actor, task_id)
    if changes.get("assignee_id") is not None and changes["assignee_id"] != task.assignee_id:
        await check_assignee(s, actor, changes["assignee_id"], "assignee_id")
        task.assignee_id = changes["assignee_id"]
    if "kind" in changes and changes["kind"] not in TASK_KINDS:
        raise Invalid(f"kind must be one of {', '.join(TASK_KINDS)}", "kind")
    if "status" in changes and changes["status"] not in TASK_STATUSES:
        raise Invalid(f"status must be one of {', '.join(TASK_STATUSES)}", "status")
    if "title" in changes and not (changes["title"] or "").strip():
        raise Invalid("title must not be empty", "title")
    await _check_links(s, actor, changes)
    for key in ("kind", "title", "note", "client_id", "lead_id", "deal_id"):
        if key in changes and (changes[key] is not None or key.endswith("_id")):
            setattr(task, key, changes[key])
    if "due_at" in changes:
        task.due_at = task.remind_at = changes["due_at"]
        task.reminded_at = None
    if "status" in changes and changes["status"] != task.status:
        task.status = changes["status"]
        task.closed_at = None if task.status == "open" else _now()
    await s.flush()
    await audit(s, actor, "update", "task", task.id, changes)
    return task


async def complete_task(s: AsyncSession, actor: Actor, task_id: int, note: str | None) -> Task:
    task = await get_task(s, actor, task_id)
    if task.status != "open":
        raise Conflict(f"task {task.id} is already {task.status}", "status")
    task.status = "done"
    task.closed_at = _now()
    if note:
        task.note = f"{task.note}\n{note}".strip()
    await s.flush()
    await audit(s, actor, "done", "task", task.id, {"note": note} if note else {})
    return task


async def _tz_of(s: AsyncSession, user_id: int | None) -> str | None:
    if user_id is None:
        return None
    return await s.scalar(select(User.timezone).where(User.id == user_id))


async def snooze_task(
    s: AsyncSession,
    actor: Actor,
    task_id: int,
    *,
    until: datetime | None,
    minutes: int | None,
    until_local: datetime | None = None,
) -> Task:
    """Move an open task to ``until``, ``until_local`` (a wall-clock time in the assignee's
    time zone) or ``minutes`` from now (exactly one is given); the reminder fires again."""
    if sum(v is not None for v in (until, minutes, until_local)) != 1:
        raise Invalid("give one of until, until_local or minutes", "until")
    task = await get_task(s, actor, task_id)
    if task.status != "open":
        raise Conflict(f"task {task.id} is already {task.status}", "status")
    if until_local is not None:
        until = local_to_utc(until_local, await _tz_of(s, task.assignee_id))
    now = _now()
    when = until if until is not None else now + timedelta(minutes=int(minutes or 0))
    if when <= now:
        where = "until_local" if until_local else ("until" if until else "minutes")
        raise Invalid("the new time must be in the future", where)
    task.due_at = task.remind_at = when
    task.reminded_at = None
    await s.flush()
    await audit(s, actor, "snooze", "task", task.id, {"until": when})
    return task
