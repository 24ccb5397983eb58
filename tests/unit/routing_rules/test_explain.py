"""explain(): per rule, matched or not and why; the selected one carries the decision."""

from __future__ import annotations

from routing_rules import Roster, RoutingState, explain

from ._helpers import WED_10_MSK, ctx, managers, rules

RS = rules(
    "rules:\n"
    "  - id: calls\n    when: {channel: call, time: '09:00-18:00'}\n    assign: {team: sales}\n"
    "  - id: yandex\n    when: {not: {utm_source: google}, weekday: wed}\n"
    "    assign: {team: sales}\n"
    "  - id: later\n    assign: {team: sales}\n"
)


def test_explain_says_which_rule_matches_and_why() -> None:
    out = explain(
        ctx(utm={"source": "yandex"}),
        RS,
        Roster(managers(2)),
        WED_10_MSK,
        RoutingState({"team:sales": 1}),
    )
    assert [(e["rule_id"], e["matched"], e["selected"]) for e in out] == [
        ("calls", False, False),
        ("yandex", True, True),
        ("later", True, False),
        ("default", True, False),
    ]
    assert out[0]["why"] == "failed: channel is one of: call (got 'webform')"
    assert out[0]["why_ru"] == "не выполнено: канал: call (значение 'webform')"
    kids = out[1]["conditions"]["children"]
    assert kids[1]["condition"] == "NOT utm_source is one of: google"
    assert kids[1]["children"][0] == {
        "condition": "utm_source is one of: google",
        "condition_ru": "utm_source: google",
        "result": False,
        "actual": "yandex",
    }
    assert kids[0]["actual"] == "wed"
    decision = out[1]["decision"]
    assert (decision["rule_id"], decision["user_id"]) == ("yandex", 2)
    assert decision["pointer_updates"] == {"team:sales": 2}
    assert "decision" not in out[2]


def test_explain_reports_time_and_falls_to_default() -> None:
    out = explain(
        ctx(channel="call", utm={"source": "google"}),
        RS.__class__(
            rules=RS.rules[:2], default_assign=RS.default_assign, timezone=RS.timezone, tz=RS.tz
        ),
        Roster(managers(1)),
        WED_10_MSK,
    )
    assert out[0]["matched"] is True  # 10:00 Moscow
    assert out[0]["conditions"]["children"][1]["actual"] == "10:00"
    assert out[1]["why"] == "failed: NOT utm_source is one of: google (got 'google')"
    assert out[1]["matched"] is False
