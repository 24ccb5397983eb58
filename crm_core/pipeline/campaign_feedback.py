"""What comes back from a campaign message, matched to its recipient (step 5, ``log``).

An inbound email whose In-Reply-To / References (or, for a bounce, the original
Message-ID the report quotes) name a campaign message (``crmhub.c<campaign>.r<recipient>
...``, kept in ``campaign_recipients.message_id``):

- a bounce: the recipient is ``bounced`` and the address suppressed from later
  campaigns (``consent.suppress``, reason ``bounced``);
- an auto-reply (out of office): noted on the recipient, nothing else;
- a reply: the recipient is ``replied``; the reply itself is on the client's timeline in
  the campaign message's thread (the match step joined it), and the owner gets a task to
  answer it unless the pipeline opened a lead for it.

A bounce that quotes no Message-ID is matched by the bounced address to the latest
campaign message sent to it in the last week.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.events import Channel, Classification, Direction, InboundEvent
from crm_core.models import Campaign, CampaignRecipient, Client, Task, utcnow
from crm_core.services import consent

__all__ = ["CAMPAIGN_MSGID_PREFIX", "campaign_feedback"]

log = structlog.get_logger("crmhub.campaigns")
CAMPAIGN_MSGID_PREFIX = "crmhub.c"
BOUNCE_WINDOW = timedelta(days=7)
REPLY_TASK_DUE = timedelta(hours=2)


async def _recipient(s: AsyncSession, event: InboundEvent) -> CampaignRecipient | None:
    refs = [str(r).strip().strip("<>") for r in event.thread_refs if r]
    original = event.meta.get("bounced_message_id")
    if original:
        refs.append(str(original).strip().strip("<>"))
    ours = [r for r in refs if r.lower().startswith(CAMPAIGN_MSGID_PREFIX)]
    R = CampaignRecipient
    if ours:
        rec = await s.scalar(select(R).where(R.message_id.in_(ours)).order_by(R.id.desc()).limit(1))
        if rec is not None:
            return rec
    if event.classification == Classification.BOUNCE:
        addrs = [str(a).lower() for a in event.meta.get("bounced_addresses") or []]
        if addrs:
            return await s.scalar(
                select(R)
                .where(R.email.in_(addrs), R.sent_at >= utcnow() - BOUNCE_WINDOW)
                .order_by(R.sent_at.desc())
                .limit(1)
            )
    return None


async def campaign_feedback(
    s: AsyncSession, event: InboundEvent, out: Any, interaction_id: int | None
) -> None:
    """Mark the recipient a bounce, auto-reply or reply belongs to (if any)."""
    if event.channel != Channel.EMAIL or event.direction != Direction.INBOUND:
        return
    rec = await _recipient(s, event)
    if rec is None:
        return
    now = utcnow()
    if event.classification == Classification.BOUNCE:
        status = event.meta.get("bounce_status") or ""
        rec.status = "bounced"
        rec.error = f"bounced {status}".strip()[:1000]
        rec.updated_at = now
        await consent.suppress(s, rec.email, "bounced", "bounce", campaign_id=rec.campaign_id)
        log.info("campaign_bounce", campaign=rec.campaign_id, recipient=rec.id)
        return
    if event.classification == Classification.AUTO_REPLY:
        if rec.status in ("sent", "unknown"):
            rec.error = "an automatic reply came back (out of office?)"
            rec.updated_at = now
        return
    if event.classification not in (Classification.REGULAR, Classification.NEEDS_REVIEW):
        return
    first = rec.status != "replied"
    if rec.status in ("sent", "unknown", "replied", "pending"):
        rec.status = "replied"
        rec.updated_at = now
    if not first or getattr(out, "created_lead", False):
        return  # one task per recipient; a new lead already has its owner's task
    client = await s.get(Client, rec.client_id) if rec.client_id else None
    campaign = await s.get(Campaign, rec.campaign_id)
    name = campaign.name if campaign else str(rec.campaign_id)
    s.add(
        Task(
            kind="other",
            title=f"Ответить на ответ по рассылке «{name}»"[:500],
            due_at=now + REPLY_TASK_DUE,
            remind_at=now + REPLY_TASK_DUE,
            assignee_id=client.owner_id if client else None,
            client_id=rec.client_id,
            interaction_id=interaction_id,
            note=f"{rec.email} replied to campaign {name} (#{rec.campaign_id})",
        )
    )
    log.info("campaign_reply", campaign=rec.campaign_id, recipient=rec.id)
