"""Table-driven tests of assignment: strategies, availability, fallback, queue."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, time

import pytest

from routing_rules import (
    Absence,
    ClientInfo,
    Member,
    Roster,
    RoutingState,
    RuleSet,
    decide,
)

from ._helpers import NINE_TO_SIX, WED_10_MSK, ctx, managers, rules

RR = rules("rules:\n  - id: rr\n    assign: {team: sales, strategy: round_robin}\n")
LL = rules("rules:\n  - id: ll\n    assign: {team: sales, strategy: least_loaded}\n")
WEIGHTED = rules("rules:\n  - id: w\n    assign: {team: sales, strategy: weighted}\n")
STICKY = rules(
    "rules:\n  - id: s\n    assign:\n      strategy: sticky_owner\n"
    "      fallback: [{team: sales, strategy: round_robin}]\n"
)


def run(
    rs: RuleSet, roster: Roster, n: int, state: dict[str, int] | None = None
) -> list[int | None]:
    """n decisions in a row, writing the pointers back like the core does."""
    pointers = dict(state or {})
    out: list[int | None] = []
    for _ in range(n):
        d = decide(ctx(), rs, roster, WED_10_MSK, RoutingState(pointers))
        pointers.update(d.pointer_updates)
        out.append(d.user_id)
    return out


def test_round_robin_cycles_in_user_id_order() -> None:
    assert run(RR, Roster(managers(3)), 7) == [1, 2, 3, 1, 2, 3, 1]


def test_round_robin_continues_after_the_stored_pointer() -> None:
    assert run(RR, Roster(managers(4)), 3, {"team:sales": 2}) == [3, 4, 1]
    # The pointer is a user id, so a removed user does not shift the others.
    assert run(RR, Roster(managers(4)), 2, {"team:sales": 99}) == [1, 2]


def test_round_robin_reports_the_pointer_update() -> None:
    d = decide(ctx(), RR, Roster(managers(3)), WED_10_MSK, RoutingState({"team:sales": 1}))
    assert (d.user_id, dict(d.pointer_updates), d.strategy) == (2, {"team:sales": 2}, "round_robin")


M = Member
UNAVAILABLE: list[tuple[str, Member, str]] = [
    ("inactive", M(1, "a", active=False, teams=("sales",)), "inactive"),
    (
        "absent",
        M(1, "a", teams=("sales",), absences=(Absence(date(2026, 11, 20), date(2026, 11, 30)),)),
        "absent",
    ),
    (
        "off hours",
        M(1, "a", teams=("sales",), working_hours={0: [(time(9), time(18))]}),
        "outside working hours",
    ),
    ("at capacity", M(1, "a", teams=("sales",), capacity=5, load=5), "at capacity"),
]


@pytest.mark.parametrize(
    ("first", "why"), [c[1:] for c in UNAVAILABLE], ids=[c[0] for c in UNAVAILABLE]
)
@pytest.mark.parametrize("rs", [RR, LL, WEIGHTED], ids=["round_robin", "least_loaded", "weighted"])
def test_unavailable_members_are_skipped(rs: RuleSet, first: Member, why: str) -> None:
    roster = Roster([first, M(2, "b", teams=("sales",))])
    d = decide(ctx(), rs, roster, WED_10_MSK)
    assert d.user_id == 2
    assert f"#1 {why}" in d.reason


def test_capacity_below_limit_is_available() -> None:
    roster = Roster([M(1, "a", teams=("sales",), capacity=5, load=4), M(2, "b", teams=("sales",))])
    assert decide(ctx(), RR, roster, WED_10_MSK).user_id == 1


def test_absence_ends_on_its_last_day_inclusive() -> None:
    away = Absence(date(2026, 11, 20), date(2026, 11, 25))
    roster = Roster([M(1, "a", teams=("sales",), absences=(away,)), M(2, "b", teams=("sales",))])
    assert decide(ctx(), RR, roster, WED_10_MSK).user_id == 2  # 25th: still away
    thursday = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)
    assert decide(ctx(), RR, roster, thursday).user_id == 1


# A Berlin manager working 09:00-18:00 and a Vladivostok one: DST switch on 2024-03-31.
BERLIN = M(1, "berlin", teams=("sales",), timezone="Europe/Berlin", working_hours=NINE_TO_SIX)
VLAD = M(2, "vlad", teams=("sales",), timezone="Asia/Vladivostok", working_hours=NINE_TO_SIX)
HOURS: list[tuple[str, datetime, int | None]] = [
    (
        "Fri 07:59 UTC: Berlin 08:59 CET off, Vlad 17:59 on",
        datetime(2024, 3, 29, 7, 59, tzinfo=UTC),
        2,
    ),
    (
        "Fri 08:00 UTC: Berlin 09:00 CET on, Vlad 18:00 off",
        datetime(2024, 3, 29, 8, 0, tzinfo=UTC),
        1,
    ),
    ("Mon 07:00 UTC = 09:00 CEST, Berlin on after DST", datetime(2024, 4, 1, 7, 0, tzinfo=UTC), 1),
    ("Mon 06:59 UTC = 08:59 CEST, Berlin off", datetime(2024, 4, 1, 6, 59, tzinfo=UTC), 2),
    ("Mon 16:30 UTC = 18:30 CEST, both off", datetime(2024, 4, 1, 16, 30, tzinfo=UTC), None),
    ("Sat 00:30 UTC = Sat in Vladivostok, weekend", datetime(2024, 3, 30, 0, 30, tzinfo=UTC), None),
]


@pytest.mark.parametrize(("now", "expected"), [h[1:] for h in HOURS], ids=[h[0] for h in HOURS])
def test_working_hours_in_each_members_time_zone(now: datetime, expected: int | None) -> None:
    d = decide(ctx(), RR, Roster([BERLIN, VLAD]), now)
    assert d.user_id == expected
    assert d.queue == (None if expected else "sales")


def test_overnight_shift_spans_midnight() -> None:
    night = M(
        1, "night", teams=("sales",), timezone="UTC", working_hours={2: [(time(22), time(6))]}
    )  # Wednesday night
    roster = Roster([night])
    assert decide(ctx(), RR, roster, datetime(2026, 11, 25, 23, 0, tzinfo=UTC)).user_id == 1
    assert decide(ctx(), RR, roster, datetime(2026, 11, 26, 5, 59, tzinfo=UTC)).user_id == 1
    assert decide(ctx(), RR, roster, datetime(2026, 11, 26, 6, 0, tzinfo=UTC)).user_id is None
    assert decide(ctx(), RR, roster, datetime(2026, 11, 25, 21, 0, tzinfo=UTC)).user_id is None


LOADS: list[tuple[str, list[tuple[int, int | None]], int]] = [
    ("lowest load", [(5, None), (2, None), (7, None)], 2),
    ("tie goes to lowest id after pointer", [(3, None), (3, None), (4, None)], 1),
    ("full member skipped", [(0, 0), (4, 10), (6, None)], 2),
]


@pytest.mark.parametrize(("loads", "expected"), [c[1:] for c in LOADS], ids=[c[0] for c in LOADS])
def test_least_loaded(loads: list[tuple[int, int | None]], expected: int) -> None:
    roster = Roster(
        [
            M(i, f"m{i}", teams=("sales",), load=ld, capacity=cap)
            for i, (ld, cap) in enumerate(loads, 1)
        ]
    )
    assert decide(ctx(), LL, roster, WED_10_MSK).user_id == expected


def test_least_loaded_ties_rotate_with_the_pointer() -> None:
    assert run(LL, Roster(managers(3)), 4) == [1, 2, 3, 1]


def test_weighted_gives_each_member_its_share_per_cycle() -> None:
    roster = Roster(
        [
            M(1, "a", teams=("sales",), weight=3),
            M(2, "b", teams=("sales",), weight=1),
            M(3, "c", teams=("sales",), weight=0),
        ]
    )
    picks = run(WEIGHTED, roster, 8)
    assert Counter(picks) == {1: 6, 2: 2}
    assert picks[:4].count(2) == 1  # spread, not 1,1,1,2 blocks only by chance


def test_weighted_skips_unavailable_and_keeps_counting() -> None:
    roster = Roster(
        [M(1, "a", teams=("sales",), weight=2), M(2, "b", teams=("sales",), weight=2, active=False)]
    )
    assert run(WEIGHTED, roster, 3) == [1, 1, 1]


STICKY_CASES: list[tuple[str, Member, int]] = [
    ("owner active", M(7, "owner", teams=("other",)), 7),
    ("owner inactive", M(7, "owner", teams=("other",), active=False), 1),
    ("owner absent", M(7, "owner", absences=(Absence(date(2026, 11, 1), date(2026, 12, 1)),)), 1),
    # The owner keeps their client outside working hours and above capacity.
    ("owner off hours", M(7, "owner", working_hours={6: [(time(9), time(10))]}), 7),
    ("owner at capacity", M(7, "owner", capacity=1, load=3), 7),
]


@pytest.mark.parametrize(
    ("owner", "expected"), [c[1:] for c in STICKY_CASES], ids=[c[0] for c in STICKY_CASES]
)
def test_sticky_owner(owner: Member, expected: int) -> None:
    roster = Roster([*managers(2), owner])
    client = ClientInfo(id=1, owner_id=7)
    d = decide(ctx(client=client, is_new_client=False), STICKY, roster, WED_10_MSK)
    assert d.user_id == expected
    assert d.strategy == ("sticky_owner" if expected == 7 else "round_robin")


def test_sticky_owner_without_client_falls_back() -> None:
    d = decide(ctx(), STICKY, Roster(managers(2)), WED_10_MSK)
    assert (d.user_id, d.strategy) == (1, "round_robin")
    assert "no owner" in d.reason


def test_fallback_chain_then_queue_with_supervisor() -> None:
    rs = rules(
        "rules:\n  - id: chain\n    assign:\n      team: sales\n      strategy: least_loaded\n"
        "      fallback:\n        - {users: [10, 11], strategy: round_robin}\n"
        "        - {team: support}\n"
    )
    sales = managers(2, active=False)
    support = [M(20, "s", teams=("support",), capacity=0)]
    roster = Roster([*sales, *support, M(11, "eleven")], supervisors={"sales": 99})
    d = decide(ctx(), rs, roster, WED_10_MSK)
    assert (d.user_id, d.strategy, dict(d.pointer_updates)) == (
        11,
        "round_robin",
        {"users:10,11": 11},
    )
    assert "#10 not in the roster" in d.reason
    roster = Roster([*sales, *support], supervisors={"sales": 99})
    d = decide(ctx(), rs, roster, WED_10_MSK)
    assert (d.user_id, d.queue, d.strategy, d.supervisor_id) == (None, "sales", "queue", 99)
    assert d.pointer_updates == {}
    assert "queued for 'sales'" in d.reason and "в очередь «sales»" in d.reason_ru


def test_actions_priority_tags_sla_and_task() -> None:
    rs = rules(
        "rules:\n  - id: vip\n    assign: {team: sales}\n    priority: urgent\n"
        "    tags: [vip, 2026]\n    sla_minutes: 15\n"
        "    task: {kind: call_back, title: Перезвонить}\n"
    )
    d = decide(ctx(), rs, Roster(managers(1)), WED_10_MSK)
    assert (d.priority, d.tags, d.sla_minutes) == ("urgent", ("vip", "2026"), 15)
    assert d.task is not None and (d.task.kind, d.task.title, d.task.due_in_minutes) == (
        "call_back",
        "Перезвонить",
        15,
    )


def test_default_ruleset_round_robins_active_managers_only() -> None:
    roster = Roster([*managers(2), M(3, "boss", role="supervisor"), M(4, "x", active=False)])
    picks = [
        decide(
            ctx(), RuleSet.default(), roster, WED_10_MSK, RoutingState({"role:manager": last})
        ).user_id
        for last in (0, 1, 2)
    ]
    assert picks == [1, 2, 1]


def test_naive_now_is_rejected() -> None:
    with pytest.raises(ValueError, match="aware"):
        decide(ctx(), RR, Roster(managers(1)), datetime(2026, 1, 1))


def test_same_inputs_same_decision() -> None:
    roster = Roster(managers(5))
    state = RoutingState({"team:sales": 3})
    assert decide(ctx(), RR, roster, WED_10_MSK, state) == decide(
        ctx(), RR, roster, WED_10_MSK, state
    )
