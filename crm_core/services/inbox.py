"""Operator tools over the inbox: list events, replay one."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from crm_core.db import Database
from crm_core.hub import Hub
from crm_core.models import InboxEvent
from crm_core.pipeline.process import PipelineConfig

__all__ = ["list_inbox", "replay_event"]


def _row(r: InboxEvent) -> dict[str, Any]:
    return {
        "id": r.id,
        "channel": r.channel,
        "kind": r.kind,
        "external_id": r.external_id,
        "source": r.source,
        "status": r.status,
        "attempts": r.attempts,
        "last_error": r.last_error,
        "received_at": r.received_at.isoformat(),
        "next_attempt_at": r.next_attempt_at.isoformat() if r.next_attempt_at else None,
        "lead_id": r.lead_id,
        "client_id": r.client_id,
        "interaction_id": r.interaction_id,
    }


async def list_inbox(
    db: Database, *, failed: bool = False, limit: int = 50
) -> list[dict[str, Any]]:
    q = select(InboxEvent).order_by(InboxEvent.id.desc()).limit(max(1, min(limit, 1000)))
    if failed:
        q = q.where(InboxEvent.status == "failed")
    async with db.sessions() as s:
        return [_row(r) for r in await s.scalars(q)]


async def replay_event(db: Database, event_id: int, **cfg: Any) -> dict[str, Any]:
    """Process one event again now (a failed one, typically after a fix)."""
    async with db.sessions() as s:
        row = await s.get(InboxEvent, event_id)
        if row is None:
            raise LookupError(f"inbox event {event_id} does not exist")
        if row.status == "processed":
            return {**_row(row), "note": "already processed; nothing to do"}
    from crm_core.pipeline.assign import RoundRobinAssigner

    hub = Hub(db, cfg=PipelineConfig(**cfg), assigner=RoundRobinAssigner(postgres=db.is_postgres))
    await hub.processor.replay(event_id)
    async with db.sessions() as s:
        row = await s.get(InboxEvent, event_id)
        assert row is not None
        return _row(row)
