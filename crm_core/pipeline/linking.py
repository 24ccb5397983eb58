"""Linking identities: when one event carries contact points of two parties (a Telegram
chat of a lead and the phone of a known client), the chat joins the client.

Called by ``process_event`` right after ``match``, in the event's transaction:

* the event brings a phone or email that belongs to a client (directly or through a
  contact person) while its messenger point (``telegram:``/``vk:``) belongs to a lead
  without a client, or to nobody yet: the messenger point moves to the client; the
  lead's interactions (the earlier chat history) and, in a private chat, the chat's
  unowned entries get the client's id, so they are on the client's timeline; the lead
  (unless already the client's) is closed as ``converted`` into that client (it was a
  known client all along), its open tasks move to the client and to the client's
  owner; ``m`` then names the client and the client's own open lead, if any.
* a messenger point that belongs to another client is never moved (two clients sharing
  a phone is a case for a person): nothing changes.
* the reverse (a phone or email given in a chat that belongs to no one becomes the
  chat's lead's or client's contact point) is done by the pipeline's ``_ensure_points``.

An inbound message clears ``unreachable`` on the sender's messenger point: a user who
writes to the bot or community has unblocked it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.events import Channel, Direction, EventKind, InboundEvent
from crm_core.models import Client, ContactPerson, ContactPoint, Interaction, Lead, Task, utcnow

if TYPE_CHECKING:
    from crm_core.pipeline.match import Match

__all__ = ["MESSENGER_KINDS", "link_identities"]

MESSENGER_KINDS = ("telegram", "vk")
_LINK_KINDS = ("phone", "email")
_PRIVATE_CHATS = ("private", "user")
_OPEN = ("new", "in_progress")


async def _client_of(s: AsyncSession, cp: ContactPoint) -> int | None:
    if cp.client_id is not None:
        return cp.client_id
    if cp.contact_person_id is not None:
        person = await s.get(ContactPerson, cp.contact_person_id)
        return person.client_id if person else None
    return None


async def _owner(s: AsyncSession, cp: ContactPoint) -> int | None:
    """The client a messenger point belongs to, directly or through its lead."""
    owner = await _client_of(s, cp)
    if owner is None and cp.lead_id is not None:
        lead = await s.get(Lead, cp.lead_id)
        owner = lead.client_id if lead else None
    return owner


async def _linking_client(s: AsyncSession, event: InboundEvent, m: Match) -> Client | None:
    """The client a phone or email of the event belongs to (the first in event order)."""
    for ident in event.identities:
        if not ident.startswith(_LINK_KINDS):
            continue
        cp = m.points.get(ident)
        if cp is None:
            continue
        client_id = await _client_of(s, cp)
        if client_id is not None:
            return await s.get(Client, client_id)
    return None


async def link_identities(s: AsyncSession, event: InboundEvent, m: Match) -> None:
    """Called by ``process_event`` after ``match``; may change ``m`` in place."""
    if event.channel not in (Channel.TELEGRAM, Channel.VK):
        return
    chat_points = [
        (ident, m.points.get(ident))
        for ident in event.identities
        if ident.split(":", 1)[0] in MESSENGER_KINDS
    ]
    if event.direction == Direction.INBOUND and event.kind in (
        EventKind.MESSAGE_RECEIVED,
        EventKind.CALLBACK_QUERY,
    ):
        for _, cp in chat_points:
            if cp is not None and cp.unreachable:
                cp.unreachable = False
                cp.unreachable_reason = None
    if not chat_points:
        return
    client = await _linking_client(s, event, m)
    if client is None:
        return
    owners = [await _owner(s, cp) for _, cp in chat_points if cp is not None]
    if any(owner not in (None, client.id) for owner in owners):
        return  # the chat is another client's: never moved
    moved_leads: set[int] = set()
    moved = False
    for _, cp in chat_points:
        if cp is None or cp.client_id is not None or cp.contact_person_id is not None:
            continue  # new (the pipeline creates it for the client) or already the client's
        if cp.lead_id is not None:
            moved_leads.add(cp.lead_id)
        cp.client_id = client.id
        cp.lead_id = None
        moved = True
    if not moved:
        return
    for lead_id in moved_leads:
        await _join_lead(s, lead_id, client)
    await _join_chat_history(s, event, m, client, moved_leads)
    m.client = client
    if m.how in ("none", "lead"):
        m.how = "contact_point"
    if m.lead is None or m.lead.id in moved_leads or m.lead.client_id not in (None, client.id):
        m.lead = await s.scalar(
            select(Lead)
            .where(Lead.client_id == client.id, Lead.status.in_(_OPEN))
            .order_by(Lead.id.desc())
            .limit(1)
        )


async def _join_lead(s: AsyncSession, lead_id: int, client: Client) -> None:
    """The lead's history goes to the client; the lead closes as converted into it."""
    lead = await s.get(Lead, lead_id)
    if lead is None or lead.client_id not in (None, client.id):
        return
    await s.execute(
        update(Interaction)
        .where(Interaction.lead_id == lead.id, Interaction.client_id.is_(None))
        .values(client_id=client.id)
    )
    task_values: dict[str, object] = {"client_id": client.id}
    if client.owner_id is not None:
        task_values["assignee_id"] = client.owner_id
    await s.execute(
        update(Task)
        .where(Task.lead_id == lead.id, Task.status == "open", Task.client_id.is_(None))
        .values(**task_values)
    )
    if lead.client_id is not None:
        return  # already this client's request: it stays open
    lead.client_id = client.id
    if lead.status in _OPEN:
        lead.status = "converted"
        lead.closed_at = utcnow()
        tags = [t for t in (lead.tags or []) if t != "linked_to_client"]
        lead.tags = [*tags, "linked_to_client"]
        note = f"linked to existing client #{client.id} by a phone or email given in the chat"
        lead.assign_reason = f"{lead.assign_reason}; {note}" if lead.assign_reason else note


async def _join_chat_history(
    s: AsyncSession, event: InboundEvent, m: Match, client: Client, leads: set[int]
) -> None:
    """Entries of this private chat that belong to nobody (e.g. replies sent from VK's
    own interface before anyone knew the user) join the client's timeline too."""
    if m.thread_id is None or str(event.meta.get("chat_type")) not in _PRIVATE_CHATS:
        return
    conds = [Interaction.lead_id.is_(None)]
    if leads:
        conds.append(Interaction.lead_id.in_(leads))
    await s.execute(
        update(Interaction)
        .where(
            Interaction.thread_id == m.thread_id,
            Interaction.client_id.is_(None),
            or_(*conds),
        )
        .values(client_id=client.id)
    )
