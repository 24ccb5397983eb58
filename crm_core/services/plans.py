"""Sales plans: per manager and per team, for a month (``2026-12``) or a quarter
(``2026-Q4``): amount won, deals won, calls made and meetings held.

Admins plan for everyone; a supervisor for their team (its members and the team
itself); a manager reads their own plan only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.access import Actor, visible_users
from crm_core.models import SalesPlan, User
from crm_core.services.common import Forbidden, Invalid, audit

__all__ = [
    "FIGURES",
    "Period",
    "get_plans",
    "parse_period",
    "plan_subjects",
    "put_plans",
]

FIGURES = ("amount", "deals", "calls", "meetings")
MAX_FIGURE = 10**9
MAX_AMOUNT = Decimal("1e12")
_PERIOD = re.compile(r"^(?P<y>\d{4})-(?:(?P<m>\d{2})|Q(?P<q>[1-4]))$", re.ASCII)


@dataclass(frozen=True, slots=True)
class Period:
    """A month or a quarter, as UTC bounds ``[start, end)``."""

    code: str
    start: datetime
    end: datetime

    @property
    def months(self) -> list[str]:
        out = []
        y, m = self.start.year, self.start.month
        while datetime(y, m, 1, tzinfo=UTC) < self.end:
            out.append(f"{y:04d}-{m:02d}")
            y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        return out


def parse_period(raw: str | None, field: str = "period") -> Period:
    """``2026-12`` (a month) or ``2026-Q4`` (a quarter); 422 naming ``field`` otherwise."""
    match = _PERIOD.match((raw or "").strip().upper())
    if match is None or not 2000 <= int(match["y"]) <= 2999:
        raise Invalid(f"{field} must be a month (2026-12) or a quarter (2026-Q4)", field)
    year = int(match["y"])
    if match["q"]:
        first = (int(match["q"]) - 1) * 3 + 1
        months = 3
        code = f"{year:04d}-Q{match['q']}"
    else:
        first = int(match["m"])
        if not 1 <= first <= 12:
            raise Invalid(f"{field} must be a month (2026-12) or a quarter (2026-Q4)", field)
        months = 1
        code = f"{year:04d}-{first:02d}"
    start = datetime(year, first, 1, tzinfo=UTC)
    last = first + months
    end = datetime(year + (last - 1) // 12, (last - 1) % 12 + 1, 1, tzinfo=UTC)
    return Period(code, start, end)


def _plannable(actor: Actor) -> Any:
    """The users whose plans ``actor`` sees: active managers and supervisors."""
    return (
        select(User)
        .where(
            visible_users(actor), User.active.is_(True), User.role.in_(("manager", "supervisor"))
        )
        .order_by(User.team.is_(None), User.team, User.name, User.id)
    )


async def plan_subjects(s: AsyncSession, actor: Actor) -> tuple[list[User], list[str]]:
    """The users and the teams ``actor`` sees plans of (a manager: themselves, no team)."""
    users = list(await s.scalars(_plannable(actor)))
    if actor.is_admin:
        teams = sorted({u.team for u in users if u.team})
    elif actor.is_supervisor and actor.team:
        teams = [actor.team]
    else:
        teams = []
    return users, teams


def _figures(row: SalesPlan | None) -> dict[str, Any]:
    if row is None:
        return dict.fromkeys(FIGURES)
    return {
        "amount": None if row.amount is None else str(row.amount),
        "deals": row.deals,
        "calls": row.calls,
        "meetings": row.meetings,
    }


async def get_plans(s: AsyncSession, actor: Actor, period: Period) -> dict[str, Any]:
    """The plan grid of ``period``: a row per visible manager and per visible team
    (empty figures where nothing is planned)."""
    users, teams = await plan_subjects(s, actor)
    subjects = [f"user:{u.id}" for u in users] + [f"team:{t}" for t in teams]
    rows: dict[str, SalesPlan] = {}
    if subjects:
        # Bounded by the roster (the users and teams on the page), never by the base.
        for row in await s.scalars(
            select(SalesPlan).where(
                SalesPlan.period == period.code, SalesPlan.subject.in_(subjects)
            )
        ):
            rows[row.subject] = row
    return {
        "period": period.code,
        "from": period.start.isoformat(),
        "to": period.end.isoformat(),
        "can_edit": actor.is_admin or (actor.is_supervisor and actor.team is not None),
        "users": [
            {
                "user_id": u.id,
                "name": u.name,
                "team": u.team,
                "role": u.role,
                "can_edit": _may_plan_user(actor, u),
                **_figures(rows.get(f"user:{u.id}")),
            }
            for u in users
        ],
        "teams": [
            {"team": t, "can_edit": _may_plan_team(actor, t), **_figures(rows.get(f"team:{t}"))}
            for t in teams
        ],
    }


def _may_plan_user(actor: Actor, user: User) -> bool:
    if actor.is_admin:
        return True
    return actor.is_supervisor and actor.team is not None and user.team == actor.team


def _may_plan_team(actor: Actor, team: str) -> bool:
    return actor.is_admin or (actor.is_supervisor and actor.team == team)


def _figure(raw: Any, name: str, field: str) -> Any:
    if raw is None or raw == "":
        return None
    if name == "amount":
        try:
            value = Decimal(str(raw))
        except (InvalidOperation, ValueError):
            raise Invalid(f"{field} must be a number", field) from None
        if not value.is_finite() or value < 0 or value >= MAX_AMOUNT:
            raise Invalid(f"{field} must be between 0 and 10^12", field)
        return value.quantize(Decimal("0.01"))
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise Invalid(f"{field} must be a whole number", field)
    if not 0 <= raw <= MAX_FIGURE:
        raise Invalid(f"{field} must be between 0 and {MAX_FIGURE}", field)
    return raw


async def put_plans(
    s: AsyncSession, actor: Actor, period: Period, items: list[dict[str, Any]]
) -> dict[str, Any]:
    """Set the plans of ``period``: each item names ``user_id`` or ``team`` and gives the
    figures; a figure ``null`` is not planned; all four ``null`` removes the plan.  Every
    item is checked before anything is written."""
    if not (actor.is_admin or actor.is_supervisor):
        raise Forbidden("only admins and supervisors set plans", "items")
    wanted: dict[str, tuple[int | None, str | None, dict[str, Any]]] = {}
    for i, item in enumerate(items):
        where = f"items.{i}"
        user_id, team = item.get("user_id"), item.get("team")
        if (user_id is None) == (team is None):
            raise Invalid(f"{where}: give either user_id or team", f"{where}.user_id")
        figures = {k: _figure(item.get(k), k, f"{where}.{k}") for k in FIGURES}
        if user_id is not None:
            user = await s.get(User, user_id)
            if user is None or user.role not in ("manager", "supervisor"):
                raise Invalid(f"user {user_id} is not a manager", f"{where}.user_id")
            if not _may_plan_user(actor, user):
                raise Forbidden(f"you may not plan for user {user_id}", f"{where}.user_id")
            subject = f"user:{user_id}"
        else:
            team = str(team).strip()
            if not team or len(team) > 100 or not team.isprintable():
                raise Invalid(f"{where}.team must be a team name", f"{where}.team")
            if not _may_plan_team(actor, team):
                raise Forbidden(f"you may not plan for team {team}", f"{where}.team")
            subject = f"team:{team}"
        if subject in wanted:
            raise Invalid(f"{where}: {subject} is given twice", where)
        wanted[subject] = (user_id, team if user_id is None else None, figures)
    existing: dict[str, SalesPlan] = {}
    if wanted:
        for row in await s.scalars(
            select(SalesPlan)
            .where(SalesPlan.period == period.code, SalesPlan.subject.in_(list(wanted)))
            .with_for_update()
        ):
            existing[row.subject] = row
    for subject, (user_id, team, figures) in wanted.items():
        found = existing.get(subject)
        before = _figures(found)
        if all(v is None for v in figures.values()):
            if found is not None:
                await s.delete(found)
                await audit(
                    s,
                    actor,
                    "delete",
                    "sales_plan",
                    found.id,
                    {"period": period.code, "subject": subject, "changes": _changes(before, {})},
                )
            continue
        row = found or SalesPlan(period=period.code, subject=subject, user_id=user_id, team=team)
        s.add(row)
        for k, v in figures.items():
            setattr(row, k, v)
        row.updated_by = actor.user_id
        await s.flush()
        changes = _changes(before, _figures(row))
        if changes:
            await audit(
                s,
                actor,
                "update" if found is not None else "create",
                "sales_plan",
                row.id,
                {"period": period.code, "subject": subject, "changes": changes},
            )
    await s.flush()
    return await get_plans(s, actor, period)


def _changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {k: [before.get(k), after.get(k)] for k in FIGURES if before.get(k) != after.get(k)}
