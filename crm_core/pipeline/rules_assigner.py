"""Assignment by the routing rules (``routing_rules.decide``), inside the lead's transaction.

All assignments take one lock row (``FOR UPDATE`` on PostgreSQL; on SQLite the writer
lock serializes them), read the round-robin pointers and the managers' loads (counters,
see ``load_counters.py``; the users themselves are cached until their version moves),
decide, and write the pointers back before commit: under any number of concurrent new
leads, across hub processes, round robin stays even.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, time
from typing import Any

import structlog
from sqlalchemy import bindparam, literal, select, union_all
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.events import InboundEvent
from crm_core.models import Client, RoutingCounter, RoutingPointer, User, utcnow
from crm_core.pipeline.assign import Assignment, lock_pointer
from crm_core.pipeline.load_counters import Counters, parse_counters, read_counters
from crm_core.routing_context import context_from_event
from crm_core.services.segments import segments_of
from routing_rules import Absence, ClientInfo, Member, Roster, RoutingState, RuleSet, decide
from routing_rules.conditions import Cond

__all__ = ["RosterCache", "RulesAssigner", "build_roster", "member_of"]

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


class RosterCache:
    """The members as the rules engine sees them, rebuilt only when the ``users``
    version in ``routing_counters`` moved (any insert, update or delete of a user, by
    any process, bumps it in that writer's transaction); the loads are read fresh from
    the same table every time (a member is copied only when its load changed)."""

    def __init__(self) -> None:
        self.version = 0
        self.members: list[Member] = []
        self.supervisors: dict[str, int] = {}

    async def roster(self, s: AsyncSession, counters: Counters | None = None) -> Roster:
        version, loads = counters if counters is not None else await read_counters(s)
        if version == 0 or version != self.version:
            users = list(await s.scalars(select(User).order_by(User.id)))
            self.members = [member_of(u) for u in users]
            self.supervisors = {
                u.team: u.id for u in users if u.role == "supervisor" and u.team and u.active
            }
            self.version = version
        self.members = [
            m if m.load == (n := loads.get(m.user_id, 0)) else replace(m, load=n)
            for m in self.members
        ]
        return Roster(list(self.members), dict(self.supervisors))


async def build_roster(s: AsyncSession, cache: RosterCache | None = None) -> Roster:
    """Every user with their load: open leads (new, in progress) they own plus open
    tasks assigned to them, kept as counters in the same transaction as the lead or
    task (``routing_counters``, migration 0007), not recounted per event."""
    return await (cache or RosterCache()).roster(s)


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


# The round-robin pointers and the counters (loads, users version) in one read.
_POINTERS_AND_COUNTERS: Any = union_all(
    select(literal(0), RoutingPointer.key, RoutingPointer.last_user_id).where(
        RoutingPointer.key != LOCK_KEY
    ),
    select(literal(1), RoutingCounter.key, RoutingCounter.n),
)


def _pointer_upsert(postgres: bool) -> Any:
    """Insert or move a pointer in one statement (the transaction holds the lock); built
    once, run with ``key``, ``user_id`` and ``at``."""
    insert = postgresql.insert if postgres else sqlite.insert
    stmt = insert(RoutingPointer).values(
        key=bindparam("key"), last_user_id=bindparam("user_id"), updated_at=bindparam("at")
    )
    return stmt.on_conflict_do_update(
        index_elements=[RoutingPointer.key],
        set_={"last_user_id": stmt.excluded.last_user_id, "updated_at": stmt.excluded.updated_at},
    )


class _TxnCache:
    """What one transaction already read: the lock is held, pointers and loads are known."""

    __slots__ = ("loads", "members", "pointers", "supervisors", "txn")

    def __init__(self, txn: Any, roster: Roster, pointers: dict[str, int]) -> None:
        self.txn = txn
        self.members = {m.user_id: m for m in roster.members}
        self.supervisors = dict(roster.supervisors)
        self.pointers = pointers
        self.loads: dict[int, int] = {}

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
        self.rosters = RosterCache()
        self._save_pointer = _pointer_upsert(postgres)

    def invalidate(self) -> None:
        self._cache = None

    async def _state(self, s: AsyncSession) -> _TxnCache:
        txn = s.sync_session.get_transaction()
        if self._cache is not None and self._cache.txn is txn and txn is not None:
            return self._cache
        if self.postgres:  # serializes assignments (on SQLite the writer lock does)
            await lock_pointer(s, LOCK_KEY, postgres=True)
        pointers: dict[str, int] = {}
        counters: list[tuple[str, int]] = []
        for src, key, n in await s.execute(_POINTERS_AND_COUNTERS):
            if src == 1:
                counters.append((key, n))
            elif n is not None:
                pointers[key] = int(n)
        roster = await self.rosters.roster(s, parse_counters(counters))
        self._cache = _TxnCache(txn, roster, pointers)
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
            await s.execute(self._save_pointer, {"key": key, "user_id": value, "at": utcnow()})
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
