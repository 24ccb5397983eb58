"""Tasks: call back, send an offer, offer a discount, check a payment, send documents,
a meeting, anything else; each due at a time, with a reminder, linked to a client, a lead
or a deal.

Statuses: ``open`` -> ``done`` (or ``cancelled``); analytics count ``done`` and open
tasks past ``due_at`` (overdue).  Completing records a ``result`` and can plan the next
task in the same transaction.  Snoozing moves ``due_at`` and the reminder of an open
task (``reminded_at`` is cleared so ``crm_core.reminders`` fires again).  A reminder is
``remind_at`` (by default the due time); moving the due time keeps the reminder's lead.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.access import Actor, visible_tasks
from crm_core.models import Task, User
from crm_core.models import utcnow as _now
from crm_core.reminders import TASK_TITLES, local_to_utc, zone
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
    "DUE_VIEWS",
    "SNOOZE_PRESETS",
    "TASK_KINDS",
    "TASK_STATUSES",
    "complete_task",
    "create_task",
    "due_window",
    "get_task",
    "list_tasks",
    "preset_time",
    "reassign_task",
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
    "meeting",
    "other",
)
TASK_STATUSES = ("open", "done", "cancelled")
DUE_VIEWS = ("today", "week", "overdue")
# Snooze presets: minutes from now, or a wall-clock time in the assignee's time zone.
SNOOZE_PRESETS = ("15m", "1h", "3h", "tomorrow", "next_week")
_PRESET_MINUTES = {"15m": 15, "1h": 60, "3h": 180}
WORKDAY_START = time(10, 0)  # "tomorrow" and "next week" mean 10:00 there


def due_window(view: str, now: datetime, tz_name: str | None) -> tuple[datetime, datetime]:
    """[start, end) in UTC of ``today`` or this ``week`` (Monday to Sunday) in ``tz_name``."""
    tz = zone(tz_name)
    day = now.astimezone(tz).date()
    if view == "week":
        day -= timedelta(days=day.weekday())
    days = 7 if view == "week" else 1
    start = datetime.combine(day, time(), tzinfo=tz)
    end = datetime.combine(day + timedelta(days=days), time(), tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)


def preset_time(preset: str, now: datetime, tz_name: str | None) -> datetime:
    """The moment a snooze preset means for someone in ``tz_name``."""
    if preset in _PRESET_MINUTES:
        return now + timedelta(minutes=_PRESET_MINUTES[preset])
    today = now.astimezone(zone(tz_name)).date()
    if preset == "tomorrow":
        day = today + timedelta(days=1)
    elif preset == "next_week":
        day = today + timedelta(days=7 - today.weekday())
    else:
        raise Invalid(f"preset must be one of {', '.join(SNOOZE_PRESETS)}", "preset")
    return local_to_utc(datetime.combine(day, WORKDAY_START), tz_name)


async def task_dicts(s: AsyncSession, tasks: list[Task]) -> list[dict[str, Any]]:
    return [
        {
            "id": t.id,
            "kind": t.kind,
            "kind_title_ru": TASK_TITLES.get(t.kind, TASK_TITLES["other"])[0],
            "kind_title_en": TASK_TITLES.get(t.kind, TASK_TITLES["other"])[1],
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
            "result": t.result,
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
    """Filters: assignee_id (or owner_id), status, kind, links, due_before, due_from,
    ``due`` = ``today`` / ``week`` (in the caller's time zone) / ``overdue`` (open and past
    due), created_from/to, q (title)."""
    query = select(Task).where(visible_tasks(actor))
    assignee = flt.extra.get("assignee_id", flt.owner_id)
    if assignee is not None:
        query = query.where(Task.assignee_id == assignee)
    if flt.status:
        query = query.where(Task.status == flt.status)
    if flt.extra.get("due_before") is not None:
        query = query.where(Task.due_at < flt.extra["due_before"])
    if flt.extra.get("due_from") is not None:
        query = query.where(Task.due_at >= flt.extra["due_from"])
    view = flt.extra.get("due")
    if view is not None:
        if view not in DUE_VIEWS:
            raise Invalid(f"due must be one of {', '.join(DUE_VIEWS)}", "due")
        now = _now()
        if view == "overdue":
            query = query.where(Task.status == "open", Task.due_at < now)
        else:
            start, end = due_window(view, now, await _tz_of(s, actor.user_id))
            query = query.where(Task.due_at >= start, Task.due_at < end)
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


def _kind(value: Any) -> str:
    if value not in TASK_KINDS:
        raise Invalid(f"kind must be one of {', '.join(TASK_KINDS)}", "kind")
    return str(value)


async def _times(
    s: AsyncSession, data: dict[str, Any], assignee_id: int | None
) -> tuple[datetime | None, datetime | None, bool]:
    """(due_at, remind_at, given) from due_at|due_local and remind_at|remind_local|
    remind_minutes_before; the reminder defaults to the due time and may not follow it."""
    due_at = data.get("due_at")
    tz: str | None = None
    if data.get("due_local") is not None:
        if due_at is not None:
            raise Invalid("give either due_at or due_local", "due_local")
        tz = await _tz_of(s, assignee_id)
        due_at = local_to_utc(data["due_local"], tz)
    remind_at = data.get("remind_at")
    given = sum(data.get(k) is not None for k in ("remind_at", "remind_local", "remind_before"))
    if given > 1:
        raise Invalid("give one of remind_at, remind_local or remind_before", "remind_at")
    if data.get("remind_local") is not None:
        remind_at = local_to_utc(data["remind_local"], tz or await _tz_of(s, assignee_id))
    if data.get("remind_before") is not None:
        if due_at is None:
            raise Invalid("remind_before needs a due time", "remind_before")
        remind_at = due_at - timedelta(minutes=int(data["remind_before"]))
    if remind_at is not None and due_at is not None and remind_at > due_at:
        raise Invalid("the reminder must not come after the due time", "remind_at")
    return due_at, remind_at if given else due_at, bool(given)


async def create_task(s: AsyncSession, actor: Actor, data: dict[str, Any]) -> Task:
    """``data``: kind, title, due_at|due_local, remind_at|remind_local|remind_before
    (minutes), assignee_id, client_id, lead_id, deal_id, note."""
    kind = _kind(data.get("kind") or "other")
    title = (data.get("title") or "").strip()
    if not title:
        raise Invalid("title must not be empty", "title")
    assignee_id = data.get("assignee_id") or actor.user_id
    await check_assignee(s, actor, assignee_id, "assignee_id")
    await _check_links(s, actor, data)
    due_at, remind_at, _ = await _times(s, data, assignee_id)
    task = Task(
        kind=kind,
        title=title,
        status="open",
        due_at=due_at,
        remind_at=remind_at,
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


def _change(changes: dict[str, list[Any]], task: Task, key: str, value: Any) -> None:
    old = getattr(task, key)
    if old != value:
        changes[key] = [old, value]
        setattr(task, key, value)


async def update_task(s: AsyncSession, actor: Actor, task_id: int, changes: dict[str, Any]) -> Task:
    """Change the fields present in ``changes``; the audit entry keeps {field: [old, new]}."""
    task = await get_task(s, actor, task_id)
    diff: dict[str, list[Any]] = {}
    if changes.get("assignee_id") is not None and changes["assignee_id"] != task.assignee_id:
        await check_assignee(s, actor, changes["assignee_id"], "assignee_id")
        _change(diff, task, "assignee_id", changes["assignee_id"])
    if "kind" in changes and changes["kind"] is not None:
        _kind(changes["kind"])
    if "status" in changes and changes["status"] not in TASK_STATUSES:
        raise Invalid(f"status must be one of {', '.join(TASK_STATUSES)}", "status")
    if "title" in changes and not (changes["title"] or "").strip():
        raise Invalid("title must not be empty", "title")
    await _check_links(s, actor, changes)
    for key in ("kind", "title", "note", "result", "client_id", "lead_id", "deal_id"):
        if key in changes and (changes[key] is not None or key.endswith("_id")):
            _change(diff, task, key, changes[key])
    timing = {k: changes.get(k) for k in ("due_at", "due_local")}
    for k in ("remind_at", "remind_local", "remind_before"):
        timing[k] = changes.get(k)
    if any(v is not None for v in timing.values()) or "due_at" in changes:
        if timing["due_at"] is None and timing["due_local"] is None and "due_at" not in changes:
            timing["due_at"] = task.due_at  # only the reminder moves
        due_at, remind_at, given = await _times(s, timing, task.assignee_id)
        if not given and task.due_at is not None and task.remind_at is not None and due_at:
            remind_at = due_at - (task.due_at - task.remind_at)  # keep the reminder's lead
        _change(diff, task, "due_at", due_at)
        if task.remind_at != remind_at:
            _change(diff, task, "remind_at", remind_at)
            task.reminded_at = None
    if "status" in changes and changes["status"] != task.status:
        _change(diff, task, "status", changes["status"])
        task.closed_at = None if task.status == "open" else _now()
    await s.flush()
    await audit(s, actor, "update", "task", task.id, {"changes": diff})
    return task


async def reassign_task(s: AsyncSession, actor: Actor, task_id: int, assignee_id: int) -> Task:
    """Give a task to someone else: a manager only their own tasks and only to
    themselves, a supervisor within their team, an admin to anyone active."""
    task = await get_task(s, actor, task_id)
    if task.status != "open":
        raise Conflict(f"task {task.id} is already {task.status}", "status")
    await check_assignee(s, actor, assignee_id, "assignee_id")
    old = task.assignee_id
    if old != assignee_id:
        task.assignee_id = assignee_id
        await s.flush()
        await audit(
            s, actor, "reassign", "task", task.id, {"changes": {"assignee_id": [old, assignee_id]}}
        )
    return task


async def complete_task(
    s: AsyncSession,
    actor: Actor,
    task_id: int,
    note: str | None = None,
    *,
    result: str | None = None,
    next_task: dict[str, Any] | None = None,
) -> tuple[Task, Task | None]:
    """Mark an open task done, record its ``result`` (and an optional note); with
    ``next_task`` (create_task's data) plan the next one in the same transaction, linked
    to the same client, lead and deal unless it says otherwise."""
    task = await get_task(s, actor, task_id)
    if task.status != "open":
        raise Conflict(f"task {task.id} is already {task.status}", "status")
    task.status = "done"
    task.closed_at = _now()
    if result:
        task.result = result
    if note:
        task.note = f"{task.note}\n{note}".strip()
    await s.flush()
    details: dict[str, Any] = {"changes": {"status": ["open", "done"]}}
    if result:
        details["result"] = result
    if note:
        details["note"] = note
    following = None
    if next_task is not None:
        data = dict(next_task)
        for key in ("client_id", "lead_id", "deal_id"):
            if data.get(key) is None:
                data[key] = getattr(task, key)
        data.setdefault("assignee_id", task.assignee_id)
        if data.get("assignee_id") is None:
            data["assignee_id"] = task.assignee_id
        following = await create_task(s, actor, data)
        details["next_task_id"] = following.id
    await audit(s, actor, "done", "task", task.id, details)
    return task, following


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
    preset: str | None = None,
) -> Task:
    """Move an open task to ``until``, ``until_local`` (a wall-clock time in the assignee's
    time zone), ``minutes`` from now or a ``preset`` (15m, 1h, 3h, tomorrow or next_week
    at 10:00 the assignee's time); exactly one is given.  The reminder fires again."""
    if sum(v is not None for v in (until, minutes, until_local, preset)) != 1:
        raise Invalid("give one of until, until_local, minutes or preset", "until")
    task = await get_task(s, actor, task_id)
    if task.status != "open":
        raise Conflict(f"task {task.id} is already {task.status}", "status")
    now = _now()
    if until_local is not None:
        until = local_to_utc(until_local, await _tz_of(s, task.assignee_id))
    if preset is not None:
        until = preset_time(preset, now, await _tz_of(s, task.assignee_id))
    when = until if until is not None else now + timedelta(minutes=int(minutes or 0))
    if when <= now:
        where = "until_local" if until_local else ("until" if until else "minutes")
        raise Invalid("the new time must be in the future", where)
    old = task.due_at
    task.due_at = task.remind_at = when
    task.reminded_at = None
    await s.flush()
    await audit(
        s,
        actor,
        "snooze",
        "task",
        task.id,
        {"until": when, "preset": preset, "changes": {"due_at": [old, when]}},
    )
    return task
