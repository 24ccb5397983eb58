"""Assignment by the routing rules (``routing_rules.decide``), inside the lead's transaction.

All assignments take one lock row (``FOR UPDATE`` on PostgreSQL, the writer lock on
SQLite), read the round-robin pointers and the managers' loads, decide, and write the
pointers back before commit: under any number of concurrent new leads, across hub
processes, round robin stays even.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, time
from typing import Any

import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.events import InboundEvent
from crm_core.models import (
    Client,
    Lead,
    RoutingPointer,
    Task,
    User,
    utcnow,
)
from crm_core.pipeline.assign import Assignment, lock_pointer
from crm_core.routing_context import context_from_event
from crm_core.services.segments import segments_of
from routing_rules import Absence, ClientInfo, Member, Roster, RoutingState, RuleSet, decide
from routing_rules.conditions import Cond

__all__ = ["RulesAssigner", "build_roster", "member_of"]

log = structlog.get_logger("crmhub.routing")
LOCK_KEY = "__assignment_lock__"


def _time(v: str) -> time:
    return time.fromisoformat(v)


def member_of(u: User, load: int = 0) -> Member:
    """A user as the rules engine sees them (bad stored hours are ignored, not fatal)."""
    hours: dict[int, list[tuple[time, time]]] = {}
    for day, windows in (u.working_hours or {}).items():
        try:
            hours[int(day)] = [(_time(a), _time(b)) for a, b in windows]
        except (TypeError, ValueError):
            log.warning("bad_working_hours", user_id=u.id)
    absences = []
    for item in u.absences or []:
        try:
            a, b = item if isinstance(item, list | tuple) else (item["start"], item["end"])
            absences.append(Absence(date.fromisoformat(a), date.fromisoformat(b)))
        except (TypeError, ValueError, KeyError):
            log.warning("bad_absence", user_id=u.id)
    return Member(
        user_id=u.id,
        name=u.name,
        role=u.role,
        active=u.active,
        teams=(u.team,) if u.team else (),
        timezone=u.timezone or "Europe/Moscow",
        working_hours=hours,
        absences=tuple(absences),
        capacity=u.capacity,
        weight=max(1, u.weight or 1),
        load=load,
    )


async def build_roster(s: AsyncSession) -> Roster:
    users = list(await s.scalars(select(User).order_by(User.id)))
    loads: dict[int | None, int] = {}
    # Open leads and tasks per owner: seeks on the (status, owner) indexes of migration
    # 0002 read only the open rows' index entries, however many closed ones there are.
    for owner, n in await s.execute(
        select(Lead.owner_id, func.count())
        .where(Lead.status.in_(("new", "in_progress")), Lead.owner_id.is_not(None))
        .group_by(Lead.owner_id)
    ):
        loads[owner] = loads.get(owner, 0) + int(n)
    for owner, n in await s.execute(
        select(Task.assignee_id, func.count())
        .where(Task.status == "open", Task.assignee_id.is_not(None))
        .group_by(Task.assignee_id)
    ):
        loads[owner] = loads.get(owner, 0) + int(n)
    supervisors = {u.team: u.id for u in users if u.role == "supervisor" and u.team and u.active}
    return Roster([member_of(u, loads.get(u.id, 0)) for u in users], supervisors)


async def _client_info(
    s: AsyncSession, client: Client | None, with_segments: bool = True
) -> ClientInfo | None:
    """The client as the rules see it; its segments (manual and by rules, one query
    each) only when some rule tests ``client_segment``."""
    if client is None:
        return None
    names: tuple[str, ...] = ()
    if with_segments:
        found = await segments_of(s, [client.id])
        names = tuple(name for _, name in found[client.id])
    return ClientInfo(
        id=client.id,
        kind=client.kind,
        segment=names[0] if names else None,
        status=client.status,
        owner_id=client.owner_id,
        segments=names,
    )


def _uses_segments(rules: RuleSet) -> bool:
    """Does any rule test ``client_segment``?"""
    stack: list[Cond] = [r.cond for r in rules.rules if r.cond is not None]
    while stack:
        c = stack.pop()
        if c.key == "client_segment":
            return True
        stack.extend(c.children)
    return False


class _TxnCache:
    """What one transaction already read: the lock is held, pointers and loads are known."""

    __slots__ = ("loads", "members", "pointers", "rows", "supervisors", "txn")

    def __init__(self, txn: Any, roster: Roster, pointers: dict[str, int]) -> None:
        self.txn = txn
        self.members = {m.user_id: m for m in roster.members}
        self.supervisors = dict(roster.supervisors)
        self.pointers = pointers
        self.loads: dict[int, int] = {}
        self.rows: list[Any] = []

    def roster(self) -> Roster:
        return Roster(list(self.members.values()), self.supervisors)

    def assigned(self, user_id: int) -> None:
        m = self.members.get(user_id)
        if m is not None:
            self.members[user_id] = replace(m, load=m.load + 1)


class RulesAssigner:
    """A batch of events processed in one transaction reads the lock, the pointers and
    the roster once and keeps them current in memory; a rolled-back savepoint (a race
    retry) calls :meth:`invalidate` so the next event reads them again."""

    def __init__(
        self,
        rules: Callable[[], RuleSet],
        *,
        postgres: bool,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.rules = rules
        self.postgres = postgres
        self.clock = clock
        self._cache: _TxnCache | None = None
        self._uses: tuple[RuleSet, bool] | None = None

    def invalidate(self) -> None:
        self._cache = None

    async def _state(self, s: AsyncSession) -> _TxnCache:
        txn = s.sync_session.get_transaction()
        if self._cache is not None and self._cache.txn is txn and txn is not None:
            return self._cache
        await lock_pointer(s, LOCK_KEY, postgres=self.postgres)  # serializes assignments
        rows = list(await s.scalars(select(RoutingPointer).where(RoutingPointer.key != LOCK_KEY)))
        pointers = {p.key: int(p.last_user_id) for p in rows if p.last_user_id is not None}
        self._cache = _TxnCache(txn, await build_roster(s), pointers)
        # Held for the transaction: the session's identity map keeps objects only weakly,
        # so without this ``s.get(RoutingPointer, key)`` below would read the row again.
        self._cache.rows = rows
        return self._cache

    async def assign(
        self, s: AsyncSession, event: InboundEvent, client: Client | None
    ) -> Assignment:
        cache = await self._state(s)
        rules = self.rules()
        if self._uses is None or self._uses[0] is not rules:
            self._uses = (rules, _uses_segments(rules))
        ctx = context_from_event(event, await _client_info(s, client, self._uses[1]))
        now = self.clock()
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        d = decide(ctx, rules, cache.roster(), now, RoutingState(dict(cache.pointers)))
        for key, value in d.pointer_updates.items():
            ptr = await s.get(RoutingPointer, key)
            if ptr is None:
                s.add(RoutingPointer(key=key, last_user_id=value, updated_at=utcnow()))
            else:
                ptr.last_user_id = value
                ptr.updated_at = utcnow()
            cache.pointers[key] = value
        if d.user_id is not None:
            cache.assigned(d.user_id)
        task: dict[str, Any] | None = None
        if d.task is not None:
            task = {
                "kind": d.task.kind,
                "title": d.task.title,
                "due_in_minutes": d.task.due_in_minutes,
            }
        return Assignment(
            user_id=d.user_id,
            rule_id=d.rule_id,
            reason=d.reason if not d.reason_ru else f"{d.reason} / {d.reason_ru}",
            queue=d.queue,
            priority=d.priority,
            tags=tuple(d.tags),
            sla_minutes=d.sla_minutes,
            task=task,
        )
