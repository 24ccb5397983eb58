"""Task reminders and SLA timers: claim what is due, return the notices to publish.

Every function runs inside the caller's transaction and *claims* rows with an atomic
``UPDATE ... WHERE id = ? AND <column> IS NULL`` (after a ``FOR UPDATE SKIP LOCKED``
read on PostgreSQL), so with any number of hub processes each reminder, warning and
escalation is claimed exactly once.  The caller publishes the returned notices after
commit.  Nothing here reads the clock: ``now`` is given (tests inject it).

- a reminder fires when ``remind_at <= now`` (``reminded_at`` set); snoozing resets it;
- an SLA warning goes to the assignee when the time left is at most
  ``min(warning_minutes, warning_fraction * SLA length)`` (``sla_warned_at`` set);
- a breached SLA (``sla_due_at <= now``) is escalated to the supervisor of the
  assignee's team (or of the lead's queue); ``escalated_at`` set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.models import Lead, Task, User

__all__ = [
    "TASK_TITLES",
    "Notice",
    "SlaConfig",
    "claim_reminders",
    "claim_sla_breaches",
    "claim_sla_warnings",
    "local_to_utc",
    "warning_lead",
    "zone",
]

# kind -> (Russian, English)
TASK_TITLES: dict[str, tuple[str, str]] = {
    "call_back": ("Перезвонить", "Call back"),
    "send_offer": ("Отправить коммерческое предложение", "Send the offer"),
    "offer_discount": ("Предложить скидку", "Offer a discount"),
    "check_payment": ("Проверить оплату", "Check the payment"),
    "send_documents": ("Отправить документы", "Send the documents"),
    "meeting": ("Встреча", "Meeting"),
    "first_reply": ("Ответить на заявку", "Reply to the request"),
    "other": ("Задача", "Task"),
}


@dataclass(frozen=True, slots=True)
class SlaConfig:
    warning_minutes: float = 5.0
    warning_fraction: float = 0.2
    batch: int = 200
    mail_from: str | None = None  # set when [smtp] is configured: warnings also by email


@dataclass(frozen=True, slots=True)
class Notice:
    """A live event to publish after commit (``LiveHub.publish`` arguments)."""

    kind: str
    payload: dict[str, Any]
    user_ids: list[int] | None = None
    owner_id: int | None = None
    email: dict[str, Any] | None = field(default=None)


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "Europe/Moscow")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("Europe/Moscow")


def local_to_utc(local: datetime, tz_name: str | None) -> datetime:
    """A wall-clock time in ``tz_name`` (naive) -> aware UTC.  Aware input is kept.

    In a DST gap the time is moved forward by the gap; an ambiguous time takes the
    first occurrence (``fold=0``)."""
    if local.tzinfo is not None:
        return local.astimezone(UTC)
    # fold=0 (PEP 495): the offset before the transition, i.e. a time in the gap lands
    # after it (02:30 -> 03:30) and an ambiguous one is the first of the two.
    return local.replace(tzinfo=zone(tz_name), fold=0).astimezone(UTC)


def warning_lead(created_at: datetime | None, sla_due_at: datetime, cfg: SlaConfig) -> timedelta:
    """How long before the deadline the assignee is warned."""
    lead = timedelta(minutes=cfg.warning_minutes)
    if cfg.warning_fraction > 0 and created_at is not None and sla_due_at > created_at:
        lead = min(lead, (sla_due_at - created_at) * cfg.warning_fraction)
    return lead


def _iso(v: datetime | None) -> str | None:
    return v.astimezone(UTC).isoformat().replace("+00:00", "Z") if v is not None else None


def _titles(kind: str) -> tuple[str, str]:
    return TASK_TITLES.get(kind, TASK_TITLES["other"])


async def _users(s: AsyncSession, ids: Sequence[int | None]) -> dict[int, User]:
    wanted = sorted({i for i in ids if i is not None})
    if not wanted:
        return {}
    return {u.id: u for u in await s.scalars(select(User).where(User.id.in_(wanted)))}


def _task_payload(t: Task, user: User | None) -> dict[str, Any]:
    ru, en = _titles(t.kind)
    tz = zone(user.timezone if user else None)
    due = t.due_at or t.remind_at
    return {
        "task_id": t.id,
        "kind": t.kind,
        "title": t.title,
        "kind_title_ru": ru,
        "kind_title_en": en,
        "assignee_id": t.assignee_id,
        "lead_id": t.lead_id,
        "client_id": t.client_id,
        "deal_id": t.deal_id,
        "due_at": _iso(due),
        "due_local": due.astimezone(tz).replace(tzinfo=None).isoformat() if due else None,
        "timezone": tz.key,
    }


async def _candidates(
    s: AsyncSession, where: Sequence[Any], order: Any, *, postgres: bool, limit: int
) -> list[Task]:
    q = select(Task).where(Task.status == "open", *where).order_by(order, Task.id).limit(limit)
    if postgres:
        q = q.with_for_update(skip_locked=True, of=Task)
    return list(await s.scalars(q))


async def _claim(s: AsyncSession, task_id: int, column: str, now: datetime, **extra: Any) -> bool:
    """Set ``column`` to ``now`` iff it is still NULL; True if this transaction won."""
    col = getattr(Task, column)
    res = await s.execute(
        update(Task)
        .where(Task.id == task_id, col.is_(None))
        .values({column: now, **extra})
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(res, "rowcount", 0) == 1)


async def claim_reminders(
    s: AsyncSession, now: datetime, *, postgres: bool, limit: int = 200
) -> list[Notice]:
    """Open tasks whose ``remind_at`` has come (also those missed while the service was
    down): one ``task_reminder`` for the assignee each."""
    rows = await _candidates(
        s,
        [Task.remind_at.is_not(None), Task.remind_at <= now, Task.reminded_at.is_(None)],
        Task.remind_at,
        postgres=postgres,
        limit=limit,
    )
    users = await _users(s, [t.assignee_id for t in rows])
    out = []
    for t in rows:
        if not await _claim(s, t.id, "reminded_at", now):
            continue
        payload = _task_payload(t, users.get(t.assignee_id) if t.assignee_id else None)
        payload["remind_at"] = _iso(t.remind_at)
        ids = [t.assignee_id] if t.assignee_id else None
        out.append(Notice("task_reminder", payload, ids, t.assignee_id))
    return out


async def claim_sla_warnings(
    s: AsyncSession, now: datetime, cfg: SlaConfig, *, postgres: bool
) -> list[Notice]:
    """SLAs about to be breached: an ``sla_warning`` to the assignee (and an email
    description in ``Notice.email`` when ``cfg.mail_from`` is set)."""
    horizon = now + timedelta(minutes=cfg.warning_minutes)
    rows = await _candidates(
        s,
        [
            Task.sla_due_at.is_not(None),
            Task.sla_due_at > now,
            Task.sla_due_at <= horizon,
            Task.sla_warned_at.is_(None),
            Task.escalated_at.is_(None),
        ],
        Task.sla_due_at,
        postgres=postgres,
        limit=cfg.batch,
    )
    due = [
        t
        for t in rows
        if t.sla_due_at and now >= t.sla_due_at - warning_lead(t.created_at, t.sla_due_at, cfg)
    ]
    users = await _users(s, [t.assignee_id for t in due])
    out = []
    for t in due:
        assert t.sla_due_at is not None
        if not await _claim(s, t.id, "sla_warned_at", now):
            continue
        user = users.get(t.assignee_id) if t.assignee_id else None
        payload = _task_payload(t, user)
        payload["sla_due_at"] = _iso(t.sla_due_at)
        payload["minutes_left"] = round((t.sla_due_at - now).total_seconds() / 60, 1)
        email = None
        if cfg.mail_from and user is not None and user.email:
            ru, en = _titles(t.kind)
            email = {
                "to": [user.email],
                "key": f"sla-warning-{t.id}-{int(t.sla_due_at.timestamp())}",
                "subject": f"SLA: {t.title} — {payload['minutes_left']} мин / min",
                "text": (
                    f"Срок по задаче «{t.title}» ({ru}) истекает {payload['sla_due_at']}.\n"
                    f"The SLA of the task “{t.title}” ({en}) ends at {payload['sla_due_at']}."
                ),
            }
        ids = [t.assignee_id] if t.assignee_id else None
        out.append(Notice("sla_warning", payload, ids, t.assignee_id, email))
    return out


async def _supervisors(s: AsyncSession, teams: set[str]) -> dict[str, list[int]]:
    if not teams:
        return {}
    out: dict[str, list[int]] = {}
    for uid, team in await s.execute(
        select(User.id, User.team)
        .where(User.role == "supervisor", User.active.is_(True), User.team.in_(sorted(teams)))
        .order_by(User.id)
    ):
        if team:
            out.setdefault(team, []).append(uid)
    return out


async def claim_sla_breaches(
    s: AsyncSession, now: datetime, *, postgres: bool, limit: int = 200
) -> list[Notice]:
    """Breached SLAs: ``sla_breached`` to the team's supervisor(s) (the admins see every
    event; with no supervisor it is left to them), ``escalated_at`` set."""
    rows = await _candidates(
        s,
        [Task.sla_due_at.is_not(None), Task.sla_due_at <= now, Task.escalated_at.is_(None)],
        Task.sla_due_at,
        postgres=postgres,
        limit=limit,
    )
    users = await _users(s, [t.assignee_id for t in rows])
    lead_ids = sorted({t.lead_id for t in rows if t.lead_id is not None})
    queues: dict[int, str | None] = {}
    if lead_ids:
        rows_q = await s.execute(select(Lead.id, Lead.queue).where(Lead.id.in_(lead_ids)))
        queues = {i: q for i, q in rows_q}
    teams: dict[int, str | None] = {}
    for t in rows:
        user = users.get(t.assignee_id) if t.assignee_id else None
        queue = queues.get(t.lead_id) if t.lead_id else None
        teams[t.id] = (user.team if user else None) or queue
    sups = await _supervisors(s, {v for v in teams.values() if v})
    out = []
    for t in rows:
        assert t.sla_due_at is not None
        warned = t.sla_warned_at or now
        if not await _claim(s, t.id, "escalated_at", now, sla_warned_at=warned):
            continue
        team = teams.get(t.id)
        payload = _task_payload(t, users.get(t.assignee_id) if t.assignee_id else None)
        payload["sla_due_at"] = _iso(t.sla_due_at)
        payload["overdue_minutes"] = round((now - t.sla_due_at).total_seconds() / 60, 1)
        payload["team"] = team
        sup_ids = sups.get(team, []) if team else []
        payload["supervisor_ids"] = sup_ids
        out.append(Notice("sla_breached", payload, sup_ids, t.assignee_id))
    return out
