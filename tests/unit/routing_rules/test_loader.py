"""The rules file: every error with its line and column; the shipped files load."""

from __future__ import annotations

from pathlib import Path

import pytest

from routing_rules import RulesError, load_rules, parse_rules

ROOT = Path(__file__).resolve().parents[3]

BAD: list[tuple[str, str, list[tuple[int, int, str]]]] = [
    ("yaml syntax", "rules: [\n", [(2, 1, "YAML syntax")]),
    ("not a mapping", "- 1\n", [(1, 1, "must be a mapping")]),
    ("unknown top key", "version: 1\nrulez: []\n", [(2, 1, "unknown key 'rulez'")]),
    ("bad version", "version: 2\n", [(1, 10, "version")]),
    ("bad time zone", "timezone: Mars/Base\n", [(1, 11, "unknown time zone 'Mars/Base'")]),
    (
        "unknown condition",
        "rules:\n  - id: a\n    when:\n      chanel: call\n    assign: {team: s}\n",
        [(4, 7, "rules[0].when.chanel: unknown key 'chanel'")],
    ),
    (
        "unknown channel",
        "rules:\n  - id: a\n    when:\n      channel: [call, fax]\n    assign: {team: s}\n",
        [(4, 16, "unknown channel 'fax': use one of call, email, webform, telegram, vk")],
    ),
    (
        "unknown event kind",
        "rules:\n  - id: a\n    when: {kind: call_back}\n    assign: {team: s}\n",
        [(3, 18, "unknown kind 'call_back'")],
    ),
    (
        "bad time window",
        "rules:\n  - id: a\n    when: {time: '9-18'}\n    assign: {team: s}\n",
        [(3, 18, "HH:MM-HH:MM")],
    ),
    (
        "bad weekday in list",
        "rules:\n  - id: a\n    when:\n      weekday: [mon, funday]\n    assign: {team: s}\n",
        [(4, 22, "rules[0].when.weekday[1]")],
    ),
    (
        "two targets",
        "rules:\n  - id: a\n    assign:\n      team: s\n      user: 3\n",
        [(4, 7, "exactly one of user, users, team, list, role (got user, team)")],
    ),
    (
        "bad strategy",
        "rules:\n  - id: a\n    assign: {team: s, strategy: fastest}\n",
        [(3, 33, "rules[0].assign.strategy")],
    ),
    (
        "missing id and negative sla",
        "rules:\n  - assign: {team: s}\n    sla_minutes: -5\n",
        [(2, 5, "rules[0].id: Field required"), (3, 18, "greater than or equal to 1")],
    ),
    (
        "duplicate ids and keys",
        "rules:\n  - {id: a, assign: {team: s}}\n  - id: a\n    assign: {team: s}\n"
        "    tags: [x]\n    tags: [y]\n",
        [(3, 9, "duplicate rule id 'a'"), (6, 5, "duplicate key 'tags'")],
    ),
    (
        "unknown list",
        "rules:\n  - id: a\n    assign:\n      list: vip\n",
        [(4, 13, "unknown list 'vip'")],
    ),
    (
        "bad country in fallback",
        "rules:\n  - id: a\n    when: {country: RUS}\n    assign:\n      team: s\n"
        "      fallback: [{team: t, strategy: nope}]\n",
        [(3, 21, "country 'RUS'"), (6, 38, "fallback[0].strategy")],
    ),
]


@pytest.mark.parametrize(("text", "expected"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_errors_carry_line_and_column(text: str, expected: list[tuple[int, int, str]]) -> None:
    with pytest.raises(RulesError) as info:
        parse_rules(text, "r.yaml")
    errors = info.value.errors
    assert len(errors) == len(expected), errors
    for (line, col, msg), (eline, ecol, part) in zip(errors, expected, strict=True):
        assert (line, col) == (eline, ecol), (line, col, msg)
        assert part in msg
    assert str(info.value).startswith(f"r.yaml: {len(expected)} error(s)\nr.yaml:{expected[0][0]}:")


def test_all_errors_are_reported_at_once() -> None:
    text = (
        "timezone: Nowhere/City\nrules:\n  - id: a\n    when: {chanel: call, time: x}\n"
        "    assign: {team: s, strategy: fastest}\n"
    )
    with pytest.raises(RulesError) as info:
        parse_rules(text)
    assert [(ln, col) for ln, col, _ in info.value.errors] == [(1, 11), (4, 12), (4, 32), (5, 33)]


@pytest.mark.parametrize("name", ["routing.yaml", "routing.example.yaml"])
def test_shipped_files_are_valid(name: str) -> None:
    rs = load_rules(ROOT / "config" / name)
    assert len(rs) >= 2
    assert rs.timezone == "Europe/Moscow"


def test_missing_file_and_empty_file(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="cannot read"):
        load_rules(tmp_path / "nope.yaml")
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing yet\n", encoding="utf-8")
    rs = load_rules(empty)
    assert len(rs) == 0
    assert rs.default_assign.chain[0].pool_key == "role:manager"


def test_scalars_become_lists_and_numbers_strings() -> None:
    rs = parse_rules(
        "rules:\n  - id: a\n    when: {called_number: 74951200000, channel: call}\n"
        "    assign: {team: s}\n    tags: urgent\n"
    )
    assert rs.rules[0].tags == ("urgent",)
    assert rs.rules[0].cond is not None
    assert "74951200000" in rs.rules[0].cond.text_en


def test_channel_and_kind_prefixes_are_checked_too() -> None:
    ok = "rules:\n  - id: a\n    when: {channel: tele*, kind: [call_*, EMAIL_received]}\n"
    parse_rules(ok + "    assign: {team: s}\n", "ok.yaml")
    with pytest.raises(RulesError, match="unknown channel 'fax\\*'"):
        parse_rules("rules:\n  - id: a\n    when: {channel: fax*}\n    assign: {team: s}\n", "x")


def test_known_channels_and_kinds_are_the_pipelines() -> None:
    """routing_rules is pure (no crm_core import); this keeps its lists in step."""
    from crm_core.events import Channel, EventKind
    from routing_rules.schema import CHANNELS, EVENT_KINDS

    assert set(CHANNELS) == {c.value for c in Channel}
    internal = {EventKind.CALLS_RECONCILED.value}  # never routed: no lead comes of it
    assert set(EVENT_KINDS) == {k.value for k in EventKind} - internal
