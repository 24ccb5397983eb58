"""Sales analytics: the funnel (conversion and losses by stage), requests and refusals per
period, and manager activity.  Every figure is limited to what the actor may see."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from crm_core.access import Actor, visible_deals, visible_leads, visible_tasks, visible_users
from crm_core.models import (
    Deal,
    DealStageChange,
    Interaction,
    InteractionMonthly,
    Lead,
    Task,
    User,
)
from crm_core.stages import STAGES

__all__ = ["funnel", "manager_activity", "requests_per_period"]

OPEN_STAGES = [s.code for s in STAGES if s.code not in ("won", "lost")]
FUNNEL = [*OPEN_STAGES, "won"]


def _window(q: Any, column: Any, start: datetime | str | None, end: datetime | str | None) -> Any:
    if start is not None:
        q = q.where(column >= start)
    if end is not None:
        q = q.where(column < end)
    return q


def _rank(column: Any) -> Any:
    """A stage's place in the funnel (new 0 ... won 5; lost and unknown codes 0)."""
    return case({stage: i for i, stage in enumerate(FUNNEL)}, value=column, else_=0)


def _last_lost_moves(s: AsyncSession, deal_ids: Any) -> Any:
    """(deal_id, from_stage) of each deal's last move to ``lost``, as a subquery."""
    dsc = DealStageChange
    q = select(dsc.deal_id, dsc.from_stage).where(dsc.to_stage == "lost", dsc.deal_id.in_(deal_ids))
    if _is_postgres(s):
        q = q.ext(distinct_on(dsc.deal_id)).order_by(dsc.deal_id, dsc.at.desc(), dsc.id.desc())
    else:
        # SQLite takes a bare column from the row that holds the max() of its group.
        q = q.add_columns(func.max(dsc.at)).group_by(dsc.deal_id)
    return q.subquery("last_lost")


def _is_postgres(s: AsyncSession) -> bool:
    return bool(s.get_bind().dialect.name == "postgresql")


def _per_deal(s: AsyncSession, actor: Actor, start: datetime | None, end: datetime | None) -> Any:
    """Per deal: stage, amount, reason, furthest rank reached, stage lost at (PostgreSQL:
    two grouped passes over the stage changes, hash-joined to the deals)."""
    deal_ids = _window(select(Deal.id).where(visible_deals(actor)), Deal.created_at, start, end)
    dsc = DealStageChange
    reached = (
        select(dsc.deal_id, func.max(_rank(dsc.to_stage)).label("reached"))
        .where(dsc.to_stage != "lost", dsc.deal_id.in_(deal_ids))
        .group_by(dsc.deal_id)
        .subquery("reached")
    )
    last_lost = _last_lost_moves(s, deal_ids)
    per_deal = _window(
        select(
            Deal.stage.label("stage"),
            Deal.amount.label("amount"),
            Deal.loss_reason.label("loss_reason"),
            reached.c.reached,
            case(
                (Deal.stage == "lost", func.coalesce(last_lost.c.from_stage, "new")), else_=None
            ).label("lost_at"),
        )
        .outerjoin(reached, reached.c.deal_id == Deal.id)
        .outerjoin(last_lost, last_lost.c.deal_id == Deal.id)
        .where(visible_deals(actor)),
        Deal.created_at,
        start,
        end,
    ).subquery("per_deal")
    return per_deal


def _per_deal_correlated(actor: Actor, start: datetime | None, end: datetime | None) -> Any:
    """The same per deal on SQLite: two correlated lookups in the (deal_id, to_stage, ...)
    covering index per deal (materialised subqueries and their automatic indexes cost
    SQLite twice as much at 50,000 deals)."""
    x, y = aliased(DealStageChange), aliased(DealStageChange)
    reached = (
        select(func.max(_rank(x.to_stage)))
        .where(x.deal_id == Deal.id, x.to_stage != "lost")
        .scalar_subquery()
    )
    lost_from = (
        select(y.from_stage)
        .where(y.deal_id == Deal.id, y.to_stage == "lost")
        .order_by(y.at.desc(), y.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    return _window(
        select(
            Deal.stage.label("stage"),
            Deal.amount.label("amount"),
            Deal.loss_reason.label("loss_reason"),
            reached.label("reached"),
            case((Deal.stage == "lost", func.coalesce(lost_from, "new")), else_=None).label(
                "lost_at"
            ),
        ).where(visible_deals(actor)),
        Deal.created_at,
        start,
        end,
    ).subquery("per_deal")


async def funnel(
    s: AsyncSession, actor: Actor, start: datetime | None, end: datetime | None
) -> dict[str, Any]:
    """Deals created in the window: how far each got, where the lost ones were lost.

    Per deal (index seeks on its stage changes): the furthest stage any change reached
    and, for a lost deal, the stage of its last move to ``lost``; then one GROUP BY
    over those, so the rows that reach Python are bounded by stages x reasons."""
    per_deal = (
        _per_deal(s, actor, start, end)
        if _is_postgres(s)
        else _per_deal_correlated(actor, start, end)
    )
    c = per_deal.c
    rows = await s.execute(
        select(
            c.reached, c.stage, c.lost_at, c.loss_reason, func.count(), func.sum(c.amount)
        ).group_by(c.reached, c.stage, c.lost_at, c.loss_reason)
    )
    order = {stage: i for i, stage in enumerate(FUNNEL)}
    total = won = lost = 0
    won_amount: Decimal | int = 0
    reached_at_least: Counter[int] = Counter()  # furthest rank -> deals
    now_at: Counter[str] = Counter()
    lost_here: dict[str, Counter[str]] = defaultdict(Counter)
    for reached_rank, stage, lost_at, reason, n, amount in rows:
        furthest = max(int(reached_rank or 0), order.get(stage, 0), order.get(lost_at or "new", 0))
        reached_at_least[furthest] += n
        total += n
        now_at[stage] += n
        if stage == "won":
            won += n
            won_amount += Decimal(amount or 0)
        elif stage == "lost":
            lost += n
            lost_here[lost_at or "new"][reason or "—"] += n
    out_stages: list[dict[str, Any]] = []
    for stage in FUNNEL:
        n = sum(k for rank, k in reached_at_least.items() if rank >= order[stage])
        out_stages.append(
            {
                "stage": stage,
                "reached": n,
                "share_of_created": round(n / total, 4) if total else 0.0,
                "now_at_stage": now_at[stage],
                "lost_here": sum(lost_here[stage].values()),
                "loss_reasons": dict(lost_here[stage]),
            }
        )
    for prev, nxt in itertools.pairwise(out_stages):
        prev["conversion_to_next"] = (
            round(nxt["reached"] / prev["reached"], 4) if prev["reached"] else 0.0
        )
    return {
        "deals_created": total,
        "won": won,
        "won_amount": str(won_amount),
        "lost": lost,
        "stages": out_stages,
    }


def _period(s: AsyncSession, column: Any, group: str) -> Any:
    """The period of ``column`` (UTC) computed by the database: ``YYYY-MM-DD`` (day, or
    the week's Monday) or ``YYYY-MM`` (month) on SQLite, its first moment on PostgreSQL
    (see :func:`_period_key`)."""
    if _is_postgres(s):
        # date_trunc is cheap; to_char per row is not: the key is formatted in Python.
        unit = group if group in ("week", "month") else "day"
        return func.date_trunc(unit, func.timezone("UTC", column))
    if group == "month":
        return func.strftime("%Y-%m", column)
    if group == "week":
        return func.date(column, "weekday 0", "-6 days")
    return func.date(column)


def _period_key(value: Any, group: str) -> str:
    if isinstance(value, str):
        return value
    return value.strftime("%Y-%m" if group == "month" else "%Y-%m-%d")


async def requests_per_period(
    s: AsyncSession, actor: Actor, start: datetime | None, end: datetime | None, group: str
) -> dict[str, Any]:
    """Leads (requests) per period and source, and refusals (rejected leads) with reasons:
    one GROUP BY (period, source, status, reason) in the database."""
    period = _period(s, Lead.created_at, group).label("period")

    def grouped(*cols: Any) -> Any:
        return _window(
            select(period, *cols).where(visible_leads(actor)).group_by(period, *cols[:1]),
            Lead.created_at,
            start,
            end,
        )

    periods: dict[str, dict[str, Any]] = {}  # period -> figures
    seen: dict[Any, dict[str, Any]] = {}  # the database's period value -> its figures

    def at(value: Any) -> dict[str, Any]:
        p = seen.get(value)
        if p is None:
            key = _period_key(value, group)
            p = periods.get(key)
            if p is None:
                p = periods[key] = {
                    "period": key,
                    "requests": 0,
                    "by_source": Counter(),
                    "refusals": 0,
                    "refusal_reasons": Counter(),
                    "converted": 0,
                }
            seen[value] = p
        return p

    rejected = Lead.status == "rejected"
    converted = func.sum(case((Lead.status == "converted", 1), else_=0))
    for key, source, n, n_converted in await s.execute(
        grouped(Lead.source, func.count(), converted)
    ):
        p = at(key)
        p["requests"] += n
        p["by_source"][source] += n
        p["converted"] += int(n_converted or 0)
    for key, reason, n in await s.execute(grouped(Lead.loss_reason, func.count()).where(rejected)):
        p = at(key)
        p["refusals"] += n
        p["refusal_reasons"][reason or "—"] += n
    items = []
    for key in sorted(periods):
        p = periods[key]
        items.append(
            {**p, "by_source": dict(p["by_source"]), "refusal_reasons": dict(p["refusal_reasons"])}
        )
    return {"group": group, "items": items}


def _month_key(moment: datetime) -> str:
    return moment.strftime("%Y-%m")


def _month_floor(moment: datetime) -> datetime:
    m = moment.astimezone(UTC)
    return datetime(m.year, m.month, 1, tzinfo=UTC)


def _month_ceil(moment: datetime) -> datetime:
    """The first UTC month start at or after ``moment``."""
    floor = _month_floor(moment)
    if floor == moment:
        return floor
    return datetime(floor.year + floor.month // 12, floor.month % 12 + 1, 1, tzinfo=UTC)


async def _activity(
    s: AsyncSession, ids: Any, start: datetime | None, end: datetime | None
) -> list[tuple[Any, str, str, str | None, int]]:
    """(user, channel, direction, outcome, count) of the interactions in the window.

    Whole UTC months come from ``interaction_monthly`` (a row per user, month and kind,
    kept by triggers); the parts of a month at the window's edges from the interactions,
    through the (user_id, occurred_at, ...) index.  Two years are 24 rows per user and
    kind instead of every interaction."""
    full_from = _month_ceil(start) if start is not None else None
    full_to = _month_floor(end) if end is not None else None
    edges: list[tuple[datetime | None, datetime | None]] = []
    if full_from is not None and full_to is not None and full_from >= full_to:
        edges.append((start, end))  # no whole month inside: the interactions only
        rolled = None
    else:
        rolled = _window(
            select(
                InteractionMonthly.user_id,
                InteractionMonthly.channel,
                InteractionMonthly.direction,
                InteractionMonthly.outcome,
                func.sum(InteractionMonthly.n),
            )
            .where(InteractionMonthly.user_id.in_(ids), InteractionMonthly.n != 0)
            .group_by(
                InteractionMonthly.user_id,
                InteractionMonthly.channel,
                InteractionMonthly.direction,
                InteractionMonthly.outcome,
            ),
            InteractionMonthly.month,
            _month_key(full_from) if full_from is not None else None,
            _month_key(full_to) if full_to is not None else None,
        )
        if start is not None and full_from is not None and start < full_from:
            edges.append((start, full_from))
        if end is not None and full_to is not None and full_to < end:
            edges.append((full_to, end))
    out: list[tuple[Any, str, str, str | None, int]] = []
    if rolled is not None:
        for user_id, channel, direction, outcome, n in await s.execute(rolled):
            out.append((user_id, channel, direction, outcome or None, int(n or 0)))
    for a, b in edges:
        q = _window(
            select(
                Interaction.user_id,
                Interaction.channel,
                Interaction.direction,
                Interaction.outcome,
                func.count(),
            )
            .where(Interaction.user_id.in_(ids))
            .group_by(
                Interaction.user_id, Interaction.channel, Interaction.direction, Interaction.outcome
            ),
            Interaction.occurred_at,
            a,
            b,
        )
        out += [(u, c, d, o, int(n)) for u, c, d, o, n in await s.execute(q)]
    return out


async def manager_activity(
    s: AsyncSession, actor: Actor, start: datetime | None, end: datetime | None
) -> dict[str, Any]:
    """Per manager: leads received/converted/rejected, calls, emails and messages sent,
    tasks done and overdue, deals won."""
    users = list(await s.scalars(select(User).where(visible_users(actor)).order_by(User.id)))
    stats: dict[Any, Counter[str]] = defaultdict(Counter)
    # The visible users as a subquery, never as a list of ids; each count below is one
    # GROUP BY served by an (owner, status, date) or (user, date, ...) index.
    ids = select(User.id).where(visible_users(actor))
    if users:
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
        for user_id, channel, direction, outcome, n in await _activity(s, ids, start, end):
            if channel == "call":
                stats[user_id]["calls"] += n
                if outcome == "answered":
                    stats[user_id]["calls_answered"] += n
            elif direction == "out":
                stats[user_id][f"{channel}_sent"] += n
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
