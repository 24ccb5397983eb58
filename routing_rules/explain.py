"""``explain``: for ``crmhub rules explain`` — which rule matches, and why each did not."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from .conditions import Clock
from .engine import check_now, decide, rule_clock
from .model import Roster, RoutingContext, RoutingState
from .ruleset import DEFAULT_RULE_ID, RuleSet

__all__ = ["explain"]

_NO_STATE = RoutingState()


def explain(
    context: RoutingContext,
    rules: RuleSet,
    roster: Roster,
    now: datetime,
    state: RoutingState = _NO_STATE,
) -> list[dict[str, Any]]:
    """For each rule: did it match and why; the first match is ``selected`` and carries
    the decision.  A last entry ``default`` is selected when no rule matched."""
    check_now(now)
    clock = rule_clock(rules, now)
    out: list[dict[str, Any]] = []
    selected = False
    for rule in rules.rules:
        cond = rule.cond
        matched = rule.enabled and (cond is None or bool(cond.test(context, clock)))
        entry: dict[str, Any] = {
            "rule_id": rule.id,
            "enabled": rule.enabled,
            "matched": matched,
            "selected": matched and not selected,
            "description": rule.description,
            "conditions": cond.explain(context, clock) if cond is not None else None,
        }
        if not rule.enabled:
            entry["why"], entry["why_ru"] = "rule is disabled", "правило отключено"
        elif matched:
            entry["why"], entry["why_ru"] = "all conditions hold", "все условия выполнены"
        else:
            entry["why"], entry["why_ru"] = _failed(cond, context, clock)
        if entry["selected"]:
            selected = True
            entry["decision"] = decide(context, rules, roster, now, state).to_json()
        out.append(entry)
    default_entry: dict[str, Any] = {
        "rule_id": DEFAULT_RULE_ID,
        "enabled": True,
        "matched": True,
        "selected": not selected,
        "description": "used when no rule matches",
        "conditions": None,
        "why": "fallback when no rule matches",
        "why_ru": "если ни одно правило не подошло",
    }
    if not selected:
        default_entry["decision"] = decide(context, rules, roster, now, state).to_json()
    out.append(default_entry)
    return out


def _failed(cond: Any, ctx: RoutingContext, clock: Clock) -> tuple[str, str]:
    """The first leaf (depth first) that made the rule fail, in both languages."""
    failing: list[Any] = []

    def walk(c: Any, want: bool) -> None:
        if failing:
            return
        ok = bool(c.test(ctx, clock))
        if ok == want:
            return
        if c.key == "all":
            for ch in c.children:
                walk(ch, want)
        if not failing:
            failing.append(c)

    walk(cond, True)
    c = failing[0] if failing else cond
    actual: Callable[[RoutingContext], Any] | None = c.getter
    if c.key == "not" and actual is None:
        actual = c.children[0].getter
    got = f" (got {actual(ctx)!r})" if actual is not None else ""
    got_ru = f" (значение {actual(ctx)!r})" if actual is not None else ""
    return f"failed: {c.text_en}{got}", f"не выполнено: {c.text_ru}{got_ru}"
