"""Leads: list, read, change, create by hand, convert into a client and a deal, reject.

Statuses: ``new`` -> ``in_progress`` -> ``converted`` | ``rejected``.  The last two are
reached only through :func:`convert_lead` and :func:`reject_lead`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.access import Actor, visible_leads
from crm_core.models import Client, ContactPoint, Interaction, Lead, Task
from crm_core.models import utcnow as _now
from crm_core.services.clients import client_dicts, create_client, get_client
from crm_core.services.common import (
    Conflict,
    Invalid,
    ListFilter,
    NotFound,
    Page,
    add_points,
    audit,
    check_assignee,
    clients_with_identity,
    identity_value,
    iso,
    page_by_id,
    points_of,
)
from crm_core.services.deals import deal_dicts, new_deal
from crm_core.services.segments import assign_entering

__all__ = [
    "LEAD_STATUSES",
    "OPEN_LEAD_STATUSES",
    "convert_lead",
    "create_lead",
    "get_lead",
    "lead_dicts",
    "list_leads",
    "reject_lead",
    "split_reason",
    "update_lead",
]

LEAD_STATUSES = ("new", "in_progress", "converted", "rejected")
OPEN_LEAD_STATUSES = ("new", "in_progress")


def split_reason(reason: str | None) -> tuple[str | None, str | None]:
    """``"english / русский"`` (as the rules assigner stores it) -> (english, russian).

    The separator is the first `` / `` followed by a Cyrillic letter, so a slash inside
    the English text is not mistaken for it; a reason without one is English only."""
    if not reason:
        return reason, None
    start = 0
    while (i := reason.find(" / ", start)) >= 0:
        nxt = reason[i + 3 : i + 4]
        if nxt and ("\u0400" <= nxt <= "\u04ff"):
            return reason[:i], reason[i + 3 :]
        start = i + 3
    return reason, None


async def lead_dicts(s: AsyncSession, leads: list[Lead]) -> list[dict[str, Any]]:
    own = await points_of(s, ContactPoint.lead_id, [x.id for x in leads])
    client_ids = sorted({x.client_id for x in leads if x.client_id is not None})
    of_client = await points_of(s, ContactPoint.client_id, client_ids)
    out = []
    for x in leads:
        pts = own[x.id]
        phones, emails = list(pts["phones"]), list(pts["emails"])
        if x.client_id is not None:
            phones += [p for p in of_client[x.client_id]["phones"] if p not in phones]
            emails += [e for e in of_client[x.client_id]["emails"] if e not in emails]
        reason_en, reason_ru = split_reason(x.assign_reason)
        out.append(
            {
                "id": x.id,
                "status": x.status,
                "owner_id": x.owner_id,
                "source": x.source,
                "source_ref": x.source_ref,
                "title": x.title,
                "name": x.name,
                "company": x.company,
                "client_id": x.client_id,
                "deal_id": x.deal_id,
                "phones": phones,
                "emails": emails,
                "utm": x.utm or {},
                "needs_review": x.needs_review,
                "rule_id": x.rule_id,
                "assign_reason": reason_en,
                "assign_reason_ru": reason_ru,
                "queue": x.queue,
                "priority": x.priority,
                "tags": x.tags or [],
                "loss_reason": x.loss_reason,
                "created_at": iso(x.created_at),
                "closed_at": iso(x.closed_at),
            }
        )
    return out


async def get_lead(s: AsyncSession, actor: Actor, lead_id: int, *, lock: bool = False) -> Lead:
    query = select(Lead).where(Lead.id == lead_id, visible_leads(actor))
    if lock:
        query = query.with_for_update()
    lead = await s.scalar(query)
    if lead is None:
        raise NotFound(f"lead {lead_id} not found")
    return lead


def _open(lead: Lead) -> None:
    if lead.status not in OPEN_LEAD_STATUSES:
        raise Conflict(f"lead {lead.id} is already {lead.status}", "status")


async def list_leads(s: AsyncSession, actor: Actor, flt: ListFilter) -> Page:
    query = select(Lead).where(visible_leads(actor))
    for kind, raw in (("phone", flt.phone), ("email", flt.email)):
        if raw:
            value, _ = identity_value(kind, raw, kind)
            by_point = select(ContactPoint.lead_id).where(
                ContactPoint.kind == kind, ContactPoint.value == value
            )
            query = query.where(
                or_(Lead.id.in_(by_point), Lead.client_id.in_(clients_with_identity(kind, value)))
            )
    if flt.owner_id is not None:
        query = query.where(Lead.owner_id == flt.owner_id)
    if flt.status:
        query = query.where(Lead.status == flt.status)
    if flt.created_from is not None:
        query = query.where(Lead.created_at >= flt.created_from)
    if flt.created_to is not None:
        query = query.where(Lead.created_at < flt.created_to)
    if flt.q:
        pattern = f"%{flt.q.strip()}%"
        query = query.where(
            or_(Lead.name.ilike(pattern), Lead.company.ilike(pattern), Lead.title.ilike(pattern))
        )
    for key in ("source", "queue"):
        if flt.extra.get(key):
            query = query.where(getattr(Lead, key) == flt.extra[key])
    if flt.extra.get("needs_review") is not None:
        query = query.where(Lead.needs_review.is_(bool(flt.extra["needs_review"])))
    return await page_by_id(s, query, flt, Lead.id, lead_dicts)


async def create_lead(s: AsyncSession, actor: Actor, data: dict[str, Any]) -> Lead:
    """A lead entered by hand: name, company, phones, emails, owner_id, source, utm, ..."""
    data = {k: v for k, v in data.items() if v is not None}
    owner_id = data.get("owner_id", actor.user_id)
    await check_assignee(s, actor, owner_id, "owner_id")
    client_id = data.get("client_id")
    if client_id is not None:
        await get_client(s, actor, client_id)  # hidden clients answer "not found"
    name = (data.get("name") or "").strip() or None
    company = (data.get("company") or "").strip() or None
    if not (name or company or data.get("phones") or data.get("emails")):
        raise Invalid("give at least a name, a company, a phone or an email", "name")
    lead = Lead(
        status="new",
        source=data.get("source") or "manual",
        source_ref=data.get("source_ref"),
        title=(data.get("title") or f"Заявка: {name or company or ''}").strip(": ")[:300],
        name=name,
        company=company,
        client_id=client_id,
        owner_id=owner_id,
        utm=dict(data.get("utm") or {}),
        priority=data.get("priority"),
        tags=list(data.get("tags") or []),
        assign_reason=f"created by user {actor.user_id}",
    )
    s.add(lead)
    await s.flush()
    await add_points(
        s, actor, phones=data.get("phones"), emails=data.get("emails"), lead_id=lead.id
    )
    await audit(s, actor, "create", "lead", lead.id, data)
    return lead


async def update_lead(s: AsyncSession, actor: Actor, lead_id: int, changes: dict[str, Any]) -> Lead:
    lead = await get_lead(s, actor, lead_id)
    if "status" in changes and changes["status"] != lead.status:
        if changes["status"] not in OPEN_LEAD_STATUSES:
            raise Invalid(
                "status may be set to new or in_progress; use /convert or /reject to close",
                "status",
            )
        _open(lead)
        lead.status = changes["status"]
    if changes.get("owner_id") is not None and changes["owner_id"] != lead.owner_id:
        await check_assignee(s, actor, changes["owner_id"], "owner_id")
        lead.owner_id = changes["owner_id"]
        lead.queue = None
        lead.assign_reason = f"reassigned by user {actor.user_id}"
    for key in ("name", "company", "title", "priority", "tags", "needs_review"):
        if key in changes and changes[key] is not None:
            setattr(lead, key, changes[key])
    await add_points(
        s, actor, phones=changes.get("phones"), emails=changes.get("emails"), lead_id=lead.id
    )
    await s.flush()
    await audit(s, actor, "update", "lead", lead.id, changes)
    return lead


async def convert_lead(
    s: AsyncSession, actor: Actor, lead_id: int, data: dict[str, Any]
) -> dict[str, Any]:
    """Turn a lead into a client (new or reused) and a deal at the first stage.

    ``data``: client_id (reuse), or kind/name/inn/segment for a new client;
    deal_title, amount, currency.  The lead's contact points, interactions and tasks
    move to the client; the lead becomes ``converted``.
    """
    lead = await get_lead(s, actor, lead_id, lock=True)
    _open(lead)
    client: Client | None = None
    if data.get("client_id") is not None:
        client = await get_client(s, actor, data["client_id"])
    elif lead.client_id is not None:
        client = await s.get(Client, lead.client_id)
    if client is None:
        kind = data.get("kind") or ("company" if lead.company else "person")
        name = data.get("name") or (lead.company if kind == "company" else None) or lead.name
        if not name:
            raise Invalid("the lead has no name: give the client's name", "name")
        client = await create_client(
            s,
            actor,
            {
                "kind": kind,
                "name": name,
                "inn": data.get("inn"),
                "segment": data.get("segment"),
                "status": "thinking",
                "owner_id": data.get("owner_id") or lead.owner_id or actor.user_id,
            },
        )
        if data.get("owner_id") is None:  # managers of a segment it enters take it over
            await assign_entering(s, actor, client)
    await s.execute(
        update(ContactPoint)
        .where(
            ContactPoint.lead_id == lead.id,
            ContactPoint.client_id.is_(None),
            ContactPoint.contact_person_id.is_(None),
        )
        .values(client_id=client.id)
    )
    deal = await new_deal(
        s,
        actor,
        client_id=client.id,
        lead_id=lead.id,
        title=(data.get("deal_title") or lead.title or f"Сделка по заявке #{lead.id}")[:300],
        owner_id=lead.owner_id or client.owner_id or actor.user_id,
        pipeline_id=data.get("pipeline_id"),
        stage=data.get("stage"),
        amount=data.get("amount"),
        currency=data.get("currency"),
        items=data.get("items"),
    )
    await s.execute(
        update(Interaction).where(Interaction.lead_id == lead.id).values(client_id=client.id)
    )
    await s.execute(
        update(Interaction)
        .where(Interaction.lead_id == lead.id, Interaction.deal_id.is_(None))
        .values(deal_id=deal.id)
    )
    await s.execute(update(Task).where(Task.lead_id == lead.id).values(client_id=client.id))
    lead.status = "converted"
    lead.client_id = client.id
    lead.deal_id = deal.id
    lead.closed_at = _now()
    await s.flush()
    await audit(
        s, actor, "convert", "lead", lead.id, {"client_id": client.id, "deal_id": deal.id, **data}
    )
    return {
        "lead": (await lead_dicts(s, [lead]))[0],
        "client": (await client_dicts(s, [client]))[0],
        "deal": (await deal_dicts(s, [deal]))[0],
    }


async def reject_lead(s: AsyncSession, actor: Actor, lead_id: int, reason: str) -> Lead:
    lead = await get_lead(s, actor, lead_id, lock=True)
    reason = (reason or "").strip()
    if not reason:
        raise Invalid("a reason is required", "reason")
    _open(lead)
    lead.status = "rejected"
    lead.loss_reason = reason[:300]
    lead.closed_at = _now()
    await s.flush()
    await audit(s, actor, "reject", "lead", lead.id, {"reason": reason})
    return lead
