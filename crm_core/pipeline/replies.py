"""Replies: our own messenger replies coming back as events, and the first reply to a
lead closing its "first reply" SLA task.

VK sends ``message_reply`` for every message the community sends, those sent by the
outbox through ``messages.send`` included.  The outbox already logged that reply
(message key ``"{group_id}:{peer_id}:{message_id}"``); the event must not log it twice.
The logged entry takes the event's key (``"{group_id}:{peer_id}:{conversation_message_id}"``)
so a later ``message_edit`` finds it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.events import Channel, EventKind, InboundEvent
from crm_core.models import Interaction, Task

__all__ = ["FIRST_REPLY_KIND", "close_first_reply", "logged_reply"]

FIRST_REPLY_KIND = "first_reply"  # the task a routing rule opens with an SLA


async def close_first_reply(
    s: AsyncSession,
    *,
    lead_id: int | None,
    client_id: int | None,
    at: datetime,
    how: str,
) -> int:
    """The client got an answer (a reply sent, an outbound or answered call): the open
    "first reply" SLA tasks of that lead or client are done, so they neither warn nor
    escalate.  Returns how many were closed."""
    scopes = []
    if lead_id is not None:
        scopes.append(Task.lead_id == lead_id)
    if client_id is not None:
        scopes.append(Task.client_id == client_id)
    if not scopes:
        return 0
    res = await s.execute(
        update(Task)
        .where(
            or_(*scopes),
            Task.kind == FIRST_REPLY_KIND,
            Task.status == "open",
            Task.sla_due_at.is_not(None),
        )
        .values(status="done", closed_at=at, note=f"closed by the first reply ({how})")
        .execution_options(synchronize_session=False)
    )
    return int(getattr(res, "rowcount", 0) or 0)


async def logged_reply(s: AsyncSession, event: InboundEvent) -> Interaction | None:
    """The outbound interaction the outbox logged for this ``message_reply``, if any."""
    if event.channel != Channel.VK or event.kind != EventKind.MESSAGE_SENT:
        return None
    meta = event.meta
    message_id, peer_id = meta.get("message_id"), meta.get("peer_id")
    if not message_id or peer_id is None:
        return None
    key = f"{event.source or ''}:{peer_id}:{message_id}"
    inter = await s.scalar(
        select(Interaction).where(
            Interaction.channel == Channel.VK.value,
            Interaction.message_key == key,
            Interaction.outbox_id.is_not(None),
        )
    )
    if inter is None:
        return None
    event_key = meta.get("message_key")
    if event_key:
        new_key = f"{event.source or ''}:{event_key}"
        taken = await s.scalar(
            select(Interaction.id).where(
                Interaction.channel == Channel.VK.value, Interaction.message_key == new_key
            )
        )
        if taken is None:
            inter.message_key = new_key
    inter.meta = {
        **(inter.meta or {}),
        "message_id": message_id,
        "conversation_message_id": meta.get("conversation_message_id"),
        "peer_id": peer_id,
        "group_id": meta.get("group_id"),
    }
    return inter
