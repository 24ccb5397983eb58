"""Small builders shared by the routing_rules tests."""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any

from routing_rules import Member, RoutingContext, RuleSet, parse_rules

# Wednesday 2026-11-25 10:00 Moscow (07:00 UTC).
WED_10_MSK = datetime(2026, 11, 25, 7, 0, tzinfo=UTC)

NINE_TO_SIX = {d: [(time(9), time(18))] for d in range(5)}


def ctx(**kw: Any) -> RoutingContext:
    kw.setdefault("channel", "webform")
    kw.setdefault("kind", "form_submitted")
    return RoutingContext(**kw)


def managers(n: int, team: str = "sales", **kw: Any) -> list[Member]:
    return [Member(i, f"m{i}", teams=(team,), **kw) for i in range(1, n + 1)]


def rules(body: str) -> RuleSet:
    return parse_rules("version: 1\ntimezone: Europe/Moscow\n" + body, "test.yaml")


def one_rule(when: str, assign: str = "{team: sales}") -> RuleSet:
    return rules(f"rules:\n  - id: r\n    when: {when}\n    assign: {assign}\n")
