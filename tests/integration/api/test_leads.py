"""Leads: phone/email filters in several spellings, convert, reject."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from crm_core.models import (
    AuditEntry,
    ContactPoint,
    Deal,
    DealStageChange,
    Interaction,
    Lead,
    utcnow,
)
from gateway.api.responses import ConvertOut, LeadOut
from tests.support.api import Api, count


async def _lead(api: Api, who: str = "a1", **body: object) -> dict[str, object]:
    status, lead = await api.as_(who).post("/leads", body)
    assert status == 201, lead
    return lead


@pytest.mark.parametrize(
    "spelling",
    [
        "+79165551234",
        "8 (916) 555-12-34",
        "89165551234",
        "9165551234",
        "+7 916 555 12 34",
        "8-916-555-12-34",
    ],
)
async def test_leads_by_phone_in_any_spelling(api: Api, spelling: str) -> None:
    lead = await _lead(api, name="Иван", phones=["8 916 555 12 34"], emails=["Ivan@Example.RU"])
    await _lead(api, name="Другой", phones=["+79031112233"])
    status, page = await api.as_("a1").get("/leads", phone=spelling)
    assert status == 200
    assert [i["id"] for i in page["items"]] == [lead["id"]]
    assert page["total"] == 1
    item = page["items"][0]
    LeadOut.model_validate(item)
    assert item["phones"] == ["+79165551234"]
    assert item["emails"] == ["ivan@example.ru"]
    assert item["source"] == "manual" and item["status"] == "new"
    assert item["owner_id"] == api.users["a1"].id


async def test_leads_by_email_status_owner_and_period(api: Api) -> None:
    first = await _lead(api, name="Пётр", emails=["petr@example.ru"])
    second = await _lead(api, "a2", name="Павел", phones=["+79031112233"])
    admin = api.as_("admin")
    assert [i["id"] for i in (await admin.get("/leads", email="PETR@example.ru"))[1]["items"]] == [
        first["id"]
    ]
    by_owner = (await admin.get("/leads", owner_id=api.users["a2"].id))[1]
    assert [i["id"] for i in by_owner["items"]] == [second["id"]]
    assert (await admin.get("/leads", status="rejected"))[1]["total"] == 0
    today = utcnow().date()
    assert (await admin.get("/leads", created_from=str(today)))[1]["total"] == 2
    assert (await admin.get("/leads", created_to=str(today - timedelta(days=1))))[1]["total"] == 0
    assert (await admin.get("/leads", q="Пав"))[1]["total"] == 1
    status, err = await admin.get("/leads", phone="not a phone")
    assert status == 422 and err["field"] == "phone"
    status, err = await admin.get("/leads", created_from="yesterday")
    assert status == 422 and err["field"] == "created_from"


async def test_convert_creates_client_and_deal_in_one_go(api: Api) -> None:
    lead = await _lead(
        api,
        name="Иван",
        company="ООО Вектор",
        phones=["+79165551234"],
        emails=["ivan@vector.example"],
    )
    async with api.db.transaction() as s:
        s.add(
            Interaction(
                lead_id=lead["id"],
                channel="webform",
                direction="in",
                kind="form_submitted",
                subject="Заявка",
            )
        )
    status, out = await api.as_("a1").post(
        f"/leads/{lead['id']}/convert", {"deal_title": "Поставка", "amount": "150000"}
    )
    assert status == 200, out
    ConvertOut.model_validate(out)
    client, deal = out["client"], out["deal"]
    assert (client["kind"], client["name"]) == ("company", "ООО Вектор")
    assert client["phones"] == ["+79165551234"] and client["emails"] == ["ivan@vector.example"]
    assert client["owner_id"] == api.users["a1"].id
    assert (deal["stage"], deal["amount"], deal["title"]) == ("new", "150000.00", "Поставка")
    assert deal["client_id"] == client["id"] and deal["lead_id"] == lead["id"]
    assert out["lead"]["status"] == "converted"
    assert out["lead"]["client_id"] == client["id"] and out["lead"]["deal_id"] == deal["id"]
    # The lead's interaction is now on the client's timeline.
    status, tl = await api.as_("a1").get(f"/clients/{client['id']}/timeline")
    assert status == 200 and [i["subject"] for i in tl["items"]] == ["Заявка"]
    assert tl["items"][0]["client_id"] == client["id"]
    async with api.db.sessions() as s:
        history = list(
            await s.scalars(select(DealStageChange).where(DealStageChange.deal_id == deal["id"]))
        )
        assert [(h.from_stage, h.to_stage, h.user_id) for h in history] == [
            (None, "new", api.users["a1"].id)
        ]
        cps = list(await s.scalars(select(ContactPoint).order_by(ContactPoint.id)))
        assert {(c.kind, c.value, c.client_id) for c in cps} == {
            ("phone", "+79165551234", client["id"]),
            ("email", "ivan@vector.example", client["id"]),
        }
        assert (
            await s.scalar(
                select(AuditEntry.action).where(
                    AuditEntry.entity == "lead", AuditEntry.action == "convert"
                )
            )
            == "convert"
        )
    # The converted lead is found by phone through its client too.
    assert (await api.as_("a1").get("/clients", phone="8 916 555-12-34"))[1]["total"] == 1
    status, again = await api.as_("a1").post(f"/leads/{lead['id']}/convert", {})
    assert status == 409 and again["field"] == "status"


async def test_convert_into_an_existing_client(api: Api) -> None:
    status, client = await api.as_("a1").post("/clients", {"name": "Мария", "kind": "person"})
    assert status == 201
    lead = await _lead(api, name="Мария", phones=["+79031234567"])
    status, out = await api.as_("a1").post(
        f"/leads/{lead['id']}/convert", {"client_id": client["id"]}
    )
    assert status == 200, out
    assert out["client"]["id"] == client["id"]
    assert out["client"]["phones"] == ["+79031234567"]
    assert out["deal"]["title"] == "Заявка: Мария"
    # A client hidden from the actor cannot be the target: 404, nothing changes.
    lead2 = await _lead(api, "b1", name="X", phones=["+79031234568"])
    deals_before = await count(api.db, Deal)
    status, _err = await api.as_("b1").post(
        f"/leads/{lead2['id']}/convert", {"client_id": client["id"]}
    )
    assert status == 404
    assert await count(api.db, Deal) == deals_before
    async with api.db.sessions() as s:
        assert (await s.get(Lead, lead2["id"])).status == "new"  # type: ignore[union-attr]


async def test_reject_needs_a_reason(api: Api) -> None:
    lead = await _lead(api, name="Спам")
    audits = await count(api.db)
    for body, field in (({}, "reason"), ({"reason": "   "}, "reason"), ({"reason": 5}, "reason")):
        status, err = await api.as_("a1").post(f"/leads/{lead['id']}/reject", body)
        assert (status, err["field"]) == (422, field)
    assert await count(api.db) == audits
    status, out = await api.as_("a1").post(f"/leads/{lead['id']}/reject", {"reason": "дубль"})
    assert status == 200
    assert (out["status"], out["loss_reason"]) == ("rejected", "дубль")
    assert out["closed_at"] is not None
    status, err = await api.as_("a1").post(f"/leads/{lead['id']}/reject", {"reason": "again"})
    assert status == 409
    status, err = await api.as_("a1").patch(f"/leads/{lead['id']}", {"status": "new"})
    assert status == 409


async def test_patch_status_cannot_close(api: Api) -> None:
    lead = await _lead(api, name="Лид")
    status, out = await api.as_("a1").patch(f"/leads/{lead['id']}", {"status": "in_progress"})
    assert status == 200 and out["status"] == "in_progress"
    status, err = await api.as_("a1").patch(f"/leads/{lead['id']}", {"status": "converted"})
    assert status == 422 and err["field"] == "status"
