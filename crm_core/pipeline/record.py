"""Step 5 helpers (attachments on disk) and the live events step 6 sends after commit."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.events import EventKind, InboundEvent
from crm_core.files import write_durable
from crm_core.models import AttachmentRow, Deal, Interaction, Lead, User

if TYPE_CHECKING:
    from crm_core.pipeline.match import Match
    from crm_core.pipeline.process import Outcome

__all__ = ["BATCH_ATTACHMENTS", "caller_card", "live_events_for", "record_attachments"]

# ``session.info`` key of a list: when set (a batch transaction), attachment rows are
# collected there as dicts and the batch inserts them all in one statement.
BATCH_ATTACHMENTS = "crmhub.batch_attachments"

LiveTuple = tuple[str, dict[str, Any], list[int] | None, int | None]


def _store(root: Path, content: bytes, digest: str) -> str:
    path = root / digest[:2] / digest
    write_durable(path, content)
    return str(path)


async def record_attachments(
    s: AsyncSession, inter: Interaction, event: InboundEvent, attachments_dir: str
) -> None:
    """Store attachment bytes by SHA-256 (never served inline) and their metadata."""
    root = Path(attachments_dir)
    for att in event.attachments:
        path = None
        digest = att.sha256
        if att.content is not None:
            digest = digest or hashlib.sha256(att.content).hexdigest()
            path = await asyncio.to_thread(_store, root, att.content, digest)
        elif digest and (root / digest[:2] / digest).exists():
            path = str(root / digest[:2] / digest)  # stored before the inbox row (Hub)
        values = {
            "interaction_id": inter.id,
            "filename": att.filename[:500] or "attachment",
            "content_type": att.content_type[:200],
            "size": att.size,
            "sha256": digest,
            "path": path,
            "url": att.url,
        }
        collected = s.info.get(BATCH_ATTACHMENTS)
        if collected is not None:
            collected.append(values)
        else:
            s.add(AttachmentRow(**values))


async def _users_by_extension(s: AsyncSession, exts: list[str]) -> list[int]:
    if not exts:
        return []
    return list(await s.scalars(select(User.id).where(User.extension.in_(exts))))


async def caller_card(s: AsyncSession, event: InboundEvent, m: Match, lead: Lead | None) -> dict:
    """What an operator sees while the phone rings."""
    card: dict[str, Any] = {
        "linkedid": event.meta.get("linkedid"),
        "caller": event.phones[0] if event.phones else event.meta.get("caller_raw"),
        "called_number": event.meta.get("called_number"),
        "new_caller": m.client is None and (lead is None or lead.first_event_id is not None),
        "client": None,
        "lead": None,
        "open_deals": [],
        "last_interactions": [],
    }
    if m.client is not None:
        c = m.client
        card["new_caller"] = False
        card["client"] = {"id": c.id, "name": c.name, "kind": c.kind, "status": c.status}
        card["owner_id"] = c.owner_id
        deals = await s.scalars(
            select(Deal)
            .where(Deal.client_id == c.id, Deal.closed_at.is_(None))
            .order_by(Deal.id.desc())
            .limit(5)
        )
        card["open_deals"] = [
            {"id": d.id, "title": d.title, "stage": d.stage, "amount": str(d.amount or "")}
            for d in deals
        ]
        scope = Interaction.client_id == c.id
    elif lead is not None:
        scope = Interaction.lead_id == lead.id
    else:
        return card
    if lead is not None:
        card["lead"] = {"id": lead.id, "status": lead.status, "owner_id": lead.owner_id}
        card.setdefault("owner_id", lead.owner_id)
    rows = await s.scalars(
        select(Interaction).where(scope).order_by(Interaction.occurred_at.desc()).limit(5)
    )
    card["last_interactions"] = [
        {
            "id": i.id,
            "channel": i.channel,
            "direction": i.direction,
            "kind": i.kind,
            "outcome": i.outcome,
            "subject": i.subject,
            "occurred_at": i.occurred_at.isoformat(),
        }
        for i in rows
    ]
    return card


async def live_events_for(
    s: AsyncSession, event: InboundEvent, m: Match, lead: Lead | None, out: Outcome
) -> list[LiveTuple]:
    live: list[LiveTuple] = []
    owner = (m.client.owner_id if m.client else None) or (lead.owner_id if lead else None)
    if event.kind == EventKind.CALL_STARTED:
        rung = await _users_by_extension(s, list(event.meta.get("extensions_rung") or []))
        card = await caller_card(s, event, m, lead)
        live.append(("caller_card", card, rung, owner))
    elif event.kind in (EventKind.CALL_ANSWERED, EventKind.CALL_MISSED, EventKind.CALL_ENDED):
        rung = await _users_by_extension(s, list(event.meta.get("extensions_rung") or []))
        state = {
            "linkedid": event.meta.get("linkedid"),
            "state": event.kind.value,
            "outcome": event.meta.get("outcome"),
            "answered_by": event.meta.get("answered_by"),
            "client_id": out.client_id,
            "lead_id": out.lead_id,
            "interaction_id": out.interaction_id,
        }
        live.append(("call_state", state, rung, owner))
    if out.created_lead and lead is not None:
        payload = {
            "lead_id": lead.id,
            "title": lead.title,
            "source": lead.source,
            "owner_id": lead.owner_id,
            "queue": lead.queue,
            "reason": lead.assign_reason,
        }
        live.append(("new_lead", payload, [lead.owner_id] if lead.owner_id else None, owner))
    elif event.kind in (EventKind.MESSAGE_RECEIVED, EventKind.EMAIL_RECEIVED) and owner:
        payload = {
            "interaction_id": out.interaction_id,
            "client_id": out.client_id,
            "lead_id": out.lead_id,
            "channel": event.channel.value,
            "preview": (event.text or "")[:200],
        }
        live.append(("new_message", payload, [owner], owner))
    return live
