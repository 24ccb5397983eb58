"""Deals: the pipeline of crm_core.stages, with the history of every stage change."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.access import Actor, visible_deals
from crm_core.models import Deal, DealStageChange
from crm_core.models import utcnow as _now
from crm_core.services.clients import get_client
from crm_core.services.common import (
    Conflict,
    Invalid,
    ListFilter,
    NotFound,
    Page,
    audit,
    check_assignee,
    clients_with_identity,
    identity_value,
    iso,
    page_by_id,
)
from crm_core.stages import CLOSED_STAGES, FIRST_STAGE, OPEN_STAGES, STAGE_CODES, stage_label

__all__ = [
    "CENTS",
    "create_deal",
    "deal_dicts",
    "get_deal",
    "list_deals",
    "lose_deal",
    "move_stage",
    "parse_amount",
    "stage_history",
    "update_deal",
    "win_deal",
]

CENTS = Decimal("0.01")


def parse_amount(value: Any) -> Decimal | None:
    if value is None:
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise Invalid("amount must be a number", "amount") from None
    if not amount.is_finite() or amount < 0 or amount >= Decimal("1e12"):
        raise Invalid("amount must be between 0 and 999999999999.99", "amount")
    return amount.quantize(CENTS)


async def deal_dicts(s: AsyncSession, deals: list[Deal]) -> list[dict[str, Any]]:
    return [
        {
            "id": d.id,
            "client_id": d.client_id,
            "lead_id": d.lead_id,
            "title": d.title,
            "stage": d.stage,
            "stage_label": stage_label(d.stage, "ru"),
            "stage_label_en": stage_label(d.stage, "en"),
            "amount": str(d.amount.quantize(CENTS)) if d.amount is not None else None,
            "currency": d.currency,
            "owner_id": d.owner_id,
            "loss_reason": d.loss_reason,
            "created_at": iso(d.created_at),
            "updated_at": iso(d.updated_at),
            "closed_at": iso(d.closed_at),
        }
        for d in deals
    ]


async def get_deal(s: AsyncSession, actor: Actor, deal_id: int, *, lock: bool = False) -> Deal:
    query = select(Deal).where(Deal.id == deal_id, visible_deals(actor))
    if lock:
        query = query.with_for_update()
    deal = await s.scalar(query)
    if deal is None:
        raise NotFound(f"deal {deal_id} not found")
    return deal


async def list_deals(s: AsyncSession, actor: Actor, flt: ListFilter) -> Page:
    query = select(Deal).where(visible_deals(actor))
    for kind, raw in (("phone", flt.phone), ("email", flt.email)):
        if raw:
            value, _ = identity_value(kind, raw, kind)
            query = query.where(Deal.client_id.in_(clients_with_identity(kind, value)))
    if flt.owner_id is not None:
        query = query.where(Deal.owner_id == flt.owner_id)
    if flt.status:  # a stage, or "open" / "closed"
        if flt.status == "open":
            query = query.where(Deal.stage.in_(OPEN_STAGES))
        elif flt.status == "closed":
            query = query.where(Deal.stage.in_(CLOSED_STAGES))
        else:
            query = query.where(Deal.stage == flt.status)
    if flt.extra.get("client_id") is not None:
        query = query.where(Deal.client_id == flt.extra["client_id"])
    if flt.created_from is not None:
        query = query.where(Deal.created_at >= flt.created_from)
    if flt.created_to is not None:
        query = query.where(Deal.created_at < flt.created_to)
    if flt.q:
        query = query.where(or_(Deal.title.ilike(f"%{flt.q.strip()}%")))
    return await page_by_id(s, query, flt, Deal.id, deal_dicts)


async def create_deal(s: AsyncSession, actor: Actor, data: dict[str, Any]) -> Deal:
    """``data``: client_id (visible to the actor), title, amount, currency, owner_id, stage."""
    client = await get_client(s, actor, data["client_id"])
    owner_id = data.get("owner_id") or actor.user_id
    await check_assignee(s, actor, owner_id, "owner_id")
    stage = data.get("stage") or FIRST_STAGE
    if stage not in OPEN_STAGES:
        raise Invalid(f"stage must be one of {', '.join(OPEN_STAGES)}", "stage")
    title = (data.get("title") or "").strip()
    if not title:
        raise Invalid("title must not be empty", "title")
    deal = Deal(
        client_id=client.id,
        title=title,
        stage=stage,
        amount=parse_amount(data.get("amount")),
        currency=data.get("currency") or "RUB",
        owner_id=owner_id,
    )
    s.add(deal)
    await s.flush()
    s.add(DealStageChange(deal_id=deal.id, from_stage=None, to_stage=stage, user_id=actor.user_id))
    await audit(s, actor, "create", "deal", deal.id, data)
    return deal


async def update_deal(s: AsyncSession, actor: Actor, deal_id: int, changes: dict[str, Any]) -> Deal:
    deal = await get_deal(s, actor, deal_id)
    if changes.get("owner_id") is not None and changes["owner_id"] != deal.owner_id:
        await check_assignee(s, actor, changes["owner_id"], "owner_id")
        deal.owner_id = changes["owner_id"]
    if "title" in changes:
        title = (changes["title"] or "").strip()
        if not title:
            raise Invalid("title must not be empty", "title")
        deal.title = title
    if "amount" in changes:
        deal.amount = parse_amount(changes["amount"])
    if changes.get("currency"):
        deal.currency = changes["currency"]
    await s.flush()
    await audit(s, actor, "update", "deal", deal.id, changes)
    return deal


async def _change_stage(
    s: AsyncSession, actor: Actor, deal: Deal, stage: str, reason: str | None = None
) -> Deal:
    if deal.stage in CLOSED_STAGES:
        raise Conflict(f"deal {deal.id} is already {deal.stage}", "stage")
    if stage == deal.stage:
        return deal
    s.add(
        DealStageChange(
            deal_id=deal.id, from_stage=deal.stage, to_stage=stage, user_id=actor.user_id
        )
    )
    before = deal.stage
    deal.stage = stage
    if stage in CLOSED_STAGES:
        deal.closed_at = _now()
        deal.loss_reason = reason
    await s.flush()
    await audit(
        s,
        actor,
        "stage",
        "deal",
        deal.id,
        {"from": before, "to": stage, **({"reason": reason} if reason else {})},
    )
    return deal


async def move_stage(s: AsyncSession, actor: Actor, deal_id: int, stage: str) -> Deal:
    if stage not in STAGE_CODES:
        raise Invalid(f"stage must be one of {', '.join(STAGE_CODES)}", "stage")
    if stage == "lost":
        raise Invalid("a lost deal needs a reason: use /lose", "stage")
    deal = await get_deal(s, actor, deal_id, lock=True)
    return await _change_stage(s, actor, deal, stage)


async def win_deal(s: AsyncSession, actor: Actor, deal_id: int) -> Deal:
    deal = await get_deal(s, actor, deal_id, lock=True)
    return await _change_stage(s, actor, deal, "won")


async def lose_deal(s: AsyncSession, actor: Actor, deal_id: int, reason: str) -> Deal:
    reason = (reason or "").strip()
    if not reason:
        raise Invalid("a reason is required", "reason")
    deal = await get_deal(s, actor, deal_id, lock=True)
    return await _change_stage(s, actor, deal, "lost", reason[:300])


async def stage_history(s: AsyncSession, actor: Actor, deal_id: int) -> list[dict[str, Any]]:
    deal = await get_deal(s, actor, deal_id)
    rows = await s.scalars(
        select(DealStageChange)
        .where(DealStageChange.deal_id == deal.id)
        .order_by(DealStageChange.id)
    )
    return [
        {"from": r.from_stage, "to": r.to_stage, "user_id": r.user_id, "at": iso(r.at)}
        for r in rows
    ]
