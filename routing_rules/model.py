"""Plain data the engine works on: context, roster, state and the decision.

Everything here is immutable and built by the core; the engine never does I/O.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, time
from types import MappingProxyType
from typing import Any

__all__ = [
    "Absence",
    "ClientInfo",
    "Decision",
    "Member",
    "Roster",
    "RoutingContext",
    "RoutingState",
    "TaskSpec",
]

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """The known client an event belongs to (``None`` in the context when new)."""

    id: int
    kind: str = "person"  # company | person
    segment: str | None = None  # one segment (older callers); ``segments`` holds them all
    status: str | None = None
    owner_id: int | None = None
    segments: tuple[str, ...] = ()  # every segment the client is in (manual and by rules)

    @property
    def all_segments(self) -> tuple[str, ...]:
        if self.segment is not None and self.segment not in self.segments:
            return (self.segment, *self.segments)
        return self.segments


@dataclass(frozen=True, slots=True)
class RoutingContext:
    """What the rules may look at.  Built by ``crm_core.routing_context``."""

    channel: str
    kind: str = ""
    source: str | None = None
    utm: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    phone: str | None = None  # E.164
    country: str | None = None  # ISO 3166 alpha-2
    region: str | None = None  # Russian region, in Russian ("Москва")
    email_domain: str | None = None
    subject: str | None = None
    text: str | None = None
    client: ClientInfo | None = None
    is_new_client: bool = True
    called_number: str | None = None  # DID, E.164 or as the PBX gives it
    answered_by: int | None = None  # user id of the operator who answered the call


@dataclass(frozen=True, slots=True)
class Absence:
    """A vacation or sick leave, both dates inclusive, in the member's local dates."""

    start: date
    end: date


_Window = tuple[int, int]  # minutes since local midnight, [start, end)


@dataclass(frozen=True, slots=True)
class Member:
    """A user who can receive leads.  ``load`` = open leads + tasks (filled by the core).

    ``working_hours`` maps a weekday (0 = Monday) to local ``(start, end)`` windows;
    an empty mapping means always working.  A window whose end is before its start
    runs past midnight (``22:00-06:00``).  ``capacity`` ``None`` = unlimited.
    """

    user_id: int
    name: str = ""
    role: str = "manager"  # manager | supervisor | admin
    active: bool = True
    teams: tuple[str, ...] = ()
    timezone: str = "Europe/Moscow"
    working_hours: Mapping[int, Sequence[tuple[time, time]]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    absences: tuple[Absence, ...] = ()
    capacity: int | None = None
    weight: int = 1
    load: int = 0
    _wh: tuple[tuple[_Window, ...], ...] | None = field(
        init=False, repr=False, compare=False, default=None
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "teams", tuple(self.teams))
        object.__setattr__(self, "absences", tuple(self.absences))
        if self.working_hours:
            days: list[tuple[_Window, ...]] = []
            for wd in range(7):
                wins = self.working_hours.get(wd, ())
                days.append(
                    tuple((s.hour * 60 + s.minute, e.hour * 60 + e.minute) for s, e in wins)
                )
            object.__setattr__(self, "_wh", tuple(days))

    def working_at(self, weekday: int, minute: int) -> bool:
        """Is ``minute`` (since local midnight) on local ``weekday`` inside working hours?"""
        wh = self._wh
        if wh is None:
            return True
        for start, end in wh[weekday]:
            if start <= end:
                if start <= minute < end:
                    return True
            elif minute >= start:
                return True
        for start, end in wh[weekday - 1]:  # an overnight window begun yesterday
            if start > end and minute < end:
                return True
        return False

    def absent_on(self, day: date) -> bool:
        return any(a.start <= day <= a.end for a in self.absences)


class Roster:
    """The members plus the team -> supervisor user id map, indexed once."""

    __slots__ = ("by_id", "by_role", "by_team", "members", "pools", "supervisors")

    def __init__(
        self, members: Sequence[Member] = (), supervisors: Mapping[str, int] | None = None
    ) -> None:
        ordered = tuple(sorted(members, key=lambda m: m.user_id))
        self.members: tuple[Member, ...] = ordered
        self.supervisors: Mapping[str, int] = dict(supervisors or {})
        self.by_id: dict[int, Member] = {m.user_id: m for m in ordered}
        by_team: dict[str, list[Member]] = {}
        by_role: dict[str, list[Member]] = {}
        for m in ordered:
            by_role.setdefault(m.role, []).append(m)
            for t in m.teams:
                by_team.setdefault(t, []).append(m)
        self.by_team: dict[str, tuple[Member, ...]] = {k: tuple(v) for k, v in by_team.items()}
        self.by_role: dict[str, tuple[Member, ...]] = {k: tuple(v) for k, v in by_role.items()}
        # Filled by the engine: pool key -> (members sorted by id, their ids).
        self.pools: dict[str, tuple[tuple[Member, ...], list[int]]] = {}

    def __len__(self) -> int:
        return len(self.members)

    def __iter__(self) -> Iterator[Member]:
        return iter(self.members)

    def __repr__(self) -> str:
        return f"Roster({len(self.members)} members, {len(self.supervisors)} supervisors)"


@dataclass(frozen=True, slots=True)
class RoutingState:
    """Round-robin pointers read from the database: pool key -> last user id chosen.

    Keys starting with ``weighted:`` hold a position counter instead of a user id.
    """

    pointers: Mapping[str, int] = field(default_factory=lambda: _EMPTY)


@dataclass(frozen=True, slots=True)
class TaskSpec:
    kind: str
    title: str
    due_in_minutes: int | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """Who gets the event and why.

    Exactly one of ``user_id`` / ``queue`` is set (``queue`` = the team name when
    nobody is available).  ``pointer_updates`` must be written back by the core in
    the same transaction as the assignment.
    """

    user_id: int | None
    queue: str | None
    rule_id: str
    strategy: str
    reason: str
    reason_ru: str
    priority: str | None = None
    tags: tuple[str, ...] = ()
    sla_minutes: int | None = None
    task: TaskSpec | None = None
    pointer_updates: Mapping[str, int] = field(default_factory=lambda: _EMPTY)
    supervisor_id: int | None = None  # of the queue's team, to notify

    def to_json(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "queue": self.queue,
            "rule_id": self.rule_id,
            "strategy": self.strategy,
            "reason": self.reason,
            "reason_ru": self.reason_ru,
            "priority": self.priority,
            "tags": list(self.tags),
            "sla_minutes": self.sla_minutes,
            "task": None
            if self.task is None
            else {
                "kind": self.task.kind,
                "title": self.task.title,
                "due_in_minutes": self.task.due_in_minutes,
            },
            "pointer_updates": dict(self.pointer_updates),
            "supervisor_id": self.supervisor_id,
        }
