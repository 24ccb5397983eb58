"""Property tests: arbitrary bodies and fields never crash, they give an event or a
NormalizeError naming the field."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.webforms import FormSpec, normalize_form, parse_body
from crm_core.events import Channel, NormalizeError

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
