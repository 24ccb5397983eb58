"""Timelines, newest first: a client's (its own, its leads' and deals' interactions) and a
lead's (its own, and its client's once it has one)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, select, union
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.access import Actor
from crm_core.models import Deal, Interaction, Lead
from crm_core.services.clients import get_client
from crm_core.services.common import Invalid, ListFilter, Page, count_capped, iso
from crm_core.services.deals import get_deal
from crm_core.services.leads import get_lead

__all__ = [
    "TIMELINE_COUNT_CAP",
    "client_timeline",
    "deal_timeline",
    "interaction_dicts",
    "lead_timeline",
    "recording_href",
]

# Past this many entries a timeline's total is reported as the cap ("10,000+").
TIMELINE_COUNT_CAP = 10_000


def recording_href(i: Interaction) -> str | None:
    """``GET /api/v1/interactions/{id}/recording`` when the call has a recording."""
    if i.channel != "call" or not (i.recording_file or i.recording_url):
        return None
    return f"/api/v1/interactions/{i.id}/recording"


def interaction_dicts(rows: list[Interaction]) -> list[dict[str, Any]]:
    return [
        {
            "id": i.id,
            "occurred_at": iso(i.occurred_at),
            "channel": i.channel,
            "direction": i.direction,
            "kind": i.kind,
            "outcome": i.outcome,
            "classification": i.classification,
            "duration_s": i.duration_s,
            "recording_url": i.recording_url,
            "recording_href": recording_href(i),
            "subject": i.subject,
            "body": i.body,
            "html": i.html,
            "thread_id": i.thread_id,
            "user_id": i.user_id,
            "client_id": i.client_id,
            "lead_id": i.lead_id,
            "deal_id": i.deal_id,
            "meta": i.meta or {},
            "contact_person": (i.meta or {}).get("contact_person"),
        }
        for i in rows
    ]


async def client_timeline(s: AsyncSession, actor: Actor, client_id: int, flt: ListFilter) -> Page:
    """The client must be visible to ``actor``; then its whole history is."""
    client = await get_client(s, actor, client_id)
    return await _page(s, _of_client(client.id), flt)


def _of_client(client_id: int) -> list[Select[Any]]:
    """Ids of a client's interactions: its own, its leads' and its deals', as three
    lookups on the ``client_id``, ``lead_id`` and ``deal_id`` indexes (an OR of the
    three makes the planners scan the whole table)."""
    return [
        select(Interaction.id).where(Interaction.client_id == client_id),
        select(Interaction.id)
        .join(Lead, Lead.id == Interaction.lead_id)
        .where(Lead.client_id == client_id),
        select(Interaction.id)
        .join(Deal, Deal.id == Interaction.deal_id)
        .where(Deal.client_id == client_id),
    ]


async def lead_timeline(s: AsyncSession, actor: Actor, lead_id: int, flt: ListFilter) -> Page:
    """The lead must be visible to ``actor``: its conversation (calls, mail, chats, the
    form), and its client's history once it has a client."""
    lead = await get_lead(s, actor, lead_id)
    parts = [select(Interaction.id).where(Interaction.lead_id == lead.id)]
    if lead.client_id is not None:
        parts += _of_client(lead.client_id)
    return await _page(s, parts, flt)


async def deal_timeline(s: AsyncSession, actor: Actor, deal_id: int, flt: ListFilter) -> Page:
    """The deal must be visible to ``actor``: its own calls, mail and chats (an email sent
    from the deal carries its ``[#D-id]`` token, so the client's reply joins it), and
    the conversation of the lead it came from."""
    deal = await get_deal(s, actor, deal_id)
    parts = [select(Interaction.id).where(Interaction.deal_id == deal.id)]
    if deal.lead_id is not None:
        parts.append(select(Interaction.id).where(Interaction.lead_id == deal.lead_id))
    return await _page(s, parts, flt)


async def _page(s: AsyncSession, parts: list[Select[Any]], flt: ListFilter) -> Page:
    """One page, newest first, of the interactions whose ids ``parts`` select (UNIONed);
    the total is counted over the ids and capped at :data:`TIMELINE_COUNT_CAP`."""
    ids = union(*parts).subquery("ids")
    query = select(Interaction).where(Interaction.id.in_(select(ids.c.id)))
    if flt.extra.get("channel"):
        query = query.where(Interaction.channel == flt.extra["channel"])
    if flt.created_from is not None:
        query = query.where(Interaction.occurred_at >= flt.created_from)
    if flt.created_to is not None:
        query = query.where(Interaction.occurred_at < flt.created_to)
    total = await count_capped(s, query, TIMELINE_COUNT_CAP)
    page_q = query.order_by(Interaction.occurred_at.desc(), Interaction.id.desc())
    cursor = _cursor(flt)
    if cursor is not None:
        at, ident = cursor
        page_q = page_q.where(
            (Interaction.occurred_at < at)
            | ((Interaction.occurred_at == at) & (Interaction.id < ident))
        )
    rows = list(await s.scalars(page_q.limit(flt.limit).offset(flt.offset)))
    nxt = f"{rows[-1].occurred_at.isoformat()}|{rows[-1].id}" if len(rows) == flt.limit else None
    return Page(
        interaction_dicts(rows),
        total,
        flt.limit,
        flt.offset,
        nxt,
        total >= TIMELINE_COUNT_CAP,
    )


def _cursor(flt: ListFilter) -> tuple[datetime, int] | None:
    """``after`` = ``"<occurred_at ISO>|<id>"`` of the last entry of the previous page."""
    if flt.after is None:
        return None
    at, _, ident = flt.after.rpartition("|")
    try:
        return datetime.fromisoformat(at), int(ident)
    except ValueError:
        raise Invalid("after must be the next_after of a previous page", "after") from None
