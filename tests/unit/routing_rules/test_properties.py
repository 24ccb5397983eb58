"""Property tests (hypothesis): round robin stays even, weighted keeps proportions."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from routing_rules import Member, Roster, RoutingState, decide

from ._helpers import WED_10_MSK, ctx, rules

RR = rules("rules:\n  - id: rr\n    assign: {team: sales, strategy: round_robin}\n")
WEIGHTED = rules("rules:\n  - id: w\n    assign: {team: sales, strategy: weighted}\n")


def _roster(ids: list[int], **kw: object) -> Roster:
    return Roster([Member(i, f"m{i}", teams=("sales",), **kw) for i in ids])  # type: ignore[arg-type]


@settings(max_examples=150, deadline=None)
@given(
    ids=st.lists(st.integers(1, 10_000), min_size=1, max_size=30, unique=True),
    n=st.integers(1, 300),
    start=st.one_of(st.none(), st.integers(0, 10_001)),
)
def test_round_robin_spread_differs_by_at_most_one(
    ids: list[int], n: int, start: int | None
) -> None:
    roster = _roster(ids)
    pointers = {} if start is None else {"team:sales": start}
    counts: Counter[int] = Counter()
    for _ in range(n):
        d = decide(ctx(), RR, roster, WED_10_MSK, RoutingState(pointers))
        assert d.user_id is not None
        pointers.update(d.pointer_updates)
        counts[d.user_id] += 1
    spread = [counts.get(i, 0) for i in ids]
    assert max(spread) - min(spread) <= 1
    assert sum(spread) == n


@settings(max_examples=100, deadline=None)
@given(
    ids=st.lists(st.integers(1, 1000), min_size=2, max_size=20, unique=True),
    inactive=st.sets(st.integers(0, 19)),
    n=st.integers(1, 200),
)
def test_round_robin_even_among_available_only(ids: list[int], inactive: set[int], n: int) -> None:
    members = [
        Member(uid, teams=("sales",), active=(k not in inactive)) for k, uid in enumerate(ids)
    ]
    roster = Roster(members)
    active = [m.user_id for m in members if m.active]
    pointers: dict[str, int] = {}
    counts: Counter[int | None] = Counter()
    for _ in range(n):
        d = decide(ctx(), RR, roster, WED_10_MSK, RoutingState(pointers))
        pointers.update(d.pointer_updates)
        counts[d.user_id] += 1
    if not active:
        assert counts == {None: n}
        return
    assert set(counts) <= set(active)
    spread = [counts.get(i, 0) for i in active]
    assert max(spread) - min(spread) <= 1


@settings(max_examples=60, deadline=None)
@given(
    weights=st.lists(st.integers(1, 8), min_size=1, max_size=10),
    cycles=st.integers(1, 3),
)
def test_weighted_full_cycles_match_weights(weights: list[int], cycles: int) -> None:
    roster = Roster([Member(i, teams=("sales",), weight=w) for i, w in enumerate(weights, 1)])
    pointers: dict[str, int] = {}
    counts: Counter[int | None] = Counter()
    for _ in range(sum(weights) * cycles):
        d = decide(ctx(), WEIGHTED, roster, WED_10_MSK, RoutingState(pointers))
        pointers.update(d.pointer_updates)
        counts[d.user_id] += 1
    assert counts == {i: w * cycles for i, w in enumerate(weights, 1)}
