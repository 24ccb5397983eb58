"""Hostile rules documents are refused with a line and column, quickly and without
expanding them: anchors/aliases (the "billion laughs" bomb), deep nesting, too many
nodes, too many bytes.  The bounds hold for ``parse_rules`` and so for ``PUT /rules``,
``POST /rules/explain`` and ``crmhub rules check`` alike."""

from __future__ import annotations

import pytest

from routing_rules import RulesError, parse_rules
from routing_rules.loader import MAX_DEPTH, MAX_NODES, MAX_RULES_BYTES


def alias_bomb(levels: int) -> str:
    """Each level is ten aliases of the one before: 10**levels strings once expanded."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        refs = ",".join([f"*a{i - 1}"] * 10)
        lines.append(f"a{i}: &a{i} [{refs}]")
    lines.append(f"rules: [{{id: x, assign: {{team: *a{levels - 1}}}}}]")
    return "\n".join(lines) + "\n"


def errors_of(text: str) -> list[tuple[int, int, str]]:
    with pytest.raises(RulesError) as info:
        parse_rules(text, "hostile.yaml")
    return info.value.errors


@pytest.mark.parametrize("levels", [5, 9])
def test_alias_bomb_is_refused_at_its_first_anchor(levels: int) -> None:
    text = alias_bomb(levels)
    assert len(text) < 1000  # the 388-byte and 9-level documents
    assert errors_of(text) == [
        (1, 5, "YAML anchors are not allowed (&a0): write the value out"),
    ]


def test_an_alias_without_anchor_is_refused_with_its_position() -> None:
    text = "rules:\n  - id: a\n    assign: *team\n"
    assert errors_of(text) == [(3, 13, "YAML aliases are not allowed (*team): write the value out")]


def test_merge_keys_need_anchors_and_are_refused_too() -> None:
    text = "base: &b {team: s}\nrules:\n  - id: a\n    assign: {<<: *b}\n"
    (line, col, msg), *_ = errors_of(text)
    assert (line, col) == (1, 7) and "anchors are not allowed" in msg


def test_deep_nesting_is_refused_not_a_recursion_error() -> None:
    deep = "[" * 50_000 + "]" * 50_000
    (line, _, msg), *_ = errors_of(f"rules: {deep}\n")
    assert line == 1 and f"nested deeper than {MAX_DEPTH} levels" in msg


def test_too_many_nodes_are_refused() -> None:
    items = ",".join(["1"] * (MAX_NODES + 1))
    (_, _, msg), *_ = errors_of(f"lists: {{x: [{items}]}}\n")
    assert f"more than {MAX_NODES} nodes" in msg


def test_too_many_bytes_are_refused_before_parsing() -> None:
    text = "# " + "x" * MAX_RULES_BYTES + "\n"
    assert errors_of(text) == [(1, 1, f"the rules file is larger than {MAX_RULES_BYTES} bytes")]


def test_a_realistic_file_still_loads() -> None:
    rules = "\n".join(
        f"  - {{id: r{i}, when: {{channel: [call, email], utm_source: 'ya*'}}, "
        f"assign: {{team: t{i % 7}, strategy: round_robin}}}}"
        for i in range(2000)
    )
    assert len(parse_rules(f"version: 1\nrules:\n{rules}\n").rules) == 2000
