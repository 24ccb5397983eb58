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
