"""A phone or email held by a lead or client the caller cannot see stays where it is.

Before: manager b1 could PATCH their own client with the phone of a1's lead; the phone
moved to b1's client and the next form from it landed there.  Now such a request is a
409 that names neither the lead nor the client (nor their owner) and changes nothing;
only someone who sees both sides (a1's supervisor, an admin) may move the phone.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from crm_core.access import Actor
from crm_core.db import Database
from crm_core.events import Channel, EventKind, InboundEvent
from crm_core.hub import Hub
from crm_core.models import AuditEntry, Client, ContactPerson, ContactPoint, Lead
from crm_core.services.clients import create_client
from crm_core.services.leads import create_lead
from tests.support.api import Api

LEAD_PHONE = "+79161112233"
LEAD_EMAIL = "lead@example.ru"
CLIENT_PHONE = "+79164445566"


async def _seed(api: Api) -> dict[str, int]:
    """a1: a lead (phone, email) and a client (phone); b1 and a2: one client each."""
    async with api.db.transaction() as s:
        a1 = Actor.of(api.users["a1"])
        lead = await create_lead(
            s, a1, {"name": "Лид a1", "phones": [LEAD_PHONE], "emails": [LEAD_EMAIL]}
        )
        a1_client = await create_client(s, a1, {"name": "ООО А1", "phones": [CLIENT_PHONE]})
        b1_client = await create_client(s, Actor.of(api.users["b1"]), {"name": "ООО Б1"})
        a2_client = await create_client(s, Actor.of(api.users["a2"]), {"name": "ООО А2"})
    return {"lead": lead.id, "a1_client": a1_client.id, "b1": b1_client.id, "a2": a2_client.id}


async def _points(db: Database) -> list[tuple[Any, ...]]:
    async with db.sessions() as s:
        rows = await s.execute(
            select(
                ContactPoint.value,
                ContactPoint.client_id,
                ContactPoint.contact_person_id,
                ContactPoint.lead_id,
            ).order_by(ContactPoint.value)
        )
        return [tuple(r) for r in rows]


async def _counts(db: Database) -> tuple[int, ...]:
    out = []
    async with db.sessions() as s:
        for model in (Client, Lead, ContactPerson, ContactPoint, AuditEntry):
            out.append(int(await s.scalar(select(func.count()).select_from(model)) or 0))
    return tuple(out)


def _names_neither(body: dict[str, Any], value: str) -> None:
    """No id, owner or name in the answer: only the value the caller sent."""
    for key in ("error", "error_ru"):
        rest = body[key].replace(value, "")
        assert not any(ch.isdigit() for ch in rest), body
        for forbidden in ("a1", "А1", "Лид", "@example.ru"):
            assert forbidden not in rest, body
    assert set(body) == {"error", "error_ru", "field"}


async def test_a_manager_cannot_take_a_phone_of_a_hidden_lead(api: Api) -> None:
    ids = await _seed(api)
    before_points, before_counts = await _points(api.db), await _counts(api.db)
    b1 = api.as_("b1")
    attempts = [
        ("PATCH", f"/clients/{ids['b1']}", {"phones": [LEAD_PHONE]}, "phones"),
        ("PATCH", f"/clients/{ids['b1']}", {"phones": ["8 916 111-22-33"]}, "phones"),
        ("PATCH", f"/clients/{ids['b1']}", {"emails": [LEAD_EMAIL.upper()]}, "emails"),
        ("PATCH", f"/clients/{ids['b1']}", {"phones": [CLIENT_PHONE]}, "phones"),
        ("POST", "/clients", {"name": "Захват", "phones": [LEAD_PHONE]}, "phones"),
        ("POST", "/clients", {"name": "Захват", "emails": [LEAD_EMAIL]}, "emails"),
        (
            "POST",
            f"/clients/{ids['b1']}/contacts",
            {"name": "Иван", "phones": [LEAD_PHONE]},
            "phones",
        ),
        ("POST", "/leads", {"name": "Дубль", "phones": [LEAD_PHONE]}, "phones"),
        ("POST", "/leads", {"name": "Дубль", "phones": [CLIENT_PHONE]}, "phones"),
    ]
    for method, path, body, field in attempts:
        status, out = await b1.call(method, path, body)
        assert status == 409, (method, path, body, status, out)
        assert out["field"] == field
        assert out["error_ru"]
        _names_neither(out, out["error"].split()[1])
    assert await _points(api.db) == before_points
    assert await _counts(api.db) == before_counts

    # The next form from that phone lands on a1's lead, not on b1's client.
    hub = Hub(api.db)
    await hub.start()
    try:
        receipt = await hub(
            InboundEvent(
                channel=Channel.WEBFORM,
                kind=EventKind.FORM_SUBMITTED,
                external_id="takeover-1",
                occurred_at=datetime.now(UTC),
                identities=(f"phone:{LEAD_PHONE}",),
                display_name="Анна",
                text="Перезвоните",
            ),
            wait=True,
        )
    finally:
        await hub.stop()
    assert receipt.status == "processed"
    assert receipt.lead_id == ids["lead"]
    assert receipt.client_id != ids["b1"]


async def test_a_manager_may_still_attach_a_phone_of_their_own_lead(api: Api) -> None:
    ids = await _seed(api)
    status, out = await api.as_("a1").patch(
        f"/clients/{ids['a1_client']}", {"phones": [LEAD_PHONE]}
    )
    assert status == 200, out
    assert LEAD_PHONE in out["phones"]


async def test_who_sees_both_sides_may_move_the_phone(api: Api) -> None:
    ids = await _seed(api)
    # The supervisor of team A sees a1's lead and a2's client.
    status, out = await api.as_("sup").patch(f"/clients/{ids['a2']}", {"phones": [LEAD_PHONE]})
    assert status == 200, out
    assert LEAD_PHONE in out["phones"]
    # An admin sees everything, and may move the lead's email to b1's client.
    status, out = await api.as_("admin").patch(f"/clients/{ids['b1']}", {"emails": [LEAD_EMAIL]})
    assert status == 200, out
    assert LEAD_EMAIL in out["emails"]
    points = {p[0]: p for p in await _points(api.db)}
    assert points[LEAD_PHONE][1] == ids["a2"]
    assert points[LEAD_EMAIL][1] == ids["b1"]


async def test_a_visible_conflict_still_names_the_lead(api: Api) -> None:
    """For a lead the caller sees, the message may say which one (it is theirs)."""
    ids = await _seed(api)
    status, out = await api.as_("a1").post("/leads", {"name": "Дубль", "phones": [LEAD_PHONE]})
    assert status == 409
    assert out["error"] == f"phone {LEAD_PHONE} already belongs to lead {ids['lead']}"


async def test_conversion_into_a_hidden_client_changes_nothing(api: Api) -> None:
    ids = await _seed(api)
    async with api.db.transaction() as s:
        b1_lead = await create_lead(
            s, Actor.of(api.users["b1"]), {"name": "Лид b1", "phones": ["+79169990000"]}
        )
    before_points, before_counts = await _points(api.db), await _counts(api.db)
    status, out = await api.as_("b1").post(
        f"/leads/{b1_lead.id}/convert", {"client_id": ids["a1_client"]}
    )
    assert status == 404, out
    assert await _points(api.db) == before_points
    assert await _counts(api.db) == before_counts
