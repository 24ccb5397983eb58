"""crm_core.routing_context: event -> RoutingContext (country, region, utm, domain)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from crm_core.events import Channel, EventKind, InboundEvent
from crm_core.routing_context import context_from_event, phone_geo
from routing_rules import ClientInfo

GEO: list[tuple[str, str | None, str | None]] = [
    ("+74951234567", "RU", "Москва"),
    ("+74991234567", "RU", "Москва"),
    ("+78123334455", "RU", "Санкт-Петербург"),
    ("+73432001122", "RU", "Свердловская область"),
    ("+78612001122", "RU", "Краснодарский край"),
    ("+79165551234", "RU", None),  # mobile: no region
    ("+77011234567", "KZ", None),
    ("+375291234567", "BY", None),
    ("not a phone", None, None),
]


@pytest.mark.parametrize(("e164", "country", "region"), GEO, ids=[g[0] for g in GEO])
def test_phone_geo(e164: str, country: str | None, region: str | None) -> None:
    assert phone_geo(e164) == (country, region)


def _event(**kw: Any) -> InboundEvent:
    base: dict[str, Any] = {
        "channel": Channel.WEBFORM,
        "kind": EventKind.FORM_SUBMITTED,
        "external_id": "t-1",
        "occurred_at": datetime(2026, 11, 25, 7, 0, tzinfo=UTC),
    }
    base.update(kw)
    return InboundEvent(**base)


def test_context_from_a_form_event() -> None:
    ev = _event(
        identities=("email:Ivan@Mail.Example.ru", "phone:+73432001122", "phone:+79165551234"),
        subject="Заявка",
        text="Нужен счёт",
        source="site-main",
        meta={
            "utm": {"utm_source": "yandex", "UTM_Medium": "cpc", "bad": {"x": 1}},
            "called_number": 74951200000,
        },
    )
    c = context_from_event(ev, None)
    assert (c.channel, c.kind, c.source) == ("webform", "form_submitted", "site-main")
    assert (c.phone, c.country, c.region) == ("+73432001122", "RU", "Свердловская область")
    assert c.email_domain == "mail.example.ru"
    assert dict(c.utm) == {"source": "yandex", "medium": "cpc"}
    assert c.called_number == "74951200000"
    assert (c.subject, c.text, c.is_new_client, c.client) == ("Заявка", "Нужен счёт", True, None)


def test_context_of_a_known_client_without_phone() -> None:
    client = ClientInfo(id=3, kind="company", segment="vip", status="permanent", owner_id=7)
    c = context_from_event(
        _event(
            channel=Channel.TELEGRAM,
            kind=EventKind.MESSAGE_RECEIVED,
            identities=("telegram:123",),
            meta={"utm": "junk"},
        ),
        client,
    )
    assert (c.phone, c.country, c.region, c.email_domain) == (None, None, None, None)
    assert dict(c.utm) == {}
    assert (c.client, c.is_new_client, c.called_number) == (client, False, None)


def test_explain_event_from_json() -> None:
    from crm_core.routing_context import explain_event
    from routing_rules import Member, Roster, parse_rules

    rs = parse_rules(
        "rules:\n  - id: yandex-moscow\n    when: {utm_source: yandex, region: Москва}\n"
        "    assign: {team: sales}\n"
    )
    data = _event(identities=("phone:+74951234567",), meta={"utm": {"source": "yandex"}}).to_json()
    out = explain_event(
        data,
        rs,
        Roster([Member(4, "a", teams=("sales",))]),
        datetime(2026, 11, 25, 7, 0, tzinfo=UTC),
    )
    assert out["context"]["region"] == "Москва"
    assert [(r["rule_id"], r["selected"]) for r in out["rules"]] == [
        ("yandex-moscow", True),
        ("default", False),
    ]
    assert out["rules"][0]["decision"]["user_id"] == 4
