"""The audit log as read by people: who changed what and when, old -> new.

Admins read every entry; a supervisor the entries made by their team (or themselves)
and those about their team's clients, leads, deals and tasks; managers read none.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.access import Actor, visible_clients, visible_deals, visible_leads, visible_tasks
from crm_core.models import AuditEntry, Client, Deal, Lead, Task, User
from crm_core.services.common import COUNT_CAP, Forbidden, count_capped, iso

__all__ = ["ENTITIES", "changes_of", "list_audit"]

ENTITIES = ("client", "lead", "deal", "task", "user", "sales_plan", "contact_person", "outbox")


def changes_of(action: str, details: dict[str, Any]) -> dict[str, list[Any]]:
    """``{field: [old, new]}`` of an entry: the recorded old and new values; for entries
    written before they were recorded (or a creation), ``[null, value]`` per detail;
    a stage move's ``from``/``to`` as ``stage``."""
    recorded = details.get("changes")
    if isinstance(recorded, dict):
        return {str(k): list(v) for k, v in recorded.items() if isinstance(v, list | tuple)}
    if action == "stage" and "to" in details:
        return {"stage": [details.get("from"), details.get("to")]}
    return {str(k): [None, v] for k, v in details.items() if k not in ("changes",)}


def _visible(actor: Actor) -> Any:
    if actor.is_admin:
        return None
    team = select(User.id).where(User.team == actor.team) if actor.team else None
    by = AuditEntry.user_id == actor.user_id
    if team is not None:
        by = or_(by, AuditEntry.user_id.in_(team))
    about = [
        and_(AuditEntry.entity == "client", AuditEntry.entity_id.in_(
            select(Client.id).where(visible_clients(actor)))),
        and_(AuditEntry.entity == "lead", AuditEntry.entity_id.in_(
            select(Lead.id).where(visible_leads(actor)))),
        and_(AuditEntry.entity == "deal", AuditEntry.entity_id.in_(
            select(Deal.id).where(visible_deals(actor)))),
        and_(AuditEntry.entity == "task", AuditEntry.entity_id.in_(
            select(Task.id).where(visible_tasks(actor)))),
    ]  # fmt: skip
    return or_(by, *about)


async def list_audit(
    s: AsyncSession,
    actor: Actor,
    *,
    entity: str | None = None,
    entity_id: int | None = None,
    user_id: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> dict[str, Any]:
    """Entries newest first, filtered by entity (and id), author and time."""
    if not (actor.is_admin or actor.is_supervisor):
        raise Forbidden("only admins and supervisors may do this")
    q = select(AuditEntry)
    cond = _visible(actor)
    if cond is not None:
        q = q.where(cond)
    if entity:
        q = q.where(AuditEntry.entity == entity)
    if entity_id is not None:
        q = q.where(AuditEntry.entity_id == entity_id)
    if user_id is not None:
        q = q.where(AuditEntry.user_id == user_id)
    if start is not None:
        q = q.where(AuditEntry.at >= start)
    if end is not None:
        q = q.where(AuditEntry.at < end)
    total = await count_capped(s, q, COUNT_CAP)
    rows = await s.scalars(
        q.order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit).offset(offset)
    )
    items = [
        {
            "id": e.id,
            "at": iso(e.at),
            "user_id": e.user_id,
            "action": e.action,
            "entity": e.entity,
            "entity_id": e.entity_id,
            "changes": changes_of(e.action, e.details or {}),
        }
        for e in rows
    ]
    return {
        "items": items,
        "total": total,
        "total_capped": total >= COUNT_CAP,
        "limit": limit,
        "offset": offset,
    }
