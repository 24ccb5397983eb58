"""Sales analytics: the funnel (conversion and losses by stage), requests and refusals per
period, and manager activity.  Every figure is limited to what the actor may see."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Date,
    Float,
    Integer,
    and_,
    case,
    func,
    literal,
    null,
    select,
    text,
    union_all,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by, distinct_on
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from crm_core.access import (
    Actor,
    visible_clients,
    visible_deals,
    visible_leads,
    visible_tasks,
    visible_users,
)
from crm_core.models import (
    Client,
    Deal,
    DealStageChange,
    Interaction,
    InteractionMonthly,
    Lead,
    LeadDaily,
    Pipeline,
    PipelineStage,
    Segment,
    Task,
    User,
)
from crm_core.services.pipelines import in_pipeline, load_funnel
from crm_core.services.plans import FIGURES, Period, get_plans, plan_subjects
from crm_core.stages import OPEN_STAGES, STAGES, Stage

__all__ = [
    "SALES_GROUPS",
    "funnel",
    "manager_activity",
    "plan_fact",
    "promising_clients",
    "requests_per_period",
    "sales",
]


def _window(q: Any, column: Any, start: datetime | str | None, end: datetime | str | None) -> Any:
    if start is not None:
        q = q.where(column >= start)
    if end is not None:
        q = q.where(column < end)
    return q


def _rank(column: Any, stages: list[str]) -> Any:
    """A stage's place in the funnel (first open stage 0 ... won last; lost and unknown
    codes 0)."""
    return case({stage: i for i, stage in enumerate(stages)}, value=column, else_=0)


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


async def funnel(
    s: AsyncSession,
    actor: Actor,
    start: datetime | None,
    end: datetime | None,
    pipeline_id: int | None = None,
) -> dict[str, Any]:
    """Deals of one pipeline (the default one if ``pipeline_id`` is None) created in the
    window: how far each got, where the lost ones were lost and why.

    Per deal (index seeks on its stage changes): the furthest stage any change reached
    and, for a lost deal, the stage of its last move to ``lost``; then one GROUP BY
    over those, so the rows that reach Python are bounded by stages x reasons."""
    pf = await load_funnel(s, pipeline_id)
    order_codes = [*pf.open_codes, "won"]
    mine = (visible_deals(actor), in_pipeline(pf.pipeline))
    deal_ids = _window(select(Deal.id).where(*mine), Deal.created_at, start, end)
    dsc = DealStageChange
    reached = (
        select(dsc.deal_id, func.max(_rank(dsc.to_stage, order_codes)).label("reached"))
        .where(dsc.to_stage != "lost", dsc.deal_id.in_(deal_ids))
        .group_by(dsc.deal_id)
        .subquery("reached")
    )
    last_lost = _last_lost_moves(s, deal_ids)
    first = order_codes[0]
    per_deal = _window(
        select(
            Deal.stage.label("stage"),
            Deal.amount.label("amount"),
            Deal.loss_reason.label("loss_reason"),
            Deal.loss_reason_id.label("loss_reason_id"),
            reached.c.reached,
            case(
                (Deal.stage == "lost", func.coalesce(last_lost.c.from_stage, first)), else_=None
            ).label("lost_at"),
        )
        .outerjoin(reached, reached.c.deal_id == Deal.id)
        .outerjoin(last_lost, last_lost.c.deal_id == Deal.id)
        .where(*mine),
        Deal.created_at,
        start,
        end,
    ).subquery("per_deal")
    c = per_deal.c
    rows = await s.execute(
        select(
            c.reached,
            c.stage,
            c.lost_at,
            c.loss_reason,
            c.loss_reason_id,
            func.count(),
            func.sum(c.amount),
        ).group_by(c.reached, c.stage, c.lost_at, c.loss_reason, c.loss_reason_id)
    )
    order = {stage: i for i, stage in enumerate(order_codes)}
    total = won = lost = 0
    won_amount: Decimal = Decimal(0)
    lost_amount: Decimal = Decimal(0)
    reached_at_least: Counter[int] = Counter()  # furthest rank -> deals
    now_at: Counter[str] = Counter()
    lost_here: dict[str, Counter[str]] = defaultdict(Counter)
    lost_amount_here: defaultdict[str, Decimal] = defaultdict(Decimal)
    by_reason: dict[tuple[Any, str], list[Any]] = {}  # (id, name) -> [deals, amount, stages]
    for reached_rank, stage, lost_at, reason, reason_id, n, amount in rows:
        furthest = max(int(reached_rank or 0), order.get(stage, 0), order.get(lost_at or first, 0))
        reached_at_least[furthest] += n
        total += n
        now_at[stage] += n
        if stage == "won":
            won += n
            won_amount += Decimal(amount or 0)
        elif stage == "lost":
            lost += n
            lost_amount += Decimal(amount or 0)
            where = lost_at or first
            lost_here[where][reason or "—"] += n
            lost_amount_here[where] += Decimal(amount or 0)
            entry = by_reason.setdefault((reason_id, reason or "—"), [0, Decimal(0), Counter()])
            entry[0] += n
            entry[1] += Decimal(amount or 0)
            entry[2][where] += n
    out_stages: list[dict[str, Any]] = []
    for stage in order_codes:
        n = sum(k for rank, k in reached_at_least.items() if rank >= order[stage])
        st = pf.stage(stage)
        out_stages.append(
            {
                "stage": stage,
                "label": pf.label(stage, "ru"),
                "label_en": pf.label(stage, "en"),
                "probability": st.probability if st is not None else None,
                "reached": n,
                "share_of_created": round(n / total, 4) if total else 0.0,
                "now_at_stage": now_at[stage],
                "lost_here": sum(lost_here[stage].values()),
                "lost_amount": str(lost_amount_here[stage]),
                "loss_reasons": dict(lost_here[stage]),
            }
        )
    for prev, nxt in itertools.pairwise(out_stages):
        prev["conversion_to_next"] = (
            round(nxt["reached"] / prev["reached"], 4) if prev["reached"] else 0.0
        )
    names_en = {r.id: r.name_en or r.name for r in pf.reasons}
    reasons = [
        {
            "reason_id": rid,
            "reason": name,
            "reason_en": names_en.get(rid, name),
            "lost": n,
            "share_of_lost": round(n / lost, 4) if lost else 0.0,
            "amount": str(amount),
            "by_stage": dict(stages),
        }
        for (rid, name), (n, amount, stages) in sorted(
            by_reason.items(), key=lambda kv: (-kv[1][0], kv[0][1])
        )
    ]
    return {
        "pipeline_id": pf.id,
        "pipeline": pf.pipeline.name,
        "pipeline_en": pf.pipeline.name_en or pf.pipeline.name,
        "deals_created": total,
        "won": won,
        "won_amount": str(won_amount),
        "lost": lost,
        "lost_amount": str(lost_amount),
        "win_rate": round(won / (won + lost), 4) if won + lost else 0.0,
        "stages": out_stages,
        "loss_reasons": reasons,
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


def _day_period(s: AsyncSession, day: Any, group: str) -> Any:
    """The period (as :func:`_period_key` spells it) of a ``YYYY-MM-DD`` column."""
    if group == "month":
        return func.substr(day, 1, 7)
    if group != "week":
        return day
    if _is_postgres(s):
        return func.to_char(func.date_trunc("week", func.cast(day, Date)), "YYYY-MM-DD")
    return func.date(day, "weekday 0", "-6 days")


def _day_floor(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _day_ceil(moment: datetime) -> datetime:
    floor = _day_floor(moment)
    return floor if floor == moment else floor + timedelta(days=1)


async def requests_per_period(
    s: AsyncSession, actor: Actor, start: datetime | None, end: datetime | None, group: str
) -> dict[str, Any]:
    """Leads (requests) per period and source, and refusals (rejected leads) with reasons.

    An admin's whole UTC days come from ``lead_daily`` (kept by triggers on ``leads``:
    a few rows per day however many leads), only the partial days at the edges of the
    window from the leads; anyone else's (a manager's, a team's) is one GROUP BY
    (period, source, status, reason) over their own leads."""
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
                    "refusals_by_source": Counter(),
                    "converted": 0,
                }
            seen[value] = p
        return p

    async def from_leads(lo: datetime | None, hi: datetime | None) -> None:
        period = _period(s, Lead.created_at, group).label("period")

        def grouped(*cols: Any) -> Any:
            return _window(
                select(period, *cols).where(visible_leads(actor)).group_by(period, *cols[:1]),
                Lead.created_at,
                lo,
                hi,
            )

        rejected = Lead.status == "rejected"
        converted = func.sum(case((Lead.status == "converted", 1), else_=0))
        for key, source, n, n_converted in await s.execute(
            grouped(Lead.source, func.count(), converted)
        ):
            p = at(key)
            p["requests"] += n
            p["by_source"][source] += n
            p["converted"] += int(n_converted or 0)
        refusals = grouped(Lead.loss_reason, Lead.source, func.count()).where(rejected)
        for key, reason, source, n in await s.execute(refusals.group_by(Lead.source)):
            p = at(key)
            p["refusals"] += n
            p["refusal_reasons"][reason or "—"] += n
            p["refusals_by_source"][source] += n

    async def from_days(lo: datetime | None, hi: datetime | None) -> None:
        ld = LeadDaily
        keys = (ld.source, ld.refused, ld.reason)
        if group == "day":  # one row per key already: read in key order, no GROUP BY
            q = select(ld.day, *keys, ld.n, ld.converted)
        else:
            period = _day_period(s, ld.day, group).label("period")
            q = select(period, *keys, func.sum(ld.n), func.sum(ld.converted))
            q = q.group_by(period, *keys)
        q = q.where(ld.n > 0)
        if lo is not None:
            q = q.where(ld.day >= lo.strftime("%Y-%m-%d"))
        if hi is not None:
            q = q.where(ld.day < hi.strftime("%Y-%m-%d"))
        for key, source, refused, reason, n, n_converted in await s.execute(q):
            p = at(key)
            n = int(n or 0)
            if refused:
                p["refusals"] += n
                p["refusal_reasons"][reason or "—"] += n
                p["refusals_by_source"][source] += n
            else:
                p["requests"] += n
                p["by_source"][source] += n
                p["converted"] += int(n_converted or 0)

    first = _day_ceil(start) if start is not None else None
    last = _day_floor(end) if end is not None else None
    if not actor.is_admin or (first is not None and last is not None and first >= last):
        await from_leads(start, end)  # not all leads, or no whole day in the window
    else:
        if start is not None and first is not None and start < first:
            await from_leads(start, first)
        await from_days(first, last)
        if end is not None and last is not None and last < end:
            await from_leads(last, end)
    items = []
    for key in sorted(periods):
        p = periods[key]
        if not p["requests"] and not p["refusals"]:
            continue
        items.append(
            {
                **p,
                "by_source": dict(p["by_source"]),
                "refusal_reasons": dict(p["refusal_reasons"]),
                "refusals_by_source": dict(p["refusals_by_source"]),
            }
        )
    return {"group": group, "items": items}


def _response_s(s: AsyncSession) -> Any:
    """Seconds from a lead's creation to its first response (never below 0)."""
    if _is_postgres(s):
        return func.greatest(func.extract("epoch", Lead.first_response_at - Lead.created_at), 0)
    days = func.julianday(Lead.first_response_at) - func.julianday(Lead.created_at)
    return func.max(days * 86400.0, 0)


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
) -> list[tuple[Any, str, str, str | None, int, int]]:
    """(user, channel, direction, outcome, count, talk seconds) of the interactions in
    the window.

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
                func.sum(InteractionMonthly.talk_s),
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
    out: list[tuple[Any, str, str, str | None, int, int]] = []
    if rolled is not None:
        for user_id, channel, direction, outcome, n, talk in await s.execute(rolled):
            out.append((user_id, channel, direction, outcome or None, int(n or 0), int(talk or 0)))
    for a, b in edges:
        q = _window(
            select(
                Interaction.user_id,
                Interaction.channel,
                Interaction.direction,
                Interaction.outcome,
                func.count(),
                func.sum(Interaction.duration_s),
            )
            .where(Interaction.user_id.in_(ids))
            .group_by(
                Interaction.user_id, Interaction.channel, Interaction.direction, Interaction.outcome
            ),
            Interaction.occurred_at,
            a,
            b,
        )
        out += [(u, c, d, o, int(n), int(t or 0)) for u, c, d, o, n, t in await s.execute(q)]
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
        q = _window(
            select(Lead.owner_id, func.count(), func.avg(_response_s(s)))
            .where(
                Lead.owner_id.in_(ids), Lead.first_response_at.is_not(None), visible_leads(actor)
            )
            .group_by(Lead.owner_id),
            Lead.created_at,
            start,
            end,
        )
        for owner, n, avg in await s.execute(q):
            stats[owner]["first_response_n"] += n
            stats[owner]["first_response_avg_s"] = round(float(avg or 0))
        for user_id, channel, direction, outcome, n, talk in await _activity(s, ids, start, end):
            if channel == "call":
                stats[user_id]["calls"] += n
                stats[user_id]["talk_s"] += talk
                if direction == "out":
                    stats[user_id]["calls_out"] += n
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


# --- sales, plan against fact, most promising clients (issue 13) ---------------------

SALES_GROUPS = ("day", "week", "month", "manager", "segment", "season")


def _won(actor: Actor) -> Any:
    return (Deal.stage == "won", Deal.closed_at.is_not(None), visible_deals(actor))


def _part(s: AsyncSession, column: Any, unit: str) -> Any:
    """The UTC year or month (``unit``) of ``column`` as an integer."""
    if _is_postgres(s):
        return func.cast(func.extract(unit, func.timezone("UTC", column)), Integer)
    return func.cast(func.strftime("%Y" if unit == "year" else "%m", column), Integer)


async def sales(
    s: AsyncSession, actor: Actor, start: datetime | None, end: datetime | None, group: str
) -> dict[str, Any]:
    """Won deals (closed in the window) and their amount by period, manager, segment of
    the client or season (month of the year, with a column per year): one GROUP BY."""
    count, total = func.count().label("deals"), func.sum(Deal.amount).label("amount")
    items: list[dict[str, Any]] = []
    years: list[int] = []
    if group in ("day", "week", "month"):
        period = _period(s, Deal.closed_at, group).label("period")
        q = select(period, count, total).where(*_won(actor)).group_by(period)
        merged: dict[str, list[Any]] = {}
        for key, n, amount in await s.execute(_window(q, Deal.closed_at, start, end)):
            k = _period_key(key, group)
            m = merged.setdefault(k, [0, Decimal(0)])
            m[0] += n
            m[1] += Decimal(amount or 0)
        items = [
            {"key": k, "label": k, "deals": n, "amount": str(a)}
            for k, (n, a) in sorted(merged.items())
        ]
    elif group == "manager":
        q = (
            select(Deal.owner_id, User.name, count, total)
            .outerjoin(User, User.id == Deal.owner_id)
            .where(*_won(actor))
            .group_by(Deal.owner_id, User.name)
        )
        rows = await s.execute(_window(q, Deal.closed_at, start, end))
        items = [
            {
                "key": owner,
                "label": name or ("—" if owner is None else f"#{owner}"),
                "deals": n,
                "amount": str(Decimal(amount or 0)),
            }
            for owner, name, n, amount in rows
        ]
        items.sort(key=lambda i: (-Decimal(i["amount"]), str(i["label"])))
    elif group == "segment":
        q = (
            select(Client.segment_id, Segment.name, count, total)
            .join(Client, Client.id == Deal.client_id)
            .outerjoin(Segment, Segment.id == Client.segment_id)
            .where(*_won(actor))
            .group_by(Client.segment_id, Segment.name)
        )
        rows = await s.execute(_window(q, Deal.closed_at, start, end))
        items = [
            {
                "key": seg,
                "label": name or "—",
                "deals": n,
                "amount": str(Decimal(amount or 0)),
            }
            for seg, name, n, amount in rows
        ]
        items.sort(key=lambda i: (-Decimal(i["amount"]), str(i["label"])))
    else:  # season: month of the year across years
        year, month = _part(s, Deal.closed_at, "year"), _part(s, Deal.closed_at, "month")
        q = (
            select(year.label("y"), month.label("m"), count, total)
            .where(*_won(actor))
            .group_by(year, month)
        )
        by_month: dict[int, dict[str, Any]] = {
            m: {"key": m, "label": f"{m:02d}", "deals": 0, "amount": Decimal(0), "by_year": {}}
            for m in range(1, 13)
        }
        seen_years: set[int] = set()
        for y, m, n, amount in await s.execute(_window(q, Deal.closed_at, start, end)):
            row = by_month[int(m)]
            row["deals"] += n
            row["amount"] += Decimal(amount or 0)
            row["by_year"][str(int(y))] = str(Decimal(amount or 0))
            seen_years.add(int(y))
        years = sorted(seen_years)
        items = [{**r, "amount": str(r["amount"])} for r in by_month.values()]
    total_deals = sum(int(i["deals"]) for i in items)
    total_amount = sum((Decimal(i["amount"]) for i in items), Decimal(0))
    out: dict[str, Any] = {
        "group": group,
        "deals": total_deals,
        "amount": str(total_amount),
        "items": items,
    }
    if group == "season":
        out["years"] = [str(y) for y in years]
    return out


async def plan_fact(s: AsyncSession, actor: Actor, period: Period) -> dict[str, Any]:
    """Each visible manager's and team's plan for ``period`` beside the fact: amount and
    deals won (deals closed won in the period), calls made (outbound calls) and meetings
    held (tasks of kind ``meeting`` done in the period).  A team's fact is the sum of its
    members' (their team today)."""
    plans = await get_plans(s, actor, period)
    users, _teams = await plan_subjects(s, actor)
    ids = select(User.id).where(
        visible_users(actor), User.active.is_(True), User.role.in_(("manager", "supervisor"))
    )
    fact: dict[Any, dict[str, Any]] = defaultdict(
        lambda: {"amount": Decimal(0), "deals": 0, "calls": 0, "meetings": 0}
    )
    if users:
        q = _window(
            select(Deal.owner_id, func.count(), func.sum(Deal.amount))
            .where(Deal.owner_id.in_(ids), *_won(actor))
            .group_by(Deal.owner_id),
            Deal.closed_at,
            period.start,
            period.end,
        )
        for owner, n, amount in await s.execute(q):
            fact[owner]["deals"] += n
            fact[owner]["amount"] += Decimal(amount or 0)
        for user_id, channel, direction, _o, n, _t in await _activity(
            s, ids, period.start, period.end
        ):
            if channel == "call" and direction == "out":
                fact[user_id]["calls"] += n
        q = _window(
            select(Task.assignee_id, func.count())
            .where(
                Task.assignee_id.in_(ids),
                Task.kind == "meeting",
                Task.status == "done",
                visible_tasks(actor),
            )
            .group_by(Task.assignee_id),
            Task.closed_at,
            period.start,
            period.end,
        )
        for user_id, n in await s.execute(q):
            fact[user_id]["meetings"] += n
    team_of = {u.id: u.team for u in users}
    team_fact: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"amount": Decimal(0), "deals": 0, "calls": 0, "meetings": 0}
    )
    for uid, f in list(fact.items()):
        team = team_of.get(uid)
        if team:
            for k in FIGURES:
                team_fact[team][k] += f[k]
    items: list[dict[str, Any]] = []
    for row in plans["teams"]:
        items.append(_plan_row("team", None, row["team"], row["team"], row, team_fact[row["team"]]))
    for row in plans["users"]:
        items.append(
            _plan_row("user", row["user_id"], row["team"], row["name"], row, fact[row["user_id"]])
        )
    return {"period": period.code, "from": plans["from"], "to": plans["to"], "items": items}


def _plan_row(
    kind: str, user_id: int | None, team: str | None, name: str, plan: dict[str, Any], f: Any
) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": kind, "user_id": user_id, "team": team, "name": name}
    for k in FIGURES:
        planned = plan.get(k)
        done = f[k]
        out[f"plan_{k}"] = planned
        out[f"fact_{k}"] = str(done) if k == "amount" else int(done)
        p = Decimal(planned) if planned not in (None, "") else None
        out[f"pct_{k}"] = round(float(Decimal(done) / p * 100), 1) if p else None
    return out


# Most promising clients: the score's parts, each capped, in points (docs/analytics.md).
RECENT_DAYS = 30
PROMISING_LIMIT = 10


_RECENT = ("recent", "inbound", "last_at", "calls_out", "calls_answered", "ring_sum", "ring_n")
_OPEN = ("open_rank", "open_stage_id", "open_amount", "open_deals")
_WON = ("won_deals", "won_amount")
_NULLABLE = ("last_at", "ring_sum", "open_stage_id")
# points of a deal at the last open stage before won (a fraction of it per stage)
DEAL_STAGE_POINTS = 25


def _merge_parts(s: AsyncSession, recent: Any, open_deals: Any, won: Any) -> Any:
    """The three per-client parts side by side, one row per client.

    PostgreSQL: full outer joins (hash joins of three small aggregates).  SQLite: a
    UNION ALL and a GROUP BY (its full join of materialized subqueries has no index to
    use and goes quadratic)."""
    r, o, w = recent.c, open_deals.c, won.c
    if _is_postgres(s):
        filled = [
            (part.c[name] if name in _NULLABLE else func.coalesce(part.c[name], 0)).label(name)
            for part, names in ((recent, _RECENT), (open_deals, _OPEN), (won, _WON))
            for name in names
        ]
        joined = recent.join(open_deals, o.client_id == r.client_id, full=True).join(
            won, w.client_id == func.coalesce(r.client_id, o.client_id), full=True
        )
        key = func.coalesce(r.client_id, o.client_id, w.client_id).label("client_id")
        return select(key, *filled).select_from(joined).subquery("per_client")
    every = (*_RECENT, *_OPEN, *_WON)

    def padded(part: Any, names: tuple[str, ...]) -> Any:
        cols = [
            part.c[n] if n in names else (null() if n in _NULLABLE else literal(0)) for n in every
        ]
        return select(part.c.client_id, *(c.label(n) for c, n in zip(cols, every, strict=True)))

    parts = union_all(
        padded(recent, _RECENT), padded(open_deals, _OPEN), padded(won, _WON)
    ).subquery("parts")
    p = parts.c
    merged = [
        (
            func.max(p[n]) if n in ("last_at", "open_rank", "open_stage_id") else func.sum(p[n])
        ).label(n)
        for n in every
    ]
    return select(p.client_id, *merged).group_by(p.client_id).subquery("per_client")


def _cap(x: Any, cap: float) -> Any:
    return case((x > cap, cap), else_=x)


async def promising_clients(
    s: AsyncSession,
    actor: Actor,
    now: datetime,
    limit: int = PROMISING_LIMIT,
    owner_id: int | None = None,
) -> dict[str, Any]:
    """Each visible manager's most promising clients, ranked by a score whose parts are
    shown: recent activity (interactions in the last 30 days, of which inbound), the
    furthest open deal's stage and the open amount, past purchases (won deals), and how
    they answer (share of our calls they answered, seconds to pick up).  The parts are
    three GROUP BYs over the recent interactions and the open and won deals, merged by
    client in the database; the ranking is a window function, so only ``limit`` rows
    per manager leave the database."""
    since = now - timedelta(days=RECENT_DAYS)
    mine = select(Client.id).where(visible_clients(actor))
    if owner_id is not None:
        mine = mine.where(Client.owner_id == owner_id)
    calls_out = and_(Interaction.channel == "call", Interaction.direction == "out")

    def scoped(q: Any, column: Any) -> Any:
        return q if actor.is_admin and owner_id is None else q.where(column.in_(mine))

    # Grouped by ``client_id + 0``: SQLite would otherwise walk the client_id index for
    # the GROUP BY and test every interaction's date; this way it takes the 30 days from
    # the occurred_at index (PostgreSQL plans either way by cost).
    client_key = (Interaction.client_id + 0).label("client_id")
    recent = scoped(
        select(
            client_key,
            func.count().label("recent"),
            func.sum(case((Interaction.direction == "in", 1), else_=0)).label("inbound"),
            func.max(Interaction.occurred_at).label("last_at"),
            func.sum(case((calls_out, 1), else_=0)).label("calls_out"),
            func.sum(case((and_(calls_out, Interaction.outcome == "answered"), 1), else_=0)).label(
                "calls_answered"
            ),
            func.sum(
                case((and_(calls_out, Interaction.outcome == "answered"), Interaction.ring_s))
            ).label("ring_sum"),
            func.sum(
                case(
                    (
                        and_(
                            calls_out,
                            Interaction.outcome == "answered",
                            Interaction.ring_s.is_not(None),
                        ),
                        1,
                    ),
                    else_=0,
                )
            ).label("ring_n"),
        )
        .where(Interaction.occurred_at >= since, Interaction.client_id.is_not(None))
        .group_by(client_key),
        Interaction.client_id,
    ).subquery("recent")
    # A deal's progress is its open stage's place among its own pipeline's open stages
    # (ordered by position): ``DEAL_POINTS * index / open stages``, the fraction of the
    # way to won, so the last stage before won of a three-stage funnel weighs as much as
    # the same place in a seven-stage one.  The stage table is tiny; deals join it by
    # (pipeline, code), a deal without a pipeline counts in the default one.
    default_id = await s.scalar(
        select(Pipeline.id)
        .order_by(Pipeline.is_default.desc(), Pipeline.position, Pipeline.id)
        .limit(1)
    )  # as default_pipeline() finds it, without making one in a read
    ps = PipelineStage
    if default_id is not None:
        stage_rank = (
            select(
                ps.id.label("stage_id"),
                ps.pipeline_id,
                ps.code,
                (
                    (
                        func.row_number().over(
                            partition_by=ps.pipeline_id, order_by=(ps.position, ps.id)
                        )
                        - 1
                    )
                    * DEAL_STAGE_POINTS
                    / func.cast(func.count().over(partition_by=ps.pipeline_id), Float)
                ).label("pts"),
            )
            .where(ps.kind == "open")
            .subquery("stage_rank")
        )
    else:  # a base with no pipeline (emptied by TRUNCATE): the stages of crm_core.stages
        default_id = 0
        stage_rank = union_all(
            *(
                select(
                    func.cast(null(), Integer).label("stage_id"),
                    literal(0).label("pipeline_id"),
                    literal(code).label("code"),
                    literal(DEAL_STAGE_POINTS * i / len(OPEN_STAGES)).label("pts"),
                )
                for i, code in enumerate(OPEN_STAGES)
            )
        ).subquery("stage_rank")
    sr = stage_rank.c
    deal_pts = func.coalesce(sr.pts, 0.0)
    deal_key = (Deal.client_id + 0).label("client_id")  # the stage index, as above
    if _is_postgres(s):
        best_stage = func.array_agg(
            aggregate_order_by(sr.stage_id, deal_pts.desc(), sr.stage_id.asc().nulls_last())
        )[1]
    else:
        # SQLite takes a bare column from the row that holds the (single) max() of its
        # group: the furthest deal's stage.
        best_stage = sr.stage_id
    open_deals = scoped(
        select(
            deal_key,
            func.max(deal_pts).label("open_rank"),
            best_stage.label("open_stage_id"),
            func.sum(func.coalesce(Deal.amount, 0)).label("open_amount"),
            func.count().label("open_deals"),
        )
        .select_from(Deal)
        .outerjoin(
            stage_rank,
            and_(
                sr.pipeline_id == func.coalesce(Deal.pipeline_id, default_id),
                sr.code == Deal.stage,
            ),
        )
        .where(Deal.stage.not_in(("won", "lost")))  # open in any pipeline
        .group_by(deal_key),
        Deal.client_id,
    ).subquery("open_deals")
    won = scoped(
        select(
            deal_key,
            func.count().label("won_deals"),
            func.sum(func.coalesce(Deal.amount, 0)).label("won_amount"),
        )
        .where(Deal.stage == "won")
        .group_by(deal_key),
        Deal.client_id,
    ).subquery("won")
    per_client = _merge_parts(s, recent, open_deals, won)
    c = per_client.c
    pts_activity = _cap(c.recent, 10) * 3 + _cap(c.inbound, 5) * 2
    pts_deal = c.open_rank + _cap(func.cast(c.open_amount, Float) / 100000.0, 20.0)
    pts_purchases = _cap(c.won_deals, 5) * 4
    answer_rate = case(
        (c.calls_out > 0, func.cast(c.calls_answered, Float) / c.calls_out), else_=None
    )
    avg_ring = case((c.ring_n > 0, func.cast(c.ring_sum, Float) / c.ring_n), else_=None)
    pts_answers = func.coalesce(answer_rate * 15, 0) + case((avg_ring <= 10, 5), else_=0)
    score = (pts_activity + pts_deal + pts_purchases + pts_answers).label("score")
    ranked = (
        select(
            Client.owner_id.label("owner_id"),
            Client.id.label("client_id"),
            Client.name.label("client_name"),
            c.recent,
            c.inbound,
            c.last_at,
            c.open_rank,
            c.open_stage_id,
            c.open_amount,
            c.open_deals,
            c.won_deals,
            c.won_amount,
            c.calls_out,
            c.calls_answered,
            answer_rate.label("answer_rate"),
            avg_ring.label("avg_ring_s"),
            pts_activity.label("pts_activity"),
            pts_deal.label("pts_deal"),
            pts_purchases.label("pts_purchases"),
            pts_answers.label("pts_answers"),
            score,
            func.row_number()
            .over(partition_by=Client.owner_id, order_by=(score.desc(), Client.id))
            .label("rank"),
        )
        .join(Client, Client.id == c.client_id)
        .where(Client.owner_id.is_not(None), visible_clients(actor))
    )
    if owner_id is not None:
        ranked = ranked.where(Client.owner_id == owner_id)
    r = ranked.subquery("ranked")
    st = aliased(PipelineStage, name="open_stage")
    q = (
        select(
            r,
            User.name.label("owner_name"),
            st.code.label("stage_code"),
            st.name.label("stage_name"),
            st.name_en.label("stage_name_en"),
            st.pipeline_id.label("stage_pipeline_id"),
        )
        .outerjoin(User, User.id == r.c.owner_id)
        .outerjoin(st, st.id == r.c.open_stage_id)
        .where(r.c.rank <= limit, r.c.score > 0)
        .order_by(User.name, r.c.owner_id, r.c.rank)
    )
    if _is_postgres(s):
        # The planner over-estimates the full joins' rows; above jit_above_cost it would
        # spend seconds compiling a query that runs in milliseconds.
        await s.execute(text("SET LOCAL jit = off"))
    items = []
    for row in (await s.execute(q)).mappings():
        stage = None
        if row["open_deals"] and row["stage_code"] is not None:
            ru = row["stage_name"]
            stage = Stage(row["stage_code"], ru, row["stage_name_en"] or ru)
        elif row["open_deals"]:  # no pipeline in the base: the built-in stages
            place = round(float(row["open_rank"] or 0) / DEAL_STAGE_POINTS * len(OPEN_STAGES))
            stage = STAGES[min(place, len(OPEN_STAGES) - 1)]
        last_at = row["last_at"]
        if isinstance(last_at, str):  # SQLite: max() over a union loses the column type
            last_at = datetime.fromisoformat(last_at).replace(tzinfo=UTC)
        items.append(
            {
                "owner_id": row["owner_id"],
                "owner_name": row["owner_name"],
                "rank": int(row["rank"]),
                "client_id": row["client_id"],
                "client_name": row["client_name"],
                "score": round(float(row["score"] or 0), 1),
                "recent_interactions": int(row["recent"] or 0),
                "inbound": int(row["inbound"] or 0),
                "last_contact_at": last_at.isoformat() if last_at else None,
                "open_deals": int(row["open_deals"] or 0),
                # the furthest open deal's stage (its pipeline's code and names)
                "open_stage": stage.code if stage else None,
                "open_stage_name": stage.ru if stage else None,
                "open_stage_name_en": stage.en if stage else None,
                "open_pipeline_id": row["stage_pipeline_id"] if row["open_deals"] else None,
                "open_amount": str(Decimal(str(row["open_amount"] or 0)).quantize(Decimal("0.01"))),
                "won_deals": int(row["won_deals"] or 0),
                "won_amount": str(Decimal(str(row["won_amount"] or 0)).quantize(Decimal("0.01"))),
                "calls_out": int(row["calls_out"] or 0),
                "answer_rate": None
                if row["answer_rate"] is None
                else round(float(row["answer_rate"]), 4),
                "avg_ring_s": None
                if row["avg_ring_s"] is None
                else round(float(row["avg_ring_s"]), 1),
                "points": {
                    "activity": round(float(row["pts_activity"] or 0), 1),
                    "deal": round(float(row["pts_deal"] or 0), 1),
                    "purchases": round(float(row["pts_purchases"] or 0), 1),
                    "answers": round(float(row["pts_answers"] or 0), 1),
                },
            }
        )
    return {"limit": limit, "recent_days": RECENT_DAYS, "as_of": now.isoformat(), "items": items}
