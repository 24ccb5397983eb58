"""The analytics as they were before issue 11 (rows loaded into Python and counted there):
the reference the SQL aggregates are checked against on small seeded bases."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.access import Actor, visible_deals, visible_leads, visible_tasks, visible_users
from crm_core.models import Deal, DealStageChange, Interaction, Lead, Task, User
from crm_core.stages import STAGES

__all__ = ["funnel", "manager_activity", "requests_per_period"]

OPEN_STAGES = [s.code for s in STAGES if s.code not in ("won", "lost")]


def _window(q: Any, column: Any, start: datetime | None, end: datetime | None) -> Any:
    if start is not None:
        q = q.where(column >= start)
    if end is not None:
        q = q.where(column < end)
    return q


async def funnel(
    s: AsyncSession, actor: Actor, start: datetime | None, end: datetime | None
) -> dict[str, Any]:
    """Deals created in the window: how far each got, where the lost ones were lost."""
    deals = list(
        await s.execute(
            _window(
                select(Deal.id, Deal.stage, Deal.amount, Deal.loss_reason).where(
                    visible_deals(actor)
                ),
                Deal.created_at,
                start,
                end,
            )
        )
    )
    ids = [d.id for d in deals]
    reached: dict[int, set[str]] = defaultdict(set)
    lost_at: dict[int, str] = {}
    if ids:
        rows = await s.execute(
            select(DealStageChange.deal_id, DealStageChange.from_stage, DealStageChange.to_stage)
            .where(DealStageChange.deal_id.in_(ids))
            .order_by(DealStageChange.at, DealStageChange.id)
        )
        for deal_id, from_stage, to_stage in rows:
            if to_stage == "lost":
                lost_at[deal_id] = from_stage or "new"
            else:
                reached[deal_id].add(to_stage)
    order = {stage: i for i, stage in enumerate([*OPEN_STAGES, "won"])}
    furthest: dict[int, int] = {}
    for d in deals:
        stages = set(reached[d.id]) | {"new"}
        if d.stage != "lost":
            stages.add(d.stage)
        else:
            stages.add(lost_at.get(d.id, "new"))
        furthest[d.id] = max(order.get(x, 0) for x in stages)
    total = len(deals)
    out_stages: list[dict[str, Any]] = []
    for stage in [*OPEN_STAGES, "won"]:
        n = sum(1 for d in deals if furthest[d.id] >= order[stage])
        lost_here = [d for d in deals if d.stage == "lost" and lost_at.get(d.id, "new") == stage]
        out_stages.append(
            {
                "stage": stage,
                "reached": n,
                "share_of_created": round(n / total, 4) if total else 0.0,
                "now_at_stage": sum(1 for d in deals if d.stage == stage),
                "lost_here": len(lost_here),
                "loss_reasons": dict(Counter(d.loss_reason or "—" for d in lost_here)),
            }
        )
    for prev, nxt in itertools.pairwise(out_stages):
        prev["conversion_to_next"] = (
            round(nxt["reached"] / prev["reached"], 4) if prev["reached"] else 0.0
        )
    won = [d for d in deals if d.stage == "won"]
    return {
        "deals_created": total,
        "won": len(won),
        "won_amount": str(sum((d.amount or 0) for d in won)),
        "lost": sum(1 for d in deals if d.stage == "lost"),
        "stages": out_stages,
    }


def _bucket(moment: datetime, group: str) -> str:
    day: date = moment.date()
    if group == "month":
        return day.strftime("%Y-%m")
    if group == "week":
        monday = day - timedelta(days=day.weekday())
        return monday.isoformat()
    return day.isoformat()


async def requests_per_period(
    s: AsyncSession, actor: Actor, start: datetime | None, end: datetime | None, group: str
) -> dict[str, Any]:
    """Leads (requests) per period and source, and refusals (rejected leads) with reasons."""
    rows = await s.execute(
        _window(
            select(
                Lead.created_at, Lead.source, Lead.status, Lead.loss_reason, Lead.closed_at
            ).where(visible_leads(actor)),
            Lead.created_at,
            start,
            end,
        )
    )
    periods: dict[str, dict[str, Any]] = {}  # period -> figures
    for created_at, source, status, reason, _closed in rows:
        key = _bucket(created_at, group)
        p = periods.setdefault(
            key,
            {
                "period": key,
                "requests": 0,
                "by_source": Counter(),
                "refusals": 0,
                "refusal_reasons": Counter(),
                "refusals_by_source": Counter(),
                "converted": 0,
            },
        )
        p["requests"] += 1
        p["by_source"][source] += 1
        if status == "rejected":
            p["refusals"] += 1
            p["refusal_reasons"][reason or "—"] += 1
            p["refusals_by_source"][source] += 1
        elif status == "converted":
            p["converted"] += 1
    items = []
    for key in sorted(periods):
        p = periods[key]
        items.append(
            {
                **p,
                "by_source": dict(p["by_source"]),
                "refusal_reasons": dict(p["refusal_reasons"]),
                "refusals_by_source": dict(p["refusals_by_source"]),
            }
        )
    return {"group": group, "items": items}


async def manager_activity(
    s: AsyncSession, actor: Actor, start: datetime | None, end: datetime | None
) -> dict[str, Any]:
    """Per manager: leads received/converted/rejected, calls, emails and messages sent,
    tasks done and overdue, deals won."""
    users = list(await s.scalars(select(User).where(visible_users(actor)).order_by(User.id)))
    ids = [u.id for u in users]
    stats: dict[Any, Counter[str]] = {i: Counter() for i in ids}
    if ids:
        q = _window(
            select(Lead.owner_id, Lead.status, func.count())
            .where(Lead.owner_id.in_(ids), visible_leads(actor))
            .group_by(Lead.owner_id, Lead.status),
            Lead.created_at,
            start,
            end,
        )
        for owner, status, n in await s.execute(q):
            stats[owner]["leads"] += n
            stats[owner][f"leads_{status}"] += n
        rows = await s.execute(
            _window(
                select(
                    Interaction.user_id,
                    Interaction.channel,
                    Interaction.direction,
                    Interaction.outcome,
                    Interaction.duration_s,
                ).where(Interaction.user_id.in_(ids)),
                Interaction.occurred_at,
                start,
                end,
            )
        )
        for user_id, channel, direction, outcome, duration in rows:
            if channel == "call":
                stats[user_id]["calls"] += 1
                stats[user_id]["talk_s"] += duration or 0
                if direction == "out":
                    stats[user_id]["calls_out"] += 1
                if outcome == "answered":
                    stats[user_id]["calls_answered"] += 1
            elif direction == "out":
                stats[user_id][f"{channel}_sent"] += 1
        # First response: the earliest outbound interaction or answered call of each lead
        # (from the interactions, not from the column the triggers keep).
        leads = list(
            await s.execute(
                _window(
                    select(Lead.id, Lead.owner_id, Lead.created_at).where(
                        Lead.owner_id.in_(ids), visible_leads(actor)
                    ),
                    Lead.created_at,
                    start,
                    end,
                )
            )
        )
        first: dict[int, datetime] = {}
        for lead_id, direction, outcome, at in await s.execute(
            select(
                Interaction.lead_id,
                Interaction.direction,
                Interaction.outcome,
                Interaction.occurred_at,
            ).where(Interaction.lead_id.is_not(None))
        ):
            if direction == "out" or outcome == "answered":
                if lead_id not in first or at < first[lead_id]:
                    first[lead_id] = at
        waits: dict[int, list[float]] = defaultdict(list)
        for lead_id, owner, created in leads:
            if lead_id in first:
                waits[owner].append(max(0.0, (first[lead_id] - created).total_seconds()))
        for owner, w in waits.items():
            stats[owner]["first_response_n"] += len(w)
            stats[owner]["first_response_avg_s"] = round(sum(w) / len(w))
        q = _window(
            select(Task.assignee_id, Task.status, func.count())
            .where(Task.assignee_id.in_(ids), visible_tasks(actor))
            .group_by(Task.assignee_id, Task.status),
            Task.created_at,
            start,
            end,
        )
        for user_id, status, n in await s.execute(q):
            stats[user_id][f"tasks_{status}"] += n
        now = datetime.now().astimezone()
        q = (
            select(Task.assignee_id, func.count())
            .where(
                Task.assignee_id.in_(ids),
                Task.status == "open",
                Task.due_at < now,
                visible_tasks(actor),
            )
            .group_by(Task.assignee_id)
        )
        for user_id, n in await s.execute(q):
            stats[user_id]["tasks_overdue"] += n
        q = _window(
            select(Deal.owner_id, func.count(), func.sum(Deal.amount))
            .where(Deal.owner_id.in_(ids), Deal.stage == "won", visible_deals(actor))
            .group_by(Deal.owner_id),
            Deal.closed_at,
            start,
            end,
        )
        for user_id, n, amount in await s.execute(q):
            stats[user_id]["deals_won"] += n
            stats[user_id]["won_amount_total"] = amount or 0
    return {
        "items": [
            {
                "user_id": u.id,
                "name": u.name,
                "role": u.role,
                "team": u.team,
                **{k: (str(v) if k == "won_amount_total" else v) for k, v in stats[u.id].items()},
            }
            for u in users
        ]
    }


# --- issue 13: sales, plan against fact, most promising clients (rows into Python) ---


def _month_of(moment: datetime) -> tuple[int, int]:
    return moment.year, moment.month


async def sales(
    s: AsyncSession, actor: Actor, start: datetime | None, end: datetime | None, group: str
) -> dict[str, Any]:
    from decimal import Decimal

    from crm_core.models import Client, Segment

    rows = list(
        await s.execute(
            _window(
                select(Deal.owner_id, Deal.amount, Deal.closed_at, Deal.client_id).where(
                    Deal.stage == "won", Deal.closed_at.is_not(None), visible_deals(actor)
                ),
                Deal.closed_at,
                start,
                end,
            )
        )
    )
    names = {u.id: u.name for u in await s.scalars(select(User))}
    segment_of = {c.id: c.segment_id for c in await s.scalars(select(Client))}
    segment_name = {g.id: g.name for g in await s.scalars(select(Segment))}
    groups: dict[Any, list[Any]] = {}
    for owner, amount, closed, client in rows:
        if group in ("day", "week", "month"):
            key: Any = _bucket(closed, group)
        elif group == "manager":
            key = owner
        elif group == "segment":
            key = segment_of.get(client)
        else:
            key = _month_of(closed)
        g = groups.setdefault(key, [0, Decimal(0)])
        g[0] += 1
        g[1] += Decimal(amount or 0)
    out: dict[str, Any] = {"group": group}
    if group in ("day", "week", "month"):
        items = [
            {"key": k, "label": k, "deals": n, "amount": str(a)}
            for k, (n, a) in sorted(groups.items())
        ]
    elif group in ("manager", "segment"):
        label = (
            (lambda k: names.get(k) or ("—" if k is None else f"#{k}"))
            if group == "manager"
            else (lambda k: segment_name.get(k) or "—")
        )
        items = [
            {"key": k, "label": label(k), "deals": n, "amount": str(a)}
            for k, (n, a) in groups.items()
        ]
        items.sort(key=lambda i: (-Decimal(i["amount"]), str(i["label"])))
    else:
        years = sorted({y for y, _m in groups})
        items = []
        for m in range(1, 13):
            by_year = {str(y): str(groups[(y, m)][1]) for y in years if (y, m) in groups}
            n = sum(groups[(y, m)][0] for y in years if (y, m) in groups)
            a = sum((groups[(y, m)][1] for y in years if (y, m) in groups), Decimal(0))
            items.append(
                {"key": m, "label": f"{m:02d}", "deals": n, "amount": str(a), "by_year": by_year}
            )
        out["years"] = [str(y) for y in years]
    out["deals"] = sum(i["deals"] for i in items)
    out["amount"] = str(sum((Decimal(i["amount"]) for i in items), Decimal(0)))
    out["items"] = items
    return {k: out[k] for k in ("group", "deals", "amount", "items", "years") if k in out}


async def plan_fact_figures(
    s: AsyncSession, actor: Actor, start: datetime, end: datetime
) -> dict[int, dict[str, Any]]:
    """Per visible user: amount and deals won, calls made, meetings held in [start, end)."""
    from decimal import Decimal

    users = [
        u
        for u in await s.scalars(select(User).where(visible_users(actor)))
        if u.active and u.role in ("manager", "supervisor")
    ]
    ids = {u.id for u in users}
    fact: dict[int, dict[str, Any]] = {
        i: {"amount": Decimal(0), "deals": 0, "calls": 0, "meetings": 0} for i in ids
    }
    for owner, amount, closed in await s.execute(
        select(Deal.owner_id, Deal.amount, Deal.closed_at).where(
            Deal.stage == "won", visible_deals(actor)
        )
    ):
        if owner in ids and closed is not None and start <= closed < end:
            fact[owner]["deals"] += 1
            fact[owner]["amount"] += Decimal(amount or 0)
    for user_id, channel, direction, at in await s.execute(
        select(
            Interaction.user_id, Interaction.channel, Interaction.direction, Interaction.occurred_at
        )
    ):
        if user_id in ids and channel == "call" and direction == "out" and start <= at < end:
            fact[user_id]["calls"] += 1
    for user_id, kind, status, closed in await s.execute(
        select(Task.assignee_id, Task.kind, Task.status, Task.closed_at).where(visible_tasks(actor))
    ):
        if user_id in ids and kind == "meeting" and status == "done" and closed is not None:
            if start <= closed < end:
                fact[user_id]["meetings"] += 1
    return fact


async def promising_clients(
    s: AsyncSession, actor: Actor, now: datetime, limit: int = 10
) -> list[dict[str, Any]]:
    """The ranking of docs/analytics.md, counted client by client."""
    from crm_core.access import visible_clients
    from crm_core.models import Client, Pipeline, PipelineStage

    # each pipeline's open stages in its own order; a deal without one is the default's
    orders: dict[int, list[str]] = defaultdict(list)
    for st in await s.scalars(
        select(PipelineStage).order_by(PipelineStage.position, PipelineStage.id)
    ):
        if st.kind == "open":
            orders[st.pipeline_id].append(st.code)
    default_id = await s.scalar(
        select(Pipeline.id).where(Pipeline.is_default.is_(True)).order_by(Pipeline.id).limit(1)
    )
    if default_id is None:  # a base emptied by TRUNCATE: the stages of crm_core.stages
        orders[default_id] = [st.code for st in STAGES if st.code not in ("won", "lost")]
    clients = {c.id: c for c in await s.scalars(select(Client).where(visible_clients(actor)))}
    since = now - timedelta(days=30)
    part: dict[int, Counter[str]] = defaultdict(Counter)
    last: dict[int, datetime] = {}
    rings: dict[int, list[int]] = defaultdict(list)
    for i in await s.scalars(select(Interaction).where(Interaction.client_id.is_not(None))):
        if i.occurred_at < since or i.client_id not in clients:
            continue
        p = part[i.client_id]
        p["recent"] += 1
        p["inbound"] += i.direction == "in"
        last[i.client_id] = max(last.get(i.client_id, i.occurred_at), i.occurred_at)
        if i.channel == "call" and i.direction == "out":
            p["calls_out"] += 1
            if i.outcome == "answered":
                p["calls_answered"] += 1
                if i.ring_s is not None:
                    rings[i.client_id].append(i.ring_s)
    open_rank: dict[int, float] = {}
    open_amount: dict[int, float] = defaultdict(float)
    won_amount: dict[int, float] = defaultdict(float)
    for d in await s.scalars(select(Deal)):
        if d.client_id not in clients:
            continue
        if d.stage not in ("won", "lost"):
            order = orders[d.pipeline_id or default_id]
            place = 25 * order.index(d.stage) / len(order) if d.stage in order else 0
            part[d.client_id]["open_deals"] += 1
            open_rank[d.client_id] = max(open_rank.get(d.client_id, 0), place)
            open_amount[d.client_id] += float(d.amount or 0)
        elif d.stage == "won":
            part[d.client_id]["won_deals"] += 1
            won_amount[d.client_id] += float(d.amount or 0)
    scored = []
    for cid, p in part.items():
        c = clients[cid]
        if c.owner_id is None:
            continue
        activity = min(p["recent"], 10) * 3 + min(p["inbound"], 5) * 2
        deal = open_rank.get(cid, 0) + min(open_amount[cid] / 100000.0, 20.0)
        purchases = min(p["won_deals"], 5) * 4
        rate = p["calls_answered"] / p["calls_out"] if p["calls_out"] else None
        ring = sum(rings[cid]) / len(rings[cid]) if rings[cid] else None
        answers = (rate * 15 if rate is not None else 0) + (
            5 if ring is not None and ring <= 10 else 0
        )
        score = activity + deal + purchases + answers
        if score > 0:
            scored.append((c.owner_id, -score, cid, round(score, 1)))
    scored.sort()
    out: list[dict[str, Any]] = []
    rank: Counter[int] = Counter()
    for owner, _neg, cid, score in scored:
        rank[owner] += 1
        if rank[owner] <= limit:
            out.append({"owner_id": owner, "client_id": cid, "rank": rank[owner], "score": score})
    return out
