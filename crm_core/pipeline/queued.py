"""Queued leads: nobody was available, so the lead waits with ``owner_id = NULL`` and
``queue = <team>``.  :func:`assign_queued` retries them, oldest first, through the same
assigner as new leads (working hours start, capacity frees up, a user is activated).

On PostgreSQL the queued rows are read ``FOR NO KEY UPDATE SKIP LOCKED`` (which does not
block inserts that reference the lead), so two hub processes never assign one lead twice.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.events import Channel, EventKind, InboundEvent, NormalizeError
from crm_core.models import Client, InboxEvent, Lead, Task, utcnow
from crm_core.pipeline.assign import Assigner
from crm_core.reminders import Notice

__all__ = ["assign_queued", "event_of_lead", "queued_count"]

log = structlog.get_logger("crmhub.routing")


async def queued_count(s: AsyncSession) -> int:
    from sqlalchemy import func

    n = await s.scalar(
        select(func.count())
        .select_from(Lead)
        .where(Lead.owner_id.is_(None), Lead.queue.is_not(None), Lead.status == "new")
    )
    return int(n or 0)


async def event_of_lead(s: AsyncSession, lead: Lead) -> InboundEvent:
    """The event that opened the lead (from the inbox), or a stand-in built from the lead."""
    if lead.first_event_id is not None:
        payload = await s.scalar(
            select(InboxEvent.payload).where(InboxEvent.id == lead.first_event_id)
        )
        if payload:
            try:
                return InboundEvent.from_json(payload)
            except (NormalizeError, ValueError, TypeError):
                log.warning("queued_lead_bad_event", lead_id=lead.id)
    try:
        channel = Channel(lead.source)
    except ValueError:
        channel = Channel.WEBFORM
    created = lead.created_at or utcnow()
    return InboundEvent(
        channel=channel,
        kind=EventKind.FORM_SUBMITTED if channel == Channel.WEBFORM else EventKind.MESSAGE_RECEIVED,
        external_id=f"lead:{lead.id}",
        occurred_at=created if created.tzinfo else created.replace(tzinfo=UTC),
        display_name=lead.name,
        meta={"utm": dict(lead.utm or {})},
        source=lead.source_ref,
    )


async def assign_queued(
    s: AsyncSession, assigner: Assigner, *, postgres: bool, limit: int = 200
) -> list[Notice]:
    """Try to assign up to ``limit`` queued leads, oldest first; returns ``lead_assigned``
    notices for the new owners (publish after commit)."""
    q = (
        select(Lead)
        .where(Lead.owner_id.is_(None), Lead.queue.is_not(None), Lead.status == "new")
        .order_by(Lead.created_at, Lead.id)
        .limit(limit)
    )
    if postgres:
        q = q.with_for_update(key_share=True, skip_locked=True)
    leads = list(await s.scalars(q))
    out: list[Notice] = []
    for lead in leads:
        event = await event_of_lead(s, lead)
        client = await s.get(Client, lead.client_id) if lead.client_id else None
        a = await assigner.assign(s, event, client)
        if a.user_id is None:
            continue
        queue = lead.queue
        lead.owner_id = a.user_id
        lead.queue = None
        lead.rule_id = a.rule_id
        lead.assign_reason = a.reason
        await s.execute(
            update(Task)
            .where(Task.lead_id == lead.id, Task.status == "open", Task.assignee_id.is_(None))
            .values(assignee_id=a.user_id)
            .execution_options(synchronize_session=False)
        )
        payload: dict[str, Any] = {
            "lead_id": lead.id,
            "title": lead.title,
            "source": lead.source,
            "owner_id": a.user_id,
            "from_queue": queue,
            "rule_id": a.rule_id,
            "reason": a.reason,
        }
        out.append(Notice("lead_assigned", payload, [a.user_id], a.user_id))
    if leads:
        await s.flush()
    return out
