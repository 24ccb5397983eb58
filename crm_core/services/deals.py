"""Deals: each in a pipeline (crm_core.services.pipelines), with line items, the history
of every stage change, won/lost closing (a loss needs a reason from the pipeline's
catalogue) and reopening."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.access import Actor, visible_deals
from crm_core.models import Client, Deal, DealItem, DealStageChange
from crm_core.models import utcnow as _now
from crm_core.services.clients import get_client
from crm_core.services.common import (
    Conflict,
    Invalid,
    ListFilter,
    NotFound,
    Page,
    ServiceError,
    audit,
    check_assignee,
    clients_with_identity,
    identity_value,
    iso,
    page_by_id,
)
from crm_core.services.pipelines import Funnel, in_pipeline, load_funnel

__all__ = [
    "CENTS",
    "CLOSED",
    "MissingField",
    "board",
    "create_deal",
    "deal_dicts",
    "get_deal",
    "list_deals",
    "lose_deal",
    "move_stage",
    "new_deal",
    "parse_amount",
    "reopen_deal",
    "stage_history",
    "update_deal",
    "win_deal",
]

CENTS = Decimal("0.01")
CLOSED = ("won", "lost")
MAX_ITEMS = 200
FIELD_RU = {"amount": "сумма", "items": "позиции сделки"}


class MissingField(ServiceError):
    """A field the target stage requires is empty (answered 400 with both wordings)."""

    def __init__(self, field: str, f: Funnel, stage: str) -> None:
        super().__init__(f"{field} is required to enter the stage {f.label(stage, 'en')}", field)
        label = FIELD_RU.get(field, field)
        self.message_ru = f"Для этапа «{f.label(stage, 'ru')}» нужно заполнить поле «{label}»"


def parse_amount(value: Any, field: str = "amount") -> Decimal | None:
    if value is None:
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise Invalid(f"{field} must be a number", field) from None
    if not amount.is_finite() or amount < 0 or amount >= Decimal("1e12"):
        raise Invalid(f"{field} must be between 0 and 999999999999.99", field)
    return amount.quantize(CENTS)


def _number(value: Any, field: str, low: Decimal, high: Decimal, places: str) -> Decimal:
    try:
        n = Decimal(str(value))
    except InvalidOperation:
        raise Invalid(f"{field} must be a number", field) from None
    if not n.is_finite() or n < low or n > high:
        raise Invalid(f"{field} must be between {low} and {high}", field)
    return n.quantize(Decimal(places))


def _items(raw: Any) -> list[dict[str, Any]]:
    """Line items: name, quantity (> 0), unit, price, discount (percent, 0..100)."""
    if not isinstance(raw, list):
        raise Invalid("items must be a list", "items")
    if len(raw) > MAX_ITEMS:
        raise Invalid(f"items: at most {MAX_ITEMS} lines", "items")
    out = []
    for i, item in enumerate(raw):
        where = f"items.{i}"
        if not isinstance(item, dict):
            raise Invalid(f"{where} must be an object", where)
        name = str(item.get("name") or "").strip()
        if not name:
            raise Invalid(f"{where}.name must not be empty", f"{where}.name")
        quantity = _number(
            item.get("quantity", 1), f"{where}.quantity", Decimal(0), Decimal("1e9"), "0.001"
        )
        if quantity <= 0:
            raise Invalid(f"{where}.quantity must be more than 0", f"{where}.quantity")
        price = _number(item.get("price"), f"{where}.price", Decimal(0), Decimal("1e11"), "0.01")
        discount = _number(
            item.get("discount") or 0, f"{where}.discount", Decimal(0), Decimal(100), "0.01"
        )
        unit = str(item.get("unit") or "шт").strip()[:20] or "шт"
        out.append(
            {
                "name": name[:300],
                "quantity": quantity,
                "unit": unit,
                "price": price,
                "discount": discount,
            }
        )
    return out


def line_total(quantity: Decimal, price: Decimal, discount: Decimal) -> Decimal:
    return (quantity * price * (Decimal(100) - discount) / Decimal(100)).quantize(CENTS)


def _sum(items: list[dict[str, Any]]) -> Decimal:
    total = sum((line_total(i["quantity"], i["price"], i["discount"]) for i in items), Decimal(0))
    if total >= Decimal("1e12"):
        raise Invalid("the items add up to more than 999999999999.99", "items")
    return total


async def _set_items(s: AsyncSession, deal: Deal, items: list[dict[str, Any]]) -> None:
    await s.execute(delete(DealItem).where(DealItem.deal_id == deal.id))
    for i, item in enumerate(items):
        s.add(DealItem(deal_id=deal.id, position=i, **item))
    if items:
        deal.amount = _sum(items)


async def _funnels(s: AsyncSession, deals: list[Deal]) -> dict[int | None, Funnel]:
    out: dict[int | None, Funnel] = {}
    for pid in {d.pipeline_id for d in deals}:
        f = await load_funnel(s, pid)
        out[pid] = f
        if pid is None:
            out[f.id] = f
    return out


def _money(value: Decimal | None) -> str | None:
    return str(value.quantize(CENTS)) if value is not None else None


async def deal_dicts(s: AsyncSession, deals: list[Deal]) -> list[dict[str, Any]]:
    funnels = await _funnels(s, deals)
    items: dict[int, list[dict[str, Any]]] = defaultdict(list)
    if deals:
        rows = await s.scalars(
            select(DealItem)
            .where(DealItem.deal_id.in_([d.id for d in deals]))
            .order_by(DealItem.deal_id, DealItem.position, DealItem.id)
        )
        for it in rows:
            items[it.deal_id].append(
                {
                    "id": it.id,
                    "name": it.name,
                    "quantity": str(it.quantity.normalize()),
                    "unit": it.unit,
                    "price": _money(it.price),
                    "discount": str(it.discount.quantize(CENTS)),
                    "total": _money(line_total(it.quantity, it.price, it.discount)),
                }
            )
    names: dict[int, str] = {}
    if deals:
        query = select(Client.id, Client.name).where(Client.id.in_({d.client_id for d in deals}))
        names = {cid: name for cid, name in await s.execute(query)}
    out = []
    for d in deals:
        f = funnels[d.pipeline_id]
        st = f.stage(d.stage)
        out.append(
            {
                "id": d.id,
                "client_id": d.client_id,
                "client_name": names.get(d.client_id),
                "lead_id": d.lead_id,
                "pipeline_id": f.id,
                "title": d.title,
                "stage": d.stage,
                "stage_label": f.label(d.stage, "ru"),
                "stage_label_en": f.label(d.stage, "en"),
                "stage_kind": st.kind if st is not None else "open",
                "probability": st.probability if st is not None else None,
                "amount": _money(d.amount),
                "currency": d.currency,
                "owner_id": d.owner_id,
                "loss_reason": d.loss_reason,
                "loss_reason_id": d.loss_reason_id,
                "loss_comment": d.loss_comment,
                "items": items.get(d.id, []),
                "created_at": iso(d.created_at),
                "updated_at": iso(d.updated_at),
                "closed_at": iso(d.closed_at),
            }
        )
    return out


async def get_deal(s: AsyncSession, actor: Actor, deal_id: int, *, lock: bool = False) -> Deal:
    query = select(Deal).where(Deal.id == deal_id, visible_deals(actor))
    if lock:
        query = query.with_for_update()
    deal = await s.scalar(query)
    if deal is None:
        raise NotFound(f"deal {deal_id} not found")
    return deal


def _filtered(query: Any, flt: ListFilter) -> Any:
    """The filters shared by the list and the board."""
    for kind, raw in (("phone", flt.phone), ("email", flt.email)):
        if raw:
            value, _ = identity_value(kind, raw, kind)
            query = query.where(Deal.client_id.in_(clients_with_identity(kind, value)))
    if flt.owner_id is not None:
        query = query.where(Deal.owner_id == flt.owner_id)
    extra = flt.extra
    if extra.get("client_id") is not None:
        query = query.where(Deal.client_id == extra["client_id"])
    if extra.get("amount_min") is not None:
        query = query.where(Deal.amount >= extra["amount_min"])
    if extra.get("amount_max") is not None:
        query = query.where(Deal.amount <= extra["amount_max"])
    if extra.get("segment_id") is not None:
        query = query.where(
            Deal.client_id.in_(select(Client.id).where(Client.segment_id == extra["segment_id"]))
        )
    if flt.created_from is not None:
        query = query.where(Deal.created_at >= flt.created_from)
    if flt.created_to is not None:
        query = query.where(Deal.created_at < flt.created_to)
    if flt.q:
        query = query.where(or_(Deal.title.ilike(f"%{flt.q.strip()}%")))
    return query


async def list_deals(s: AsyncSession, actor: Actor, flt: ListFilter) -> Page:
    query = _filtered(select(Deal).where(visible_deals(actor)), flt)
    if flt.extra.get("pipeline_id") is not None:
        f = await load_funnel(s, flt.extra["pipeline_id"])
        query = query.where(in_pipeline(f.pipeline))
    if flt.status:  # a stage, or "open" / "closed"
        if flt.status == "open":
            query = query.where(Deal.stage.notin_(CLOSED))
        elif flt.status == "closed":
            query = query.where(Deal.stage.in_(CLOSED))
        else:
            query = query.where(Deal.stage == flt.status)
    return await page_by_id(s, query, flt, Deal.id, deal_dicts)


async def board(
    s: AsyncSession, actor: Actor, pipeline_id: int | None, flt: ListFilter, per_stage: int
) -> dict[str, Any]:
    """A pipeline's board: per stage the number of deals, their amount and the newest
    ``per_stage`` of them (one GROUP BY, then one page per stage on the
    (pipeline_id, stage, id) index)."""
    from crm_core.services.pipelines import pipeline_dict

    f = await load_funnel(s, pipeline_id)
    base = _filtered(select(Deal).where(visible_deals(actor), in_pipeline(f.pipeline)), flt)
    sub = base.subquery()
    totals = {
        stage: (int(n), amount)
        for stage, n, amount in await s.execute(
            select(sub.c.stage, func.count(), func.sum(sub.c.amount)).group_by(sub.c.stage)
        )
    }
    rows: list[Deal] = []
    for st in f.stages:
        if totals.get(st.code, (0, None))[0]:
            query = base.where(Deal.stage == st.code).order_by(Deal.id.desc()).limit(per_stage)
            rows += list(await s.scalars(query))
    shown: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for d in await deal_dicts(s, rows):  # one round of lookups for the whole board
        shown[d["stage"]].append(d)
    columns = []
    for st in f.stages:
        n, amount = totals.get(st.code, (0, None))
        columns.append(
            {
                "stage": st.code,
                "count": n,
                "amount": _money(Decimal(amount)) if amount is not None else "0.00",
                "items": shown[st.code],
            }
        )
    return {"pipeline": pipeline_dict(f), "columns": columns}


def _check_required(deal: Deal, f: Funnel, stage: str, items: int) -> None:
    for field in f.required_for(stage):
        if field == "amount" and not deal.amount:
            raise MissingField("amount", f, stage)
        if field == "items" and not items:
            raise MissingField("items", f, stage)


async def _item_count(s: AsyncSession, deal: Deal) -> int:
    query = select(func.count()).select_from(DealItem).where(DealItem.deal_id == deal.id)
    return int(await s.scalar(query) or 0)


async def new_deal(
    s: AsyncSession,
    actor: Actor,
    *,
    client_id: int,
    title: str,
    owner_id: int,
    pipeline_id: int | None = None,
    stage: str | None = None,
    amount: Any = None,
    currency: str | None = None,
    items: Any = None,
    lead_id: int | None = None,
) -> Deal:
    """A deal at ``stage`` (the pipeline's first stage if None) with its first history
    entry; the stage's required fields are checked."""
    f = await load_funnel(s, pipeline_id)
    stage = stage or f.open_codes[0]
    if stage not in f.open_codes:
        raise Invalid(f"stage must be one of {', '.join(f.open_codes)}", "stage")
    lines = _items(items) if items else []
    if lines and amount is not None:
        raise Invalid("amount is the sum of the items: give one or the other", "amount")
    deal = Deal(
        client_id=client_id,
        lead_id=lead_id,
        pipeline_id=f.id,
        title=title,
        stage=stage,
        amount=parse_amount(amount),
        currency=currency or "RUB",
        owner_id=owner_id,
    )
    s.add(deal)
    await s.flush()
    await _set_items(s, deal, lines)
    _check_required(deal, f, stage, len(lines))
    s.add(DealStageChange(deal_id=deal.id, from_stage=None, to_stage=stage, user_id=actor.user_id))
    await s.flush()
    return deal


async def create_deal(s: AsyncSession, actor: Actor, data: dict[str, Any]) -> Deal:
    """``data``: client_id (visible to the actor), title, pipeline_id, stage, amount or
    items, currency, owner_id."""
    client = await get_client(s, actor, data["client_id"])
    owner_id = data.get("owner_id") or actor.user_id
    await check_assignee(s, actor, owner_id, "owner_id")
    title = (data.get("title") or "").strip()
    if not title:
        raise Invalid("title must not be empty", "title")
    deal = await new_deal(
        s,
        actor,
        client_id=client.id,
        title=title,
        owner_id=owner_id,
        pipeline_id=data.get("pipeline_id"),
        stage=data.get("stage"),
        amount=data.get("amount"),
        currency=data.get("currency"),
        items=data.get("items"),
    )
    await audit(s, actor, "create", "deal", deal.id, data)
    return deal


async def update_deal(s: AsyncSession, actor: Actor, deal_id: int, changes: dict[str, Any]) -> Deal:
    deal = await get_deal(s, actor, deal_id, lock=True)
    if changes.get("owner_id") is not None and changes["owner_id"] != deal.owner_id:
        await check_assignee(s, actor, changes["owner_id"], "owner_id")
        deal.owner_id = changes["owner_id"]
    if "title" in changes:
        title = (changes["title"] or "").strip()
        if not title:
            raise Invalid("title must not be empty", "title")
        deal.title = title
    lines = _items(changes["items"]) if changes.get("items") is not None else None
    if "amount" in changes and changes["amount"] is not None:
        if lines or (lines is None and await _item_count(s, deal)):
            raise Invalid("amount is the sum of the items: change the items", "amount")
    if "amount" in changes:
        deal.amount = parse_amount(changes["amount"])
    if lines is not None:
        await _set_items(s, deal, lines)
    if changes.get("currency"):
        deal.currency = changes["currency"]
    if deal.stage not in CLOSED:  # what the current stage requires stays filled
        f = await load_funnel(s, deal.pipeline_id)
        _check_required(deal, f, deal.stage, await _item_count(s, deal))
    await s.flush()
    await audit(s, actor, "update", "deal", deal.id, changes)
    return deal


async def _change_stage(
    s: AsyncSession, actor: Actor, deal: Deal, stage: str, extra: dict[str, Any] | None = None
) -> Deal:
    if stage == deal.stage:
        return deal
    s.add(
        DealStageChange(
            deal_id=deal.id, from_stage=deal.stage, to_stage=stage, user_id=actor.user_id
        )
    )
    before = deal.stage
    deal.stage = stage
    deal.closed_at = _now() if stage in CLOSED else None
    await s.flush()
    await audit(s, actor, "stage", "deal", deal.id, {"from": before, "to": stage, **(extra or {})})
    return deal


async def _open_deal(s: AsyncSession, actor: Actor, deal_id: int) -> tuple[Deal, Funnel]:
    deal = await get_deal(s, actor, deal_id, lock=True)
    if deal.stage in CLOSED:
        raise Conflict(f"deal {deal.id} is already {deal.stage}", "stage")
    return deal, await load_funnel(s, deal.pipeline_id)


async def move_stage(s: AsyncSession, actor: Actor, deal_id: int, stage: str) -> Deal:
    deal = await get_deal(s, actor, deal_id)
    f = await load_funnel(s, deal.pipeline_id)
    if f.stage(stage) is None:
        codes = ", ".join(st.code for st in f.stages)
        raise Invalid(f"stage must be one of {codes}", "stage")
    if stage == "lost":
        raise Invalid("a lost deal needs a reason: use /lose", "stage")
    if stage == "won":
        return await win_deal(s, actor, deal_id)
    deal, f = await _open_deal(s, actor, deal_id)
    _check_required(deal, f, stage, await _item_count(s, deal))
    return await _change_stage(s, actor, deal, stage)


async def win_deal(s: AsyncSession, actor: Actor, deal_id: int) -> Deal:
    deal, f = await _open_deal(s, actor, deal_id)
    _check_required(deal, f, "won", await _item_count(s, deal))
    return await _change_stage(s, actor, deal, "won")


async def lose_deal(
    s: AsyncSession,
    actor: Actor,
    deal_id: int,
    reason_id: int | None = None,
    comment: str | None = None,
    reason: str | None = None,
) -> Deal:
    """Lost with a reason of the pipeline's catalogue: ``reason_id``, or (older clients)
    ``reason``, a catalogue entry's name in any letter case; and a comment."""
    deal, f = await _open_deal(s, actor, deal_id)
    active = [r for r in f.reasons if r.active]
    if reason_id is not None:
        found = next((r for r in active if r.id == reason_id), None)
        if found is None:
            raise Invalid(f"loss reason {reason_id} is not in this pipeline", "reason_id")
    elif reason and reason.strip():
        key = reason.strip().casefold()
        found = next((r for r in active if r.name.casefold() == key), None)
        if found is None:
            names = ", ".join(r.name for r in active)
            raise Invalid(f"reason must be one of the catalogue: {names}", "reason_id")
    else:
        raise Invalid("a reason from the loss-reason catalogue is required", "reason_id")
    deal.loss_reason = found.name
    deal.loss_reason_id = found.id
    deal.loss_comment = (comment or "").strip()[:2000] or None
    return await _change_stage(
        s, actor, deal, "lost", {"reason": found.name, "reason_id": found.id}
    )


async def reopen_deal(s: AsyncSession, actor: Actor, deal_id: int, stage: str | None) -> Deal:
    """A won or lost deal back to an open stage: ``stage``, or the one it was closed from."""
    deal = await get_deal(s, actor, deal_id, lock=True)
    if deal.stage not in CLOSED:
        raise Conflict(f"deal {deal.id} is not closed", "stage")
    f = await load_funnel(s, deal.pipeline_id)
    if stage is None:
        stage = await s.scalar(
            select(DealStageChange.from_stage)
            .where(DealStageChange.deal_id == deal.id, DealStageChange.to_stage == deal.stage)
            .order_by(DealStageChange.at.desc(), DealStageChange.id.desc())
            .limit(1)
        )
        if stage not in f.open_codes:
            stage = f.open_codes[-1] if deal.stage == "won" else f.open_codes[0]
    elif stage not in f.open_codes:
        raise Invalid(f"stage must be one of {', '.join(f.open_codes)}", "stage")
    deal.loss_reason = None
    deal.loss_reason_id = None
    deal.loss_comment = None
    return await _change_stage(s, actor, deal, stage, {"reopen": True})


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
