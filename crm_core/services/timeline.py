"""Timelines, newest first: a client's (its own, its leads' and deals' interactions) and a
lead's (its own, and its client's once it has one)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.access import Actor
from crm_core.models import Deal, Interaction, Lead
from crm_core.services.clients import get_client
from crm_core.services.common import ListFilter, Page, iso, paginate
from crm_core.services.leads import get_lead

__all__ = ["client_timeline", "interaction_dicts", "lead_timeline", "recording_href"]


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
        }
        for i in rows
    ]


async def client_timeline(s: AsyncSession, actor: Actor, client_id: int, flt: ListFilter) -> Page:
    """The client must be visible to ``actor``; then its whole history is."""
    client = await get_client(s, actor, client_id)
    return await _page(s, select(Interaction).where(_of_client(client.id)), flt)


def _of_client(client_id: int) -> ColumnElement[bool]:
    return or_(
        Interaction.client_id == client_id,
        Interaction.lead_id.in_(select(Lead.id).where(Lead.client_id == client_id)),
        Interaction.deal_id.in_(select(Deal.id).where(Deal.client_id == client_id)),
    )


async def lead_timeline(s: AsyncSession, actor: Actor, lead_id: int, flt: ListFilter) -> Page:
    """The lead must be visible to ``actor``: its conversation (calls, mail, chats, the
    form), and its client's history once it has a client."""
    lead = await get_lead(s, actor, lead_id)
    scope: ColumnElement[bool] = Interaction.lead_id == lead.id
    if lead.client_id is not None:
        scope = or_(scope, _of_client(lead.client_id))
    return await _page(s, select(Interaction).where(scope), flt)


async def _page(s: AsyncSession, query: Select[Interaction], flt: ListFilter) -> Page:
    if flt.extra.get("channel"):
        query = query.where(Interaction.channel == flt.extra["channel"])
    if flt.created_from is not None:
        query = query.where(Interaction.occurred_at >= flt.created_from)
    if flt.created_to is not None:
        query = query.where(Interaction.occurred_at < flt.created_to)
    query = query.order_by(Interaction.occurred_at.desc(), Interaction.id.desc())
    rows, total = await paginate(s, query, flt)
    return Page(interaction_dicts(rows), total, flt.limit, flt.offset)
