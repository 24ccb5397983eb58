"""Property tests: arbitrary bodies and fields never crash, they give an event or a
NormalizeError naming the field."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.webforms import FormSpec, normalize_form, parse_body
from crm_core.events import Channel, NormalizeError
from tests.support.hostile import assert_event_ok, mutated_tree

NOW = datetime(2026, 3, 2, 9, 15, 20, tzinfo=UTC)
PROPS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KEYS = st.one_of(
    st.sampled_from(
        [
            "name",
            "phone",
            "Телефон",
            "email",
            "Почта",
            "tranid",
            "COOKIES",
            "website",
            "page_url",
            "fields[x][value]",
            "fields[x][title]",
            "utm_source",
            "form[id]",
            "tel-1",
            "first_name",
        ]
    ),
    st.text(max_size=20),
)
VALUES = st.one_of(st.text(max_size=60), st.lists(st.text(max_size=20), max_size=3))


@PROPS
@given(
    st.binary(max_size=300),
    st.sampled_from(
        [
            "application/json",
            "application/x-www-form-urlencoded",
            "text/plain",
            "multipart/form-data",
            "multipart/form-data; boundary=b",
            "",
        ]
    ),
)
def test_parse_body_gives_fields_or_normalize_error(body: bytes, ctype: str) -> None:
    try:
        fields = parse_body(body, ctype)
    except NormalizeError as exc:
        assert exc.field in ("body", "Content-Type")
        return
    assert all(isinstance(k, str) for k in fields)


@PROPS
@given(st.dictionaries(KEYS, VALUES, max_size=8))
def test_normalize_form_gives_event_or_normalize_error(fields: dict[str, str | list[str]]) -> None:
    try:
        event = normalize_form(fields, form=FormSpec(key="p"), received_at=NOW)
    except NormalizeError as exc:
        assert exc.field == "body"
        return
    assert event.channel is Channel.WEBFORM
    assert event.external_id
    again = normalize_form(fields, form=FormSpec(key="p"), received_at=NOW)
    assert (again.external_id, again.kind) == (event.external_id, event.kind)  # redelivery


def test_form_spec_rejects_unknown_alias_target() -> None:
    with pytest.raises(ValueError, match="points at unknown field 'fax'"):
        FormSpec(key="x", aliases={"Факс": "fax"})


# Recorded JSON forms (Tilda parsed, Google Apps Script, Contact Form 7) with hostile
# mutations, sent as a JSON body: parse_body then normalize_form (issue 10 item 18).
_FORMS = Path(__file__).parents[2] / "fixtures" / "forms"
JSON_FIXTURES = [
    json.loads((_FORMS / name).read_text(encoding="utf-8"))
    for name in ("tilda_02_lead.parsed.json", "google_forms_apps_script.json",
                 "cf7_to_webhook.json")
]  # fmt: skip
RAW_FIXTURES = [
    (p.read_bytes(), "application/x-www-form-urlencoded")
    for p in sorted(_FORMS.glob("*.urlencoded.txt"))
]


def _form_event_or_error(body: bytes, ctype: str) -> None:
    try:
        fields = parse_body(body, ctype)
        event = normalize_form(fields, form=FormSpec(key="p"), received_at=NOW)
    except NormalizeError as exc:
        assert exc.field, str(exc)
        return
    assert_event_ok(event)


@PROPS
@given(mutated_tree(JSON_FIXTURES, extra_keys=["phone", "email", "name", "tranid", "utm_source"]))
def test_mutated_json_fixtures(data: Any) -> None:
    _form_event_or_error(json.dumps(data, ensure_ascii=False).encode(), "application/json")


@PROPS
@given(
    st.sampled_from(RAW_FIXTURES),
    st.lists(st.tuples(st.floats(0, 1), st.binary(max_size=8) | st.sampled_from(
        [b"&", b"=", b"%", b"%ZZ", b"%D0", b"+", b"[]", b"[x][y]", b"\x00"])), max_size=5),
)  # fmt: skip
def test_mutated_urlencoded_fixtures(
    fixture: tuple[bytes, str], edits: list[tuple[float, bytes]]
) -> None:
    body, ctype = fixture
    data = bytearray(body)
    for where, chunk in edits:
        i = int(where * len(data))
        data[i:i] = chunk
    _form_event_or_error(bytes(data), ctype)
