"""The pure engine: ``decide`` picks a rule and a user (or a queue); ``explain`` says why.

No I/O and no clock: ``now`` comes in, the new round-robin pointers go out in the
:class:`Decision`.  Same inputs give the same output.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import replace
from datetime import date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .conditions import Clock
from .model import Decision, Member, Roster, RoutingContext, RoutingState
from .ruleset import DEFAULT_RULE_ID, CompiledAssign, CompiledRule, RuleSet, Target

__all__ = ["check_now", "decide", "rule_clock"]

_NO_STATE = RoutingState()
ANSWERED_RULE_ID = "answered_calls"

_SKIP_EN = {
    "inactive": "inactive",
    "absent": "absent",
    "off_hours": "outside working hours",
    "at_capacity": "at capacity",
    "missing": "not in the roster",
    "zero_weight": "weight 0",
}
_SKIP_RU = {
    "inactive": "неактивен",
    "absent": "отсутствует",
    "off_hours": "вне рабочего времени",
    "at_capacity": "нет свободной ёмкости",
    "missing": "нет в списке сотрудников",
    "zero_weight": "вес 0",
}

LocalNow = tuple[date, int, int]  # (local date, weekday, minute)


class _Clocks:
    """Local date/weekday/minute per time zone, computed once per decision."""

    __slots__ = ("cache", "fallback", "now")

    def __init__(self, now: datetime, fallback: ZoneInfo) -> None:
        self.now = now
        self.fallback = fallback  # for a member whose time zone is not a known IANA name
        self.cache: dict[str, LocalNow] = {}

    def get(self, tz: str) -> LocalNow:
        got = self.cache.get(tz)
        if got is None:
            try:
                zone = ZoneInfo(tz)
            except (ZoneInfoNotFoundError, ValueError, TypeError):
                zone = self.fallback
            local = self.now.astimezone(zone)
            got = (local.date(), local.weekday(), local.hour * 60 + local.minute)
            self.cache[tz] = got
        return got


def _unavailable(m: Member, clocks: _Clocks) -> str | None:
    """Why ``m`` cannot take a lead now, or ``None`` if they can."""
    if not m.active:
        return "inactive"
    cap = m.capacity
    if cap is not None and m.load >= cap:
        return "at_capacity"
    if m.absences or m._wh is not None:
        day, wd, minute = clocks.get(m.timezone)
        if m.absences and m.absent_on(day):
            return "absent"
        if not m.working_at(wd, minute):
            return "off_hours"
    return None


def _build_pool(target: Target, roster: Roster) -> tuple[Member, ...]:
    if target.kind == "team":
        roles = target.roles or frozenset({"manager"})
        members = roster.by_team.get(target.team or "", ())
        return tuple(m for m in members if m.role in roles)
    if target.kind == "role":
        return roster.by_role.get(target.role or "", ())
    if target.kind in ("user", "users"):
        by_id = roster.by_id
        return tuple(by_id[i] for i in target.user_ids if i in by_id)
    return roster.members


def _pool(target: Target, roster: Roster) -> tuple[tuple[Member, ...], list[int]]:
    """The target's members sorted by user id, and their ids (cached on the roster)."""
    got = roster.pools.get(target.pool_key)
    if got is None:
        members = _build_pool(target, roster)
        got = (members, [m.user_id for m in members])
        roster.pools[target.pool_key] = got
    return got


@lru_cache(maxsize=256)
def _weighted_sequence(weights: tuple[tuple[int, int], ...]) -> tuple[int, ...]:
    """One cycle of sum(weights) user ids, each user ``weight`` times, evenly spread:
    the k-th turn of a user of weight w sits at (k + 1/2) / w (Sainte-Laguë order)."""
    slots = sorted(((k + 0.5) / w, uid) for uid, w in weights for k in range(w))
    return tuple(uid for _, uid in slots)


class _Pick:
    __slots__ = ("pointer", "skipped", "user")

    def __init__(self) -> None:
        self.user: Member | None = None
        self.pointer: tuple[str, int] | None = None
        self.skipped: list[tuple[int, str]] = []


def _choose(
    target: Target,
    ctx: RoutingContext,
    roster: Roster,
    clocks: _Clocks,
    state: RoutingState,
) -> _Pick:
    pick = _Pick()
    skipped = pick.skipped
    if target.strategy == "answered_by":
        uid = ctx.answered_by
        if uid is None:
            skipped.append((0, "not_answered"))
            return pick
        m = roster.by_id.get(uid)
        if m is None or (target.kind != "answerer" and uid not in _pool(target, roster)[1]):
            skipped.append((uid, "missing"))
        elif not m.active:
            skipped.append((uid, "inactive"))
        else:
            pick.user = m  # they took the call: working hours and absences do not apply
        return pick
    if target.strategy == "sticky_owner":
        owner_id = ctx.client.owner_id if ctx.client is not None else None
        if owner_id is None:
            skipped.append((0, "no_owner"))
            return pick
        m = roster.by_id.get(owner_id)
        if m is None or (target.kind != "owner" and owner_id not in _pool(target, roster)[1]):
            skipped.append((owner_id, "missing"))
            return pick
        if not m.active:
            skipped.append((owner_id, "inactive"))
        elif m.absences and m.absent_on(clocks.get(m.timezone)[0]):
            skipped.append((owner_id, "absent"))
        else:
            pick.user = m
        return pick

    pool, ids = _pool(target, roster)
    if target.kind in ("user", "users"):
        missing = set(target.user_ids) - set(ids)
        skipped.extend((uid, "missing") for uid in sorted(missing))
    if not pool:
        return pick
    key = target.pool_key

    if target.strategy == "weighted":
        seq = _weighted_sequence(tuple((m.user_id, m.weight) for m in pool if m.weight > 0))
        avail: dict[int, bool] = {}
        for m in pool:
            why = _unavailable(m, clocks) if m.weight > 0 else "zero_weight"
            avail[m.user_id] = why is None
            if why is not None:
                skipped.append((m.user_id, why))
        if seq and len(skipped) < len(pool):
            total = len(seq)
            counter = state.pointers.get(key, 0) % total
            for i in range(total):
                uid = seq[(counter + i) % total]
                if avail[uid]:
                    pick.user = roster.by_id[uid]
                    pick.pointer = (key, (counter + i + 1) % total)
                    break
        return pick

    n = len(pool)
    last = state.pointers.get(key)
    start = 0 if last is None else bisect_right(ids, last) % n
    if target.strategy == "round_robin":
        for i in range(n):
            m = pool[(start + i) % n]
            why = _unavailable(m, clocks)
            if why is None:
                pick.user = m
                pick.pointer = (key, m.user_id)
                return pick
            skipped.append((m.user_id, why))
        return pick

    # least_loaded: fewest open leads + tasks; ties go to the next in round-robin order.
    best: Member | None = None
    for i in range(n):
        m = pool[(start + i) % n]
        why = _unavailable(m, clocks)
        if why is not None:
            skipped.append((m.user_id, why))
        elif best is None or m.load < best.load:
            best = m
    if best is not None:
        pick.user = best
        pick.pointer = (key, best.user_id)
    return pick


def _skips(skipped: list[tuple[int, str]], table: dict[str, str], more: str) -> str:
    if not skipped:
        return ""
    shown = ", ".join(
        (f"#{uid} {table.get(why, why)}" if uid else table.get(why, why))
        for uid, why in skipped[:5]
    )
    if len(skipped) > 5:
        shown += f", {more} {len(skipped) - 5}"
    return f" ({shown})"


_NO_OWNER = {"no_owner": "no owner", "not_answered": "nobody answered"}
_NO_OWNER_RU = {"no_owner": "нет владельца", "not_answered": "никто не ответил"}


def _assign(
    assign: CompiledAssign,
    rule: CompiledRule | None,
    ctx: RoutingContext,
    roster: Roster,
    clocks: _Clocks,
    state: RoutingState,
    why_en: str,
    why_ru: str,
) -> Decision:
    steps_en: list[str] = []
    steps_ru: list[str] = []
    en_table = {**_SKIP_EN, **_NO_OWNER}
    ru_table = {**_SKIP_RU, **_NO_OWNER_RU}
    for target in assign.chain:
        pick = _choose(target, ctx, roster, clocks, state)
        user = pick.user
        if user is not None:
            who = f"{user.name} (#{user.user_id})" if user.name else f"#{user.user_id}"
            skip_en = _skips(pick.skipped, en_table, "and")
            skip_ru = _skips(pick.skipped, ru_table, "и ещё")
            steps_en.append(
                f"{target.text_en} chose {who}" + (f"; skipped{skip_en}" * bool(skip_en))
            )
            steps_ru.append(
                f"{target.text_ru} — выбран {who}" + (f"; пропущены{skip_ru}" * bool(skip_ru))
            )
            return _decision(
                rule,
                assign,
                target.strategy,
                user.user_id,
                None,
                pick,
                roster,
                why_en,
                why_ru,
                steps_en,
                steps_ru,
            )
        skip_en = _skips(pick.skipped, en_table, "and")
        skip_ru = _skips(pick.skipped, ru_table, "и ещё")
        steps_en.append(f"{target.text_en}: nobody available{skip_en}")
        steps_ru.append(f"{target.text_ru}: никого нет{skip_ru}")
    steps_en.append(f"queued for '{assign.queue}'")
    steps_ru.append(f"в очередь «{assign.queue}»")
    return _decision(
        rule, assign, "queue", None, assign.queue, None, roster, why_en, why_ru, steps_en, steps_ru
    )


def _decision(
    rule: CompiledRule | None,
    assign: CompiledAssign,
    strategy: str,
    user_id: int | None,
    queue: str | None,
    pick: _Pick | None,
    roster: Roster,
    why_en: str,
    why_ru: str,
    steps_en: list[str],
    steps_ru: list[str],
) -> Decision:
    pointer = pick.pointer if pick is not None else None
    return Decision(
        user_id=user_id,
        queue=queue,
        rule_id=rule.id if rule is not None else DEFAULT_RULE_ID,
        strategy=strategy,
        reason=f"{why_en}; " + "; then ".join(steps_en),
        reason_ru=f"{why_ru}; " + "; затем ".join(steps_ru),
        priority=rule.priority if rule else None,
        tags=rule.tags if rule else (),
        sla_minutes=rule.sla_minutes if rule else None,
        task=rule.task if rule else None,
        pointer_updates={pointer[0]: pointer[1]} if pointer else {},
        supervisor_id=roster.supervisors.get(queue) if queue is not None else None,
    )


def rule_clock(rules: RuleSet, now: datetime) -> Clock:
    local = now.astimezone(rules.tz)
    return local.weekday(), local.hour * 60 + local.minute


def check_now(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware datetime (UTC)")


def decide(
    context: RoutingContext,
    rules: RuleSet,
    roster: Roster,
    now: datetime,
    state: RoutingState = _NO_STATE,
) -> Decision:
    """First enabled rule whose conditions hold assigns; otherwise the rule set's default."""
    check_now(now)
    clock = rule_clock(rules, now)
    clocks = _Clocks(now, rules.tz)
    for rule in rules.rules:
        if not rule.enabled:
            continue
        cond = rule.cond
        if cond is None or cond.test(context, clock):
            cond_en = cond.text_en if cond is not None else "always"
            cond_ru = cond.text_ru if cond is not None else "всегда"
            return _assign(
                rule.assign,
                rule,
                context,
                roster,
                clocks,
                state,
                f"rule '{rule.id}' matched: {cond_en}",
                f"сработало правило «{rule.id}»: {cond_ru}",
            )
    return _assign(
        rules.default_assign,
        None,
        context,
        roster,
        clocks,
        state,
        "no rule matched, default assignment",
        "ни одно правило не подошло, назначение по умолчанию",
    )


def decide_answered(
    context: RoutingContext,
    rules: RuleSet,
    roster: Roster,
    now: datetime,
    state: RoutingState = _NO_STATE,
) -> Decision:
    """Who gets a new caller's lead once the call is answered: the rule set's
    ``answered_calls`` chain (default ``strategy: answered_by``, the operator who answered,
    ``context.answered_by``).  A decision with ``user_id`` ``None`` keeps the lead where the
    rules put it when the call started ringing."""
    check_now(now)
    d = _assign(
        rules.answered_assign,
        None,
        context,
        roster,
        _Clocks(now, rules.tz),
        state,
        "answered call",
        "звонок принят",
    )
    return replace(d, rule_id=ANSWERED_RULE_ID, priority=None, tags=(), sla_minutes=None)
