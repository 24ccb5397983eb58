"""Table-driven: each condition kind, matching and not matching."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from routing_rules import ClientInfo, Roster, decide, parse_rules

from ._helpers import WED_10_MSK, ctx, managers, one_rule, rules

ROSTER = Roster(managers(2))
COMPANY_VIP = ClientInfo(id=5, kind="company", segment="VIP", status="permanent", owner_id=1)

CASES: list[tuple[str, str, dict[str, Any], bool]] = [
    ("channel hit", "{channel: [call, email]}", {"channel": "email"}, True),
    ("channel miss", "{channel: call}", {"channel": "telegram"}, False),
    ("kind hit", "{kind: call_missed}", {"channel": "call", "kind": "call_missed"}, True),
    ("kind miss", "{kind: call_missed}", {"channel": "call", "kind": "call_ended"}, False),
    ("source case-insensitive", "{source: Site-Main}", {"source": "site-main"}, True),
    ("source prefix", "{source: 'landing_*'}", {"source": "landing_spring"}, True),
    ("source missing", "{source: site}", {"source": None}, False),
    (
        "called number digits",
        "{called_number: '+7 (495) 120-00-00'}",
        {"called_number": "74951200000"},
        True,
    ),
    (
        "called number other",
        "{called_number: '+74951200000'}",
        {"called_number": "+74951200001"},
        False,
    ),
    ("utm_source", "{utm_source: yandex}", {"utm": {"source": "Yandex"}}, True),
    ("utm_source long key", "{utm_source: yandex}", {"utm": {"utm_source": "yandex"}}, True),
    ("utm_medium miss", "{utm_medium: cpc}", {"utm": {"medium": "email"}}, False),
    (
        "utm_campaign prefix",
        "{utm_campaign: 'spring*'}",
        {"utm": {"campaign": "spring_sale"}},
        True,
    ),
    ("utm absent", "{utm_campaign: spring}", {}, False),
    ("country", "{country: [KZ, BY]}", {"country": "KZ"}, True),
    ("country miss", "{country: KZ}", {"country": "RU"}, False),
    ("region", "{region: 'свердловская область'}", {"region": "Свердловская область"}, True),
    ("region miss", "{region: Москва}", {"region": None}, False),
    ("email domain exact", "{email_domain: example.ru}", {"email_domain": "example.ru"}, True),
    ("email subdomain", "{email_domain: example.ru}", {"email_domain": "mail.example.ru"}, True),
    ("email other", "{email_domain: example.ru}", {"email_domain": "badexample.ru"}, False),
    ("keywords subject", "{keywords: [счёт, invoice]}", {"subject": "Прошу выставить СЧЁТ"}, True),
    ("keywords text", "{keywords: [цена]}", {"text": "Какая цена доставки?"}, True),
    ("keywords none", "{keywords: [цена]}", {"subject": "Привет", "text": None}, False),
    (
        "keywords subject only",
        "{keywords: {words: [цена], fields: [subject]}}",
        {"subject": "вопрос", "text": "цена"},
        False,
    ),
    (
        "client segment",
        "{client_segment: vip}",
        {"client": COMPANY_VIP, "is_new_client": False},
        True,
    ),
    ("client segment none", "{client_segment: vip}", {"client": None}, False),
    (
        "client status",
        "{client_status: [cold, warm]}",
        {"client": COMPANY_VIP, "is_new_client": False},
        False,
    ),
    (
        "client kind",
        "{client_kind: company}",
        {"client": COMPANY_VIP, "is_new_client": False},
        True,
    ),
    ("new client yes", "{new_client: true}", {"is_new_client": True}, True),
    ("new client no", "{new_client: true}", {"client": COMPANY_VIP, "is_new_client": False}, False),
    ("known client", "{new_client: false}", {"client": COMPANY_VIP, "is_new_client": False}, True),
    ("weekday wed", "{weekday: [mon, wed]}", {}, True),
    ("weekday miss", "{weekday: [sat, sun]}", {}, False),
    ("time inside", "{time: '09:00-18:00'}", {}, True),
    ("time outside", "{time: '11:00-18:00'}", {}, False),
    ("time overnight", "{time: '22:00-10:30'}", {}, True),
    ("any", "{any: [{channel: call}, {utm_source: vk}]}", {"utm": {"source": "vk"}}, True),
    ("any none", "{any: [{channel: call}, {utm_source: vk}]}", {}, False),
    ("all", "{all: [{channel: webform}, {country: RU}]}", {"country": "RU"}, True),
    ("all one fails", "{all: [{channel: webform}, {country: RU}]}", {"country": "KZ"}, False),
    ("not", "{not: {email_domain: gmail.com}}", {"email_domain": "yandex.ru"}, True),
    ("not fails", "{not: {email_domain: gmail.com}}", {"email_domain": "gmail.com"}, False),
    ("two keys both", "{channel: webform, country: RU}", {"country": "RU"}, True),
    ("two keys one", "{channel: webform, country: RU}", {"country": None}, False),
]


@pytest.mark.parametrize(
    ("when", "fields", "expected"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_condition(when: str, fields: dict[str, Any], expected: bool) -> None:
    d = decide(ctx(**fields), one_rule(when), ROSTER, WED_10_MSK)
    assert d.rule_id == ("r" if expected else "default")


def test_time_condition_uses_the_rule_set_time_zone_across_dst() -> None:
    # Berlin 09:00-10:00 local; 2024-03-29 is CET (UTC+1), 2024-04-01 CEST (UTC+2).
    rb = parse_rules(
        "version: 1\ntimezone: Europe/Berlin\nrules:\n  - id: r\n"
        "    when: {time: '09:00-10:00'}\n    assign: {team: sales}\n"
    )
    at_0830_utc_cet = datetime(2024, 3, 29, 8, 30, tzinfo=UTC)  # 09:30 CET
    at_0830_utc_cest = datetime(2024, 4, 1, 8, 30, tzinfo=UTC)  # 10:30 CEST
    at_0730_utc_cest = datetime(2024, 4, 1, 7, 30, tzinfo=UTC)  # 09:30 CEST
    assert decide(ctx(), rb, ROSTER, at_0830_utc_cet).rule_id == "r"
    assert decide(ctx(), rb, ROSTER, at_0830_utc_cest).rule_id == "default"
    assert decide(ctx(), rb, ROSTER, at_0730_utc_cest).rule_id == "r"


def test_first_match_wins_and_disabled_rules_are_skipped() -> None:
    rs = rules(
        "rules:\n"
        "  - {id: disabled, enabled: false, assign: {user: 2}}\n"
        "  - {id: first, when: {channel: webform}, assign: {user: 1}}\n"
        "  - {id: second, assign: {user: 2}}\n"
    )
    d = decide(ctx(), rs, ROSTER, WED_10_MSK)
    assert (d.rule_id, d.user_id) == ("first", 1)
    d = decide(ctx(channel="call"), rs, ROSTER, WED_10_MSK)
    assert (d.rule_id, d.user_id) == ("second", 2)
