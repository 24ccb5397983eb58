"""The pre-parse scan of VK bodies agrees with json.loads on every valid body, and
never raises, recurses or parses on hostile ones."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.vk.guard import MAX_DEPTH, scan_body, secret_matches

PROPS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TEXT = st.text(
    alphabet=st.sampled_from(['"', "\\", "/", "{", "}", "[", "]", ":", ",", " ", "a", "ж", "\n"])
    | st.characters(exclude_categories=["Cs"]),
    max_size=12,
)
KEYS = st.sampled_from(["secret", "type", "object", "a", "secret ", "Secret"]) | TEXT
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=15,
)


def depth_of(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    return 0


def dumps(value: Any, ascii_only: bool, spaced: bool) -> bytes:
    seps = (" , ", " :  ") if spaced else (",", ":")
    return json.dumps(value, ensure_ascii=ascii_only, separators=seps).encode()


@PROPS
@given(
    top=st.dictionaries(KEYS, VALUES, max_size=5),
    secret=st.none() | TEXT | VALUES,
    ascii_only=st.booleans(),
    spaced=st.booleans(),
)
def test_scan_agrees_with_json(
    top: dict[str, Any], secret: Any, ascii_only: bool, spaced: bool
) -> None:
    if secret is not None:
        top["secret"] = secret
    body = dumps(top, ascii_only, spaced)
    scan = scan_body(body)
    assert scan.depth == depth_of(top)
    expected = top.get("secret")
    assert scan.secret == (expected if isinstance(expected, str) else None)


@PROPS
@given(value=VALUES, ascii_only=st.booleans())
def test_non_objects_have_no_secret(value: Any, ascii_only: bool) -> None:
    if isinstance(value, dict):
        return
    scan = scan_body(dumps(value, ascii_only, False))
    assert scan.secret is None and scan.depth == depth_of(value)


@PROPS
@given(st.binary(max_size=400))
def test_any_bytes_are_scanned_without_error(body: bytes) -> None:
    scan = scan_body(body)
    assert scan.depth >= 0


@PROPS
@given(
    top=st.dictionaries(KEYS, VALUES, max_size=4),
    cut=st.floats(min_value=0, max_value=1),
    junk=st.binary(max_size=8),
)
def test_mutated_bodies_are_scanned_without_error(
    top: dict[str, Any], cut: float, junk: bytes
) -> None:
    body = dumps({**top, "secret": 's3cr"et'}, False, False)
    i = int(cut * len(body))
    scan_body(body[:i] + junk + body[i:])


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 10_000, 400_000])
def test_bracket_bombs_report_their_depth(depth: int) -> None:
    assert scan_body(b"[" * depth).depth == depth
    assert scan_body(b'{"secret": "s", "a": ' + b"[" * depth).depth == depth + 1


def test_escaped_quotes_and_backslashes() -> None:
    body = rb'{"t": "a\\", "secret": "x\\\"y", "u": "\"secret\": \"no\""}'
    assert scan_body(body).secret == json.loads(body)["secret"] == 'x\\"y'
    assert scan_body(b'{"secret": "a", "secret": "a"}').secret is None  # ambiguous
    assert scan_body(b'{"secret": "a').secret is None  # truncated in the value
    assert scan_body(b'{"secret": "a"}').secret == "a"


def test_secret_matches_is_strict() -> None:
    assert secret_matches("abc", "abc")
    assert not secret_matches("abc", "abd")
    assert not secret_matches(None, "abc")
    assert not secret_matches("", "")  # an empty configured secret never matches
