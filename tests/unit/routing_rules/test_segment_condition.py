"""``client_segment`` matches any of the client's segments (a client may be in several)."""

from __future__ import annotations

from datetime import UTC, datetime

from routing_rules import ClientInfo, Roster, RoutingContext, RoutingState, decide, parse_rules

RULES = """
version: 1
rules:
  - id: vip
    when: {client_segment: [VIP, "Опт*"]}
    assign: {users: [1]}
  - id: rest
    assign: {users: [2]}
"""
NOW = datetime(2026, 11, 25, 7, 0, tzinfo=UTC)


def _rule(client: ClientInfo | None) -> str | None:
    ctx = RoutingContext(channel="call", client=client, is_new_client=client is None)
    rules = parse_rules(RULES, "t.yaml")
    return decide(ctx, rules, Roster([]), NOW, RoutingState()).rule_id


def test_any_of_several_segments_matches() -> None:
    assert _rule(ClientInfo(1, segments=("Банки", "vip"))) == "vip"
    assert _rule(ClientInfo(1, segments=("Банки", "Оптовики"))) == "vip"
    assert _rule(ClientInfo(1, segments=("Банки",))) == "rest"
    assert _rule(ClientInfo(1)) == "rest"
    assert _rule(None) == "rest"


def test_the_single_segment_of_older_callers_still_counts() -> None:
    assert _rule(ClientInfo(1, segment="VIP")) == "vip"
    assert _rule(ClientInfo(1, segment="VIP", segments=("VIP",))) == "vip"
