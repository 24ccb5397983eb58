"""Bad input never crashes: a RulesError for any text, decisions for odd rosters;
and the package keeps to its allowed imports."""

from __future__ import annotations

import ast
from datetime import time
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from routing_rules import Member, Roster, RulesError, decide, parse_rules

from ._helpers import WED_10_MSK, ctx, rules

PKG = Path(__file__).resolve().parents[3] / "routing_rules"
ALLOWED = {"pydantic", "yaml"}

YAMLISH = st.text(
    alphabet=st.sampled_from(list("rules:- id{}[]\n ,'\"assign team when channel:!&*#09")),
    max_size=200,
)


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(YAMLISH, st.text(max_size=200)))
def test_any_text_gives_rules_or_rules_error(text: str) -> None:
    try:
        parse_rules(text, "fuzz.yaml")
    except RulesError as exc:
        assert exc.errors
        for line, col, msg in exc.errors:
            assert line >= 1 and col >= 1 and msg


def test_unknown_member_time_zone_falls_back_to_the_rule_set_zone() -> None:
    rs = rules("rules:\n  - {id: r, assign: {team: s}}\n")
    odd = Member(1, teams=("s",), timezone="Not/AZone", working_hours={2: [(time(9), time(11))]})
    assert decide(ctx(), rs, Roster([odd]), WED_10_MSK).user_id == 1  # 10:00 Moscow


def test_package_imports_only_stdlib_pydantic_yaml() -> None:
    import sys

    stdlib = set(sys.stdlib_module_names)
    for path in PKG.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top in stdlib or top in ALLOWED or top == "__future__", (path.name, name)
