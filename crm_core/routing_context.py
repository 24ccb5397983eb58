"""Build the :class:`routing_rules.RoutingContext` of an inbound event (issue 6).

Country and Russian region come from the first phone of the event: ``phonenumbers``
geocoding in Russian, with the federal cities fixed by their area codes (the
geocoder names 495 "Московская обл.").  Mobile numbers have no region.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from datetime import datetime
from functools import lru_cache
from typing import Any

import phonenumbers
from phonenumbers import geocoder

from crm_core.events import InboundEvent
from routing_rules import ClientInfo, Roster, RoutingContext, RoutingState, RuleSet, explain

__all__ = ["context_from_event", "context_to_json", "explain_event", "phone_geo"]

# Area codes the geocoder names imprecisely or not at all.
_AREA_REGIONS = {
    "495": "Москва",
    "499": "Москва",
    "812": "Санкт-Петербург",
}
_COUNTRY_NAMES_RU = {"Россия", "Российская Федерация"}


def _clean_region(text: str) -> str | None:
    text = text.strip().rstrip(",")
    if not text or text in _COUNTRY_NAMES_RU:
        return None
    if text.startswith("г. "):
        text = text[3:]
    for short, full in ((" обл.", " область"), (" обл", " область"), (" Респ.", " Республика")):
        if text.endswith(short):
            text = text[: -len(short)] + full
            break
    return text


@lru_cache(maxsize=4096)
def phone_geo(e164: str) -> tuple[str | None, str | None]:
    """``(country ISO alpha-2, Russian region in Russian)`` of an E.164 number."""
    try:
        num = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return None, None
    country = phonenumbers.region_code_for_number(num)
    if not country or country == "ZZ":
        return None, None
    if country != "RU":
        return country, None
    national = str(num.national_number)
    region = _AREA_REGIONS.get(national[:3])
    if region is None:
        region = _clean_region(geocoder.description_for_number(num, "ru"))
    return country, region


def _utm(meta: Mapping[str, Any]) -> dict[str, str]:
    raw = meta.get("utm")
    out: dict[str, str] = {}
    if isinstance(raw, Mapping):
        for k, v in raw.items():
            if v is None or isinstance(v, Mapping | list):
                continue
            key = str(k).lower().removeprefix("utm_")
            out[key] = str(v)
    return out


def context_from_event(event: InboundEvent, client: ClientInfo | None) -> RoutingContext:
    """Everything the rules may look at, from the event and the matched client (or None)."""
    phones = event.phones
    phone = phones[0] if phones else None
    country, region = phone_geo(phone) if phone else (None, None)
    emails = event.emails
    domain = (emails[0].rpartition("@")[2].lower() or None) if emails else None
    called = event.meta.get("called_number")
    return RoutingContext(
        channel=event.channel.value,
        kind=event.kind.value,
        source=event.source,
        utm=_utm(event.meta),
        phone=phone,
        country=country,
        region=region,
        email_domain=domain,
        subject=event.subject,
        text=event.text,
        client=client,
        is_new_client=client is None,
        called_number=str(called) if called not in (None, "") else None,
    )


def context_to_json(ctx: RoutingContext) -> dict[str, Any]:
    out = asdict(ctx)
    out["utm"] = dict(ctx.utm)
    return out


def explain_event(
    data: Mapping[str, Any],
    rules: RuleSet,
    roster: Roster,
    now: datetime,
    state: RoutingState | None = None,
    client: ClientInfo | None = None,
) -> dict[str, Any]:
    """For ``crmhub rules explain EVENT.json``: the event in ``InboundEvent.to_json`` shape
    -> ``{"context": ..., "rules": [...]}``.  Raises ``NormalizeError`` on a bad event.
    Writes nothing."""
    event = InboundEvent.from_json(data)
    ctx = context_from_event(event, client)
    return {
        "context": context_to_json(ctx),
        "rules": explain(ctx, rules, roster, now, state or RoutingState()),
    }
