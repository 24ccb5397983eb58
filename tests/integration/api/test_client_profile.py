"""The client's business profile through the REST API, on SQLite and PostgreSQL: every
field round-trips, bad values are refused naming the field (RU and EN) and write
nothing, statuses and custom fields are the admin's, contact persons are named on the
company's timeline when they call or write, and the list filters and sorts on it all."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from crm_core.events import Channel, EventKind, InboundEvent
from crm_core.hub import Hub
from crm_core.models import Client, ClientTag, ContactPerson, ContactPoint
from gateway.api.responses import ClientOut, ContactOut, CustomFieldOut, InteractionOut, StatusOut
from tests.support.api import Api, count

SBER_INN, SBER_OGRN = "7707083893", "1027700132195"
VTB_INN = "7702070139"
IP_INN, IP_OGRNIP = "500100732259", "304500116000157"


async def _fields(api: Api) -> None:
    admin = api.as_("admin")
    for body in (
        {"key": "size", "label_ru": "Размер", "label_en": "Size", "type": "choice",
         "options": ["S", "M", "L"]},
        {"key": "brands", "label_ru": "Бренды", "type": "multi", "options": ["A", "B", "C"]},
        {"key": "stores", "label_ru": "Магазинов", "type": "number"},
        {"key": "since", "label_ru": "Клиент с", "type": "date"},
        {"key": "note2", "label_ru": "Пометка", "type": "text"},
    ):  # fmt: skip
        status, out = await admin.post("/custom-fields", body)
        assert status == 201, out
        CustomFieldOut.model_validate(out)


FULL = {
    "kind": "company",
    "name": "Сбер",
    "full_name": "ПАО «Сбербанк России»",
    "inn": SBER_INN,
    "kpp": "773601001",
    "ogrn": SBER_OGRN,
    "legal_address": "Москва, ул. Вавилова, 19",
    "actual_address": "Москва, ул. Вавилова, 19",
    "city": "Москва",
    "region": "Москва",
    "industry": "Банки",
    "activity": "64.19 Денежное посредничество",
    "headcount": 200000,
    "revenue": "3500000000.50",
    "website": "sberbank.ru",
    "source": "выставка",
    "status": "ready",
    "tags": ["vip", "банк", "vip"],
    "custom": {"size": "L", "brands": ["A", "C"], "stores": "12", "since": "2020-05-01"},
    "phones": ["8 (495) 500-55-50"],
    "emails": ["Info@Sber.example"],
}


async def test_the_whole_profile_round_trips(api: Api) -> None:
    await _fields(api)
    a1 = api.as_("a1")
    status, made = await a1.post("/clients", FULL)
    assert status == 201, made
    ClientOut.model_validate(made)
    status, got = await a1.get(f"/clients/{made['id']}")
    assert status == 200
    for key in ("full_name", "inn", "kpp", "ogrn", "city", "region", "industry", "activity"):
        assert got[key] == FULL[key], key
    assert got["headcount"] == 200000 and got["revenue"] == "3500000000.50"
    assert got["website"] == "https://sberbank.ru" and got["status"] == "ready"
    assert got["tags"] == ["vip", "банк"]
    assert got["custom"] == {"size": "L", "brands": ["A", "C"], "stores": 12, "since": "2020-05-01"}
    assert got["phones"] == ["+74955005550"] and got["emails"] == ["info@sber.example"]
    assert got["parent"] is None and got["branches"] == [] and got["contacts"] == []
    async with api.db.sessions() as s:
        tags = set(await s.scalars(select(ClientTag.tag).where(ClientTag.client_id == made["id"])))
    assert tags == {"vip", "банк"}

    # A branch: the same INN with its own KPP; the head office lists it.
    status, branch = await a1.post(
        "/clients",
        {"name": "Сбер, Северо-Западный банк", "inn": SBER_INN, "kpp": "784243001",
         "parent_id": made["id"], "custom": {"size": "M"}},
    )  # fmt: skip
    assert status == 201, branch
    assert branch["parent"] == {"id": made["id"], "name": "Сбер"}
    _, head = await a1.get(f"/clients/{made['id']}")
    assert head["branches"] == [{"id": branch["id"], "name": branch["name"], "kpp": "784243001"}]
    # The same INN and KPP again is a duplicate.
    status, err = await a1.post("/clients", {"name": "X", "inn": SBER_INN, "kpp": "784243001"})
    assert (status, err["field"]) == (409, "kpp") and "КПП" in err["error_ru"]

    # PATCH: null clears, tags replace, custom sets the keys given (null removes one).
    status, out = await a1.patch(
        f"/clients/{made['id']}",
        {"city": None, "tags": ["новый"], "custom": {"brands": None, "stores": 3},
         "headcount": 0},
    )  # fmt: skip
    assert status == 200, out
    assert out["city"] is None and out["tags"] == ["новый"] and out["headcount"] == 0
    assert out["custom"] == {"size": "L", "stores": 3, "since": "2020-05-01"}
    assert out["region"] == "Москва" and out["inn"] == SBER_INN  # untouched

    # A person: birthday, a 12-digit INN, an OGRNIP.
    status, person = await a1.post(
        "/clients",
        {"kind": "person", "name": "ИП Иванов", "inn": IP_INN, "ogrn": IP_OGRNIP,
         "birthday": "1980-02-29", "custom": {"size": "S"}},
    )  # fmt: skip
    assert status == 201, person
    assert person["birthday"] == "1980-02-29" and person["ogrn"] == IP_OGRNIP


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"inn": "7707083894"}, 422, "inn"),
        ({"inn": SBER_INN, "kpp": "77360100"}, 422, "kpp"),
        ({"inn": SBER_INN, "kpp": "7736AB00Z"}, 422, "kpp"),
        ({"kpp": "773601001"}, 422, "kpp"),
        ({"kind": "person", "inn": IP_INN, "kpp": "773601001"}, 422, "kpp"),
        ({"ogrn": "1027700132196"}, 422, "ogrn"),
        ({"ogrn": "12345"}, 422, "ogrn"),
        ({"website": "not a site"}, 422, "website"),
        ({"website": "ftp://files.example.ru"}, 422, "website"),
        ({"headcount": -1}, 422, "headcount"),
        ({"revenue": -5}, 422, "revenue"),
        ({"revenue": "lots"}, 422, "revenue"),
        ({"birthday": "1990-01-01"}, 422, "birthday"),  # a company has none
        ({"kind": "person", "birthday": "3000-01-01"}, 422, "birthday"),
        ({"kind": "person", "birthday": "31.12.1990"}, 422, "birthday"),
        ({"status": "lukewarm"}, 422, "status"),
        ({"tags": "vip"}, 422, "tags"),
        ({"parent_id": 999999}, 422, "parent_id"),
        ({"custom": {"size": "XL", "stores": 1}}, 422, "custom.size"),
        ({"custom": {"size": "S", "stores": "many"}}, 422, "custom.stores"),
        ({"custom": {"size": "S", "since": "yesterday"}}, 422, "custom.since"),
        ({"custom": {"size": "S", "brands": ["A", "Z"]}}, 422, "custom.brands"),
        ({"custom": {"size": "S", "colour": "red"}}, 422, "custom.colour"),
        ({"custom": {"stores": 1}}, 422, "custom.size"),  # required
    ],
)
async def test_bad_profile_values_name_the_field_and_write_nothing(
    api: Api, body: dict[str, Any], status: int, field: str
) -> None:
    await _fields(api)
    admin = api.as_("admin")
    got, _ = await admin.patch("/custom-fields/1", {"required": True})  # size
    assert got == 200
    a1 = api.as_("a1")
    before = (await count(api.db, Client), await count(api.db, ClientTag))
    got, err = await a1.post("/clients", {"name": "X", "custom": {"size": "S"}, **body})
    assert (got, err.get("field")) == (status, field), err
    assert err["error"] and err.get("error_ru"), err
    assert (await count(api.db, Client), await count(api.db, ClientTag)) == before


async def test_parent_must_be_a_company_and_never_a_cycle(api: Api) -> None:
    a1 = api.as_("a1")
    _, holding = await a1.post("/clients", {"name": "Холдинг"})
    _, branch = await a1.post("/clients", {"name": "Филиал", "parent_id": holding["id"]})
    _, sub = await a1.post("/clients", {"name": "Подфилиал", "parent_id": branch["id"]})
    _, person = await a1.post("/clients", {"kind": "person", "name": "Пётр"})
    status, err = await a1.patch(f"/clients/{holding['id']}", {"parent_id": sub["id"]})
    assert (status, err["field"]) == (422, "parent_id") and "цикл" in err["error_ru"], err
    status, err = await a1.patch(f"/clients/{holding['id']}", {"parent_id": holding["id"]})
    assert (status, err["field"]) == (422, "parent_id")
    status, err = await a1.post("/clients", {"name": "Y", "parent_id": person["id"]})
    assert (status, err["field"]) == (422, "parent_id")
    # Another manager's company is not visible: "not found", nothing leaks.
    _, other = await api.as_("b1").post("/clients", {"name": "Чужой холдинг"})
    status, err = await a1.post("/clients", {"name": "Z", "parent_id": other["id"]})
    assert (status, err["field"]) == (422, "parent_id")
    _, h = await a1.get(f"/clients/{holding['id']}")
    assert h["parent_id"] is None and [b["id"] for b in h["branches"]] == [branch["id"]]


async def test_statuses_are_the_admins_list(api: Api) -> None:
    admin, a1 = api.as_("admin"), api.as_("a1")
    status, page = await a1.get("/client-statuses")
    assert status == 200
    assert [x["key"] for x in page["items"]] == [
        "cold", "thinking", "ready", "active", "regular", "lost",
    ]  # fmt: skip
    assert page["items"][0]["name_ru"] == "Холодный" and "clients" not in page["items"][0]
    status, err = await a1.post("/client-statuses", {"key": "vip", "name_ru": "В", "name_en": "V"})
    assert status == 403 and err["error_ru"]
    status, made = await admin.post(
        "/client-statuses", {"key": "partner", "name_ru": "Партнёр", "name_en": "Partner"}
    )
    assert status == 201 and made["position"] == 70, made
    StatusOut.model_validate(made)
    status, _ = await admin.post(
        "/client-statuses", {"key": "partner", "name_ru": "x", "name_en": "x"}
    )
    assert status == 409
    status, moved = await admin.patch(
        "/client-statuses/partner", {"name_ru": "Партнёр+", "position": 5}
    )
    assert status == 200 and moved["name_ru"] == "Партнёр+"
    _, page = await a1.get("/client-statuses")
    assert page["items"][0]["key"] == "partner"

    _, c = await a1.post("/clients", {"name": "Партнёрская", "status": "partner"})
    assert c["status"] == "partner"
    # In use: cannot be deleted, only deactivated; then no client can be given it.
    status, err = await admin.call("DELETE", "/client-statuses/partner")
    assert status == 409 and "отключить" in err["error_ru"]
    status, _ = await admin.patch("/client-statuses/partner", {"active": False})
    assert status == 200
    status, err = await a1.post("/clients", {"name": "Ещё", "status": "partner"})
    assert (status, err["field"]) == (422, "status")
    _, still = await a1.get(f"/clients/{c['id']}")
    assert still["status"] == "partner"  # kept by the client that has it
    status, _ = await a1.patch(f"/clients/{c['id']}", {"name": "Партнёрская 2"})
    assert status == 200  # editing other fields keeps it
    _, page = await admin.get("/client-statuses")
    assert {x["key"]: x["clients"] for x in page["items"]}["partner"] == 1
    status, _ = await admin.call("DELETE", "/client-statuses/nope")
    assert status == 404
    await admin.post("/client-statuses", {"key": "tmp", "name_ru": "В", "name_en": "T"})
    status, _ = await admin.call("DELETE", "/client-statuses/tmp")
    assert status == 204
    # Without "cold" a new client gets the first active status.
    await admin.patch("/client-statuses/cold", {"active": False})
    _, fresh = await a1.post("/clients", {"name": "Новый"})
    assert fresh["status"] == "thinking"


async def test_custom_fields_are_the_admins_and_types_do_not_change_under_values(
    api: Api,
) -> None:
    await _fields(api)
    admin, a1 = api.as_("admin"), api.as_("a1")
    status, page = await a1.get("/custom-fields")
    assert status == 200 and [f["key"] for f in page["items"]][:2] == ["size", "brands"]
    status, _ = await a1.post("/custom-fields", {"key": "x", "label_ru": "X", "type": "text"})
    assert status == 403
    status, err = await admin.post(
        "/custom-fields", {"key": "bad", "label_ru": "B", "type": "choice"}
    )
    assert (status, err["field"]) == (422, "options")
    status, err = await admin.post(
        "/custom-fields", {"key": "size", "label_ru": "S", "type": "text"}
    )
    assert status == 409
    fields = {f["key"]: f for f in page["items"]}
    # No values yet: the type may change.
    status, changed = await admin.patch(
        f"/custom-fields/{fields['note2']['id']}", {"type": "number"}
    )
    assert status == 200 and changed["type"] == "number"
    await a1.post("/clients", {"name": "С полем", "custom": {"stores": 4}})
    status, err = await admin.patch(f"/custom-fields/{fields['stores']['id']}", {"type": "text"})
    assert (status, err["field"]) == (409, "type") and err["error_ru"]
    status, err = await admin.call("DELETE", f"/custom-fields/{fields['stores']['id']}")
    assert status == 409
    status, off = await admin.patch(f"/custom-fields/{fields['stores']['id']}", {"active": False})
    assert status == 200 and off["active"] is False
    status, err = await a1.post("/clients", {"name": "Y", "custom": {"stores": 1}})
    assert (status, err["field"]) == (422, "custom.stores")
    status, _ = await admin.call("DELETE", f"/custom-fields/{fields['since']['id']}")
    assert status == 204
    status, _ = await admin.call("DELETE", "/custom-fields/999")
    assert status == 404


async def test_contact_persons_one_primary_phones_normalized(api: Api) -> None:
    a1 = api.as_("a1")
    _, company = await a1.post("/clients", {"name": "Ромашка"})
    cid = company["id"]
    status, anna = await a1.post(
        f"/clients/{cid}/contacts",
        {"name": "Анна", "position": "Закупки", "phones": ["8 916 111-22-33 доб. 12"],
         "emails": ["Anna@Romashka.example"], "notes": "по вторникам", "is_primary": True},
    )  # fmt: skip
    assert status == 201, anna
    ContactOut.model_validate(anna)
    assert anna["phones"] == ["+79161112233"] and anna["emails"] == ["anna@romashka.example"]
    _, boris = await a1.post(f"/clients/{cid}/contacts", {"name": "Борис", "is_primary": True})
    _, page = await a1.get(f"/clients/{cid}/contacts")
    assert [(p["name"], p["is_primary"]) for p in page["items"]] == [
        ("Борис", True), ("Анна", False),
    ]  # fmt: skip
    _, card = await a1.get(f"/clients/{cid}")
    assert [p["name"] for p in card["contacts"]] == ["Борис", "Анна"]
    assert card["phones"] == []  # the company's own phones; the persons' are under them
    async with api.db.sessions() as s:
        cp = await s.scalar(select(ContactPoint).where(ContactPoint.value == "+79161112233"))
        assert cp is not None and cp.client_id == cid and cp.contact_person_id == anna["id"]
        assert cp.extension == "12"
    # PATCH: phones replace, primary moves back.
    status, out = await a1.patch(
        f"/contacts/{anna['id']}", {"phones": ["+7 903 444 55 66"], "is_primary": True}
    )
    assert status == 200 and out["phones"] == ["+79034445566"] and out["is_primary"]
    _, page = await a1.get(f"/clients/{cid}/contacts")
    assert [p["is_primary"] for p in page["items"]] == [True, False]
    status, err = await a1.patch(f"/contacts/{anna['id']}", {"phones": ["12"]})
    assert (status, err["field"]) == (422, "phones")
    status, err = await a1.patch(f"/contacts/{anna['id']}", {"name": ""})
    assert (status, err["field"]) == (422, "name")
    # Another team's manager sees nothing.
    status, _ = await api.as_("b1").patch(f"/contacts/{anna['id']}", {"name": "X"})
    assert status == 404
    status, _ = await api.as_("b1").call("DELETE", f"/contacts/{anna['id']}")
    assert status == 404
    status, _ = await a1.call("DELETE", f"/contacts/{boris['id']}")
    assert status == 204
    status, _ = await a1.call("DELETE", f"/contacts/{anna['id']}")
    assert status == 204
    assert await count(api.db, ContactPerson) == 0
    async with api.db.sessions() as s:
        assert (
            await s.scalar(select(ContactPoint).where(ContactPoint.value == "+79034445566")) is None
        )


async def test_a_contact_persons_call_and_email_name_them_on_the_company_timeline(
    api: Api,
) -> None:
    a1 = api.as_("a1")
    _, company = await a1.post("/clients", {"name": "Ромашка", "phones": ["+74951234567"]})
    _, anna = await a1.post(
        f"/clients/{company['id']}/contacts",
        {"name": "Анна Смирнова", "phones": ["+79161112233"], "emails": ["anna@romashka.example"]},
    )
    now = datetime.now(UTC)
    hub = Hub(api.db)
    await hub.start()
    try:
        call = InboundEvent(
            channel=Channel.CALL,
            kind=EventKind.CALL_ENDED,
            external_id="call-anna-1",
            occurred_at=now,
            identities=("phone:+79161112233",),
            meta={"outcome": "answered", "talk_seconds": 42},
        )
        mail = InboundEvent(
            channel=Channel.EMAIL,
            kind=EventKind.EMAIL_RECEIVED,
            external_id="<mail-anna-1@romashka.example>",
            occurred_at=now,
            identities=("email:anna@romashka.example",),
            subject="Счёт",
            text="Пришлите счёт",
            meta={"message_id": "<mail-anna-1@romashka.example>"},
        )
        own = InboundEvent(
            channel=Channel.CALL,
            kind=EventKind.CALL_ENDED,
            external_id="call-office-1",
            occurred_at=now,
            identities=("phone:+74951234567",),
            meta={"outcome": "answered"},
        )
        for event in (call, mail, own):
            receipt = await hub(event, wait=True)
            assert receipt.status == "processed" and receipt.client_id == company["id"]
    finally:
        await hub.stop()
    status, page = await a1.get(f"/clients/{company['id']}/timeline")
    assert status == 200
    for item in page["items"]:
        InteractionOut.model_validate(item)
    named = {i["channel"]: i["contact_person"] for i in page["items"] if i["contact_person"]}
    assert named == {
        "call": {"id": anna["id"], "name": "Анна Смирнова"},
        "email": {"id": anna["id"], "name": "Анна Смирнова"},
    }
    assert sum(1 for i in page["items"] if i["contact_person"] is None) == 1  # the office line
    _, card = await a1.get(f"/clients/{company['id']}")
    assert card["last_contact_at"] is not None


async def _base(api: Api) -> dict[str, int]:
    await _fields(api)
    a1, a2 = api.as_("a1"), api.as_("a2")
    rows = [
        (a1, {"name": "Альфа", "city": "Москва", "region": "Москва", "industry": "Банки",
              "headcount": 500, "revenue": 1000, "tags": ["vip"], "status": "active",
              "custom": {"size": "S", "brands": ["A"], "stores": 3, "since": "2020-01-01",
                         "note2": "Любит чай"}}),
        (a1, {"name": "Бета", "city": "Казань", "region": "Татарстан", "industry": "Розница",
              "headcount": 50, "revenue": 200, "tags": ["vip", "опт"],
              "custom": {"size": "M", "brands": ["A", "B"], "stores": 10,
                         "since": "2022-06-01"}}),
        (a2, {"name": "Гамма", "city": "Москва", "region": "Москва", "industry": "Розница",
              "custom": {"size": "L", "brands": ["C"]}}),
        (a1, {"kind": "person", "name": "Вера", "city": "Тверь", "custom": {"size": "S"}}),
    ]  # fmt: skip
    ids: dict[str, int] = {}
    for who, body in rows:
        status, out = await who.post("/clients", body)
        assert status == 201, out
        ids[body["name"]] = out["id"]
    _, branch = await a1.post(
        "/clients", {"name": "Альфа-Казань", "parent_id": ids["Альфа"], "custom": {"size": "S"}}
    )
    ids["Альфа-Казань"] = branch["id"]
    return ids


async def _names(api: Api, who: str = "admin", **params: Any) -> list[str]:
    status, page = await api.as_(who).get("/clients", **params)
    assert status == 200, page
    return [c["name"] for c in page["items"]]


async def test_the_list_filters_on_the_profile(api: Api) -> None:
    ids = await _base(api)
    n = _names
    assert sorted(await n(api, city="Москва")) == ["Альфа", "Гамма"]
    assert await n(api, region="Татарстан") == ["Бета"]
    assert sorted(await n(api, industry="Розница")) == ["Бета", "Гамма"]
    assert await n(api, status="active") == ["Альфа"]
    assert sorted(await n(api, tag="vip")) == ["Альфа", "Бета"]
    assert await n(api, kind="person") == ["Вера"]
    assert await n(api, headcount_min="100") == ["Альфа"]
    assert await n(api, headcount_max="100") == ["Бета"]
    assert await n(api, revenue_min="300", revenue_max="5000") == ["Альфа"]
    assert await n(api, parent_id=str(ids["Альфа"])) == ["Альфа-Казань"]
    owner = api.users["a2"].id
    assert await n(api, owner_id=str(owner)) == ["Гамма"]
    assert sorted(await n(api, **{"cf.size": "S"})) == ["Альфа", "Альфа-Казань", "Вера"]
    assert sorted(await n(api, **{"cf.brands": "A"})) == ["Альфа", "Бета"]
    assert await n(api, **{"cf.stores": "5..20"}) == ["Бета"]
    assert sorted(await n(api, **{"cf.stores": "..10"})) == ["Альфа", "Бета"]
    assert await n(api, **{"cf.since": "2021-01-01.."}) == ["Бета"]
    assert await n(api, **{"cf.note2": "чай"}) == ["Альфа"]
    assert await n(api, **{"cf.brands": "B", "cf.size": "M", "city": "Казань"}) == ["Бета"]
    # A manager sees only their own, filters or not.
    assert await n(api, "a2", city="Москва") == ["Гамма"]
    for params, field in (
        ({"cf.nope": "1"}, "cf.nope"),
        ({"cf.stores": "many"}, "cf.stores"),
        ({"headcount_min": "-1"}, "headcount_min"),
        ({"sort": "colour"}, "sort"),
        ({"colour": "red"}, "colour"),
    ):
        status, err = await api.as_("admin").get("/clients", **params)
        # the generic check of every JSON body (400) names the exact key, e.g. custom.note2
        assert status in (400, 422) and str(err.get("field")).startswith(field), err
        assert err.get("error_ru"), err


async def test_the_list_sorts_and_pages_by_keyset(api: Api) -> None:
    await _base(api)
    admin = api.as_("admin")
    assert await _names(api, sort="name") == ["Альфа", "Альфа-Казань", "Бета", "Вера", "Гамма"]
    assert await _names(api, sort="-name") == ["Гамма", "Вера", "Бета", "Альфа-Казань", "Альфа"]
    # Empty values last in either direction.
    assert await _names(api, sort="revenue") == ["Бета", "Альфа", "Гамма", "Вера", "Альфа-Казань"]
    assert await _names(api, sort="-revenue") == [
        "Альфа", "Бета", "Альфа-Казань", "Вера", "Гамма",
    ]  # fmt: skip
    for sort in ("name", "-revenue", "city", "-headcount", "created_at", "-updated_at", "id"):
        seen: list[int] = []
        after = None
        for _ in range(10):
            params = {"sort": sort, "limit": "2"} | ({"after": after} if after else {})
            status, page = await admin.get("/clients", **params)
            assert status == 200, page
            seen += [c["id"] for c in page["items"]]
            after = page["next_after"]
            if after is None:
                break
        status, whole = await admin.get("/clients", sort=sort, limit="50")
        assert seen == [c["id"] for c in whole["items"]], sort
        assert len(seen) == 5
    status, err = await admin.get("/clients", sort="name", after="garbage")
    assert (status, err["field"]) == (422, "after")


async def test_nul_characters_are_refused_naming_the_field(api: Api) -> None:
    """PostgreSQL text cannot hold NUL: a 422 naming the field, never a 500 (schemathesis)."""
    await _fields(api)
    admin = api.as_("admin")
    for path, body, field in (
        ("/client-statuses", {"key": "x", "name_ru": "Х", "name_en": "X\x00"}, "name_en"),
        ("/custom-fields", {"key": "y", "label_ru": "\x00", "type": "text"}, "label_ru"),
        ("/clients", {"name": "A", "custom": {"note2": "a\x00b"}}, "custom"),
        ("/clients", {"name": "A", "city": "\x00"}, "city"),
    ):
        status, err = await admin.post(path, body)
        # the generic check of every JSON body (400) names the exact key, e.g. custom.note2
        assert status in (400, 422) and str(err.get("field")).startswith(field), err
        assert "NUL" in err["error_ru"]
    for params, field in (({"city": "\x00"}, "city"), ({"cf.note2": "\x00"}, "cf.note2")):
        status, err = await admin.get("/clients", **params)
        # the generic check of every JSON body (400) names the exact key, e.g. custom.note2
        assert status in (400, 422) and str(err.get("field")).startswith(field), err
    assert await count(api.db, Client) == 0
