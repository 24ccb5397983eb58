"""Strategy ``answered_by`` (issue 10 item 15): a new caller's lead belongs to who answered."""

from __future__ import annotations

from typing import Any

import pytest

from routing_rules import (
    Member,
    Roster,
    RoutingContext,
    RulesError,
    RuleSet,
    decide,
    decide_answered,
)

from ._helpers import NINE_TO_SIX, WED_10_MSK, ctx, managers, rules


def call(**kw: Any) -> RoutingContext:
    return ctx(channel="call", kind="call_answered", **kw)


def test_default_for_answered_calls_is_who_answered() -> None:
    roster = Roster(managers(3))
    d = decide_answered(call(answered_by=2), RuleSet.default(), roster, WED_10_MSK)
    assert d.user_id == 2 and d.rule_id == "answered_calls" and d.strategy == "answered_by"
    assert "answered call" in d.reason and "m2 (#2)" in d.reason
    assert "звонок принят" in d.reason_ru and "ответивший на звонок" in d.reason_ru


def test_who_answered_is_chosen_outside_working_hours_and_at_capacity() -> None:
    """They took the call: hours and capacity are no reason to give the lead elsewhere."""
    busy = [Member(1, "a", teams=("sales",), working_hours=NINE_TO_SIX, capacity=0, load=9)]
    night = WED_10_MSK.replace(hour=22)
    d = decide_answered(call(answered_by=1), RuleSet.default(), Roster(busy), night)
    assert d.user_id == 1


@pytest.mark.parametrize(
    ("answered_by", "members", "why"),
    [
        (None, managers(2), "nobody answered"),
        (7, managers(2), "not in the roster"),
        (1, [Member(1, "a", active=False)], "inactive"),
    ],
)
def test_nobody_to_give_it_to_keeps_the_rules_choice(
    answered_by: int | None, members: list[Member], why: str
) -> None:
    d = decide_answered(
        call(answered_by=answered_by), RuleSet.default(), Roster(members), WED_10_MSK
    )
    assert d.user_id is None and why in d.reason


def test_answered_calls_section_with_a_pool_and_fallback() -> None:
    rs = rules(
        "answered_calls:\n  team: sales\n  strategy: answered_by\n"
        "  fallback: [{team: sales, strategy: round_robin}]\n"
    )
    roster = Roster([*managers(2), Member(5, "other", teams=("support",))])
    assert decide_answered(call(answered_by=2), rs, roster, WED_10_MSK).user_id == 2
    # answered by someone outside the sales team: the sales round robin takes it
    d = decide_answered(call(answered_by=5), rs, roster, WED_10_MSK)
    assert d.user_id in (1, 2) and "not in the roster" in d.reason


def test_in_an_ordinary_rule_it_falls_back_while_the_call_rings() -> None:
    rs = rules(
        "rules:\n  - id: calls\n    when: {channel: call}\n    assign:\n"
        "      strategy: answered_by\n      fallback: [{team: sales}]\n"
    )
    d = decide(ctx(channel="call", kind="call_started"), rs, Roster(managers(2)), WED_10_MSK)
    assert d.user_id == 1 and "nobody answered" in d.reason
    d = decide(call(answered_by=2), rs, Roster(managers(2)), WED_10_MSK)
    assert d.user_id == 2


def test_schema_names_the_strategy() -> None:
    with pytest.raises(RulesError) as err:
        rules("answered_calls: {strategy: answerd_by}\n")
    assert "answered_by" in str(err.value)
