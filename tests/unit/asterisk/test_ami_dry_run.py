from __future__ import annotations

import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from connectors.asterisk import dry_run
from crm_core.events import NormalizeError
from tests.support.ami_truth import AMI_FIXTURES, SCENARIOS, TRUNK, expected_calls

KEYS = {
    "kind",
    "linkedid",
    "direction",
    "caller",
    "extensions_rung",
    "answered_by",
    "outcome",
    "ring_seconds",
    "talk_seconds",
}


def _by_call(rows: list[dict[str, Any]]) -> list[tuple[list[str], dict[str, Any]]]:
    kinds: dict[str, list[str]] = defaultdict(list)
    ended: list[dict[str, Any]] = []
    for r in rows:
        kinds[r["linkedid"]].append(r["kind"])
        if r["kind"] == "call_ended":
            ended.append(r)
    return [(kinds[e["linkedid"]], e) for e in ended]


def _check(rows: list[dict[str, Any]], scenario: str) -> None:
    calls = _by_call(rows)
    expected = expected_calls(scenario)
    assert len(calls) == len(expected)
    for (kinds, got), exp in zip(calls, expected, strict=True):
        assert kinds == exp["kinds"]
        for key, value in exp.items():
            if key != "kinds":
                assert got[key] == value, (key, got)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_dry_run_matches_truth_with_config(scenario: str) -> None:
    rows = dry_run(
        AMI_FIXTURES / f"{scenario}.ami",
        inbound_contexts=TRUNK["inbound_contexts"],
        trunk_channel_patterns=TRUNK["trunk_channel_patterns"],
    )
    assert all(KEYS <= set(r) for r in rows)
    _check(rows, scenario)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_dry_run_narrow_user_without_config(scenario: str) -> None:
    """The crmlite recordings (read=system,call,agent,...) and no trunk settings at all."""
    _check(dry_run(AMI_FIXTURES / f"{scenario}.crmlite.ami"), scenario)


def test_dry_run_without_timing_still_derives_calls(tmp_path: Path) -> None:
    p = tmp_path / "a.ami"
    shutil.copy(AMI_FIXTURES / "a_inbound_answered.ami", p)
    rows = dry_run(
        p,
        inbound_contexts=TRUNK["inbound_contexts"],
        trunk_channel_patterns=TRUNK["trunk_channel_patterns"],
    )
    assert [r["kind"] for r in rows] == ["call_started", "call_answered", "call_ended"]
    assert rows[-1]["outcome"] == "answered"
    assert rows[-1]["answered_by"] == "101"


def test_dry_run_lf_only_file(tmp_path: Path) -> None:
    p = tmp_path / "b.ami"
    p.write_bytes(
        (AMI_FIXTURES / "b_inbound_missed_noanswer.ami").read_bytes().replace(b"\r\n", b"\n")
    )
    rows = dry_run(
        p,
        inbound_contexts=TRUNK["inbound_contexts"],
        trunk_channel_patterns=TRUNK["trunk_channel_patterns"],
    )
    assert [r["kind"] for r in rows] == ["call_started", "call_missed", "call_ended"]


@pytest.mark.parametrize(
    "content",
    [b"", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\x89PNG\r\n\x1a\n\x00\x00", b'{"a": 1}'],
    ids=["empty", "http", "binary", "json"],
)
def test_dry_run_rejects_non_ami(tmp_path: Path, content: bytes) -> None:
    p = tmp_path / "x.ami"
    p.write_bytes(content)
    with pytest.raises(NormalizeError) as err:
        dry_run(p)
    assert err.value.field == "file"
    assert "AMI" in str(err.value)


def test_dry_run_missing_file(tmp_path: Path) -> None:
    with pytest.raises(NormalizeError, match="cannot read"):
        dry_run(tmp_path / "nope.ami")


def test_login_failed_stream_has_no_calls() -> None:
    assert dry_run(AMI_FIXTURES / "login_failed.ami") == []
