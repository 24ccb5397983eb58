"""A compiled, immutable rule set: what :func:`routing_rules.decide` runs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from .conditions import Cond, compile_condition
from .model import TaskSpec
from .schema import AssignSpec, FileSpec, RuleSpec, TargetSpec

__all__ = ["DEFAULT_RULE_ID", "CompiledAssign", "CompiledRule", "RuleSet", "Target"]

DEFAULT_RULE_ID = "default"

_STRATEGY_EN = {
    "round_robin": "round robin",
    "least_loaded": "least loaded",
    "weighted": "weighted",
    "sticky_owner": "client's owner",
    "answered_by": "who answered the call",
}
_STRATEGY_RU = {
    "round_robin": "по кругу",
    "least_loaded": "наименее загруженному",
    "weighted": "по весам",
    "sticky_owner": "владельцу клиента",
    "answered_by": "ответившему на звонок",
}


_BARE = ("owner", "answerer")  # targets without a pool of their own


@dataclass(frozen=True, slots=True)
class Target:
    """One link of an assignment chain: a pool of users and a strategy."""

    kind: str  # user | users | team | role | owner
    strategy: str
    user_ids: tuple[int, ...] = ()
    team: str | None = None
    role: str | None = None
    roles: frozenset[str] | None = None  # filter for team pools
    pool_key: str = ""
    text_en: str = ""
    text_ru: str = ""

    @classmethod
    def build(cls, spec: TargetSpec, lists: Mapping[str, list[int]]) -> Target:
        strategy = spec.strategy
        roles = frozenset(spec.roles) if spec.roles else None
        ids: tuple[int, ...]
        if spec.user is not None:
            kind, ids, key = "user", (spec.user,), f"user:{spec.user}"
            en, ru = f"user #{spec.user}", f"пользователь #{spec.user}"
        elif spec.users is not None:
            ids = tuple(sorted(set(spec.users)))
            kind, key = "users", "users:" + ",".join(map(str, ids))
            en = ru = "users " + ", ".join(f"#{i}" for i in ids)
            ru = "пользователи " + ", ".join(f"#{i}" for i in ids)
        elif spec.list_ is not None:
            ids = tuple(sorted(set(lists[spec.list_])))
            kind, key = "users", f"list:{spec.list_}"
            en, ru = f"list '{spec.list_}'", f"список «{spec.list_}»"
        elif spec.team is not None:
            ids, kind = (), "team"
            roles = roles or frozenset({"manager"})
            key = f"team:{spec.team}" + (
                "" if roles == {"manager"} else "/" + ",".join(sorted(roles))
            )
            en, ru = f"team '{spec.team}'", f"команда «{spec.team}»"
        elif spec.role is not None:
            ids, kind, key = (), "role", f"role:{spec.role}"
            en, ru = f"all active {spec.role}s", f"все активные ({spec.role})"
        elif strategy == "answered_by":  # without a pool
            ids, kind, key = (), "answerer", "answerer"
            en, ru = "the operator who answered", "оператор, ответивший на звонок"
        else:  # sticky_owner without a pool
            ids, kind, key = (), "owner", "owner"
            en, ru = "the client's owner", "владелец клиента"
        if strategy == "weighted":
            key = "weighted:" + key
        return cls(
            kind=kind,
            strategy=strategy,
            user_ids=ids,
            team=spec.team,
            role=spec.role,
            roles=roles,
            pool_key=key,
            text_en=f"{_STRATEGY_EN[strategy]} among {en}" if kind not in _BARE else en,
            text_ru=f"{_STRATEGY_RU[strategy]}: {ru}" if kind not in _BARE else ru,
        )


@dataclass(frozen=True, slots=True)
class CompiledAssign:
    chain: tuple[Target, ...]
    queue: str

    @classmethod
    def build(cls, spec: AssignSpec, lists: Mapping[str, list[int]]) -> CompiledAssign:
        chain = (Target.build(spec, lists), *(Target.build(f, lists) for f in spec.fallback))
        queue = spec.queue or next((t.team for t in chain if t.team), None) or "unassigned"
        return cls(chain=chain, queue=queue)


@dataclass(frozen=True, slots=True)
class CompiledRule:
    id: str
    cond: Cond | None
    assign: CompiledAssign
    priority: str | None = None
    tags: tuple[str, ...] = ()
    sla_minutes: int | None = None
    task: TaskSpec | None = None
    enabled: bool = True
    description: str | None = None

    @classmethod
    def build(cls, spec: RuleSpec, lists: Mapping[str, list[int]]) -> CompiledRule:
        task = None
        if spec.task is not None:
            due = spec.task.due_in_minutes
            if due is None:
                due = spec.sla_minutes
            task = TaskSpec(spec.task.kind, spec.task.title, due)
        return cls(
            id=spec.id,
            cond=compile_condition(spec.when) if spec.when is not None else None,
            assign=CompiledAssign.build(spec.assign, lists),
            priority=spec.priority,
            tags=tuple(spec.tags),
            sla_minutes=spec.sla_minutes,
            task=task,
            enabled=spec.enabled,
            description=spec.description,
        )


_DEFAULT_ASSIGN = AssignSpec.model_validate({"role": "manager", "strategy": "round_robin"})
_ANSWERED_ASSIGN = AssignSpec.model_validate({"strategy": "answered_by"})


@dataclass(frozen=True, slots=True)
class RuleSet:
    rules: tuple[CompiledRule, ...]
    default_assign: CompiledAssign
    timezone: str = "Europe/Moscow"
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("Europe/Moscow"), compare=False)
    filename: str = "<default>"
    digest: str = ""
    # A new caller's lead once the call is answered (``decide_answered``).
    answered_assign: CompiledAssign = field(
        default_factory=lambda: CompiledAssign.build(_ANSWERED_ASSIGN, {})
    )

    @classmethod
    def from_spec(cls, spec: FileSpec, filename: str = "<string>", digest: str = "") -> RuleSet:
        rules = tuple(CompiledRule.build(r, spec.lists) for r in spec.rules)
        default = CompiledAssign.build(spec.default or _DEFAULT_ASSIGN, spec.lists)
        answered = CompiledAssign.build(spec.answered_calls or _ANSWERED_ASSIGN, spec.lists)
        return cls(
            answered_assign=answered,
            rules=rules,
            default_assign=default,
            timezone=spec.timezone,
            tz=ZoneInfo(spec.timezone),
            filename=filename,
            digest=digest,
        )

    @classmethod
    def default(cls) -> RuleSet:
        """No file: round robin among all active managers."""
        return cls.from_spec(FileSpec(), filename="<default>")

    def __len__(self) -> int:
        return len(self.rules)
