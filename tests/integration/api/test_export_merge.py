"""Export of the clients list and merging duplicates, through the REST API, on SQLite
and PostgreSQL: roles, filters, the file's shape, what moves in a merge, the counters
and the name search after it, refused input that writes nothing."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

import openpyxl
import pytest
from sqlalchemy import func, select

from crm_core.db import Database
from crm_core.models import (
    AuditEntry,
    Client,
    ClientTag,
    ContactPerson,
    ContactPoint,
    Deal,
    ImportBatch,
    ImportLink,
    Interaction,
    InteractionMonthly,
    Lead,
    Segment,
    SegmentClient,
    Task,
)
from tests.integration.exports.seed import inn10
from tests.support.api import Api, count


async def _client(db: Database, owner: int, name: str, **kw: Any) -> int:
    async with db.transaction() as s:
        c = Client(kind=kw.pop("kind", "company"), name=name, owner_id=owner, **kw)
        s.add(c)
        await s.flush()
        return c.id


async def _phone(db: Database, client_id: int, value: str) -> None:
    async with db.transaction() as s:
        s.add(ContactPoint(kind="phone", value=value, client_id=client_id))


async def _download(api: Api, who: str, **params: Any) -> tuple[int, Any, Any]:
    headers = {"Authorization": f"Bearer {api.tokens[who]}"}
    resp = await api.http.get("/api/v1/clients/export", params=params, headers=headers)
    body = await resp.read()
    return resp.status, resp.headers, body


def _csv_rows(body: bytes) -> list[list[str]]:
    assert body.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(body[3:].decode("utf-8")), delimiter=";"))


@pytest.fixture
async def base(api: Api) -> dict[str, int]:
    u = api.users
    ids = {
        "a1": await _client(api.db, u["a1"].id, "Альфа А1", status="active"),
        "a1b": await _client(api.db, u["a1"].id, "Бета А1", status="cold"),
        "a2": await _client(api.db, u["a2"].id, "Гамма А2", status="active"),
        "b1": await _client(api.db, u["b1"].id, "Дельта Б1", status="active"),
    }
    await _phone(api.db, ids["a1"], "+79160000001")
    return ids


SEES = {
    "admin": {"Альфа А1", "Бета А1", "Гамма А2", "Дельта Б1"},
    "sup": {"Альфа А1", "Бета А1", "Гамма А2"},
    "a1": {"Альфа А1", "Бета А1"},
    "b1": {"Дельта Б1"},
}


@pytest.mark.parametrize("who", list(SEES))
async def test_export_holds_only_what_the_user_may_see(
    api: Api, base: dict[str, int], who: str
) -> None:
    status, headers, body = await _download(api, who, format="csv")
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    assert "attachment" in headers["Content-Disposition"]
    rows = _csv_rows(body)
    assert rows[0][0] == "Наименование"
    assert {r[0] for r in rows[1:]} == SEES[who]


async def test_export_applies_the_list_filters_and_segment(api: Api, base: dict[str, int]) -> None:
    _, _, body = await _download(api, "admin", format="csv", status="active")
    assert {r[0] for r in _csv_rows(body)[1:]} == {"Альфа А1", "Гамма А2", "Дельта Б1"}
    _, _, body = await _download(api, "admin", format="csv", phone="8 916 000-00-01")
    assert [r[0] for r in _csv_rows(body)[1:]] == ["Альфа А1"]
    async with api.db.transaction() as s:
        seg = Segment(name="Ключевые")
        rule = Segment(
            name="По правилу",
            kind="rule",
            rules={"all": [{"field": "status", "op": "eq", "value": "active"}]},
        )
        s.add_all([seg, rule])
        await s.flush()
        s.add(SegmentClient(segment_id=seg.id, client_id=base["a2"]))
        s.add(SegmentClient(segment_id=seg.id, client_id=base["b1"]))
        seg_id, rule_id = seg.id, rule.id
    _, _, body = await _download(api, "sup", format="csv", segment=seg_id)
    assert [r[0] for r in _csv_rows(body)[1:]] == ["Гамма А2"]
    status, _, body = await _download(api, "admin", format="xlsx", segment=seg_id)
    assert status == 200
    wb = openpyxl.load_workbook(io.BytesIO(body), read_only=True)
    rows = list(wb.worksheets[0].iter_rows(values_only=True))
    assert rows[0][0] == "Наименование" and {r[0] for r in rows[1:]} == {"Гамма А2", "Дельта Б1"}
    status, _, body = await _download(api, "admin", format="csv", segment=rule_id)
    assert status == 200  # a rule segment is evaluated like the list's ?segment=
    assert {r[0] for r in _csv_rows(body)[1:]} == {"Альфа А1", "Гамма А2", "Дельта Б1"}
    status, _, body = await _download(api, "admin", segment=999999)
    assert status == 404 and b"segment" in body


async def test_export_takes_custom_field_filters_as_the_list(
    api: Api, base: dict[str, int]
) -> None:
    """``cf.<key>=value`` filters the export exactly as it filters the list (it was
    refused as an unknown parameter)."""
    from crm_core.models import Client, CustomField

    async with api.db.transaction() as s:
        s.add(CustomField(key="tier", label_ru="Уровень", type="choice", options=["gold", "x"]))
        for key in ("a1", "b1"):
            client = await s.get(Client, base[key])
            assert client is not None
            client.custom = {"tier": "gold"}
    status, page = await api.as_("admin").get("/clients", **{"cf.tier": "gold"})
    assert status == 200
    listed = {c["name"] for c in page["items"]}
    assert listed == {"Альфа А1", "Дельта Б1"}
    status, _, body = await _download(api, "admin", format="csv", **{"cf.tier": "gold"})
    assert status == 200
    assert {r[0] for r in _csv_rows(body)[1:]} == listed
    status, _, body = await _download(api, "admin", format="csv", **{"cf.nope": "1"})
    assert status == 422 and b"cf.nope" in body


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"format": "pdf"}, "format"),
        ({"phone": "12"}, "phone"),
        ({"segment": "x"}, "segment"),
        ({"owner_id": "0"}, "owner_id"),
        ({"bogus": "1"}, "bogus"),
    ],
)
async def test_export_refuses_bad_filters_before_sending(
    api: Api, base: dict[str, int], params: dict[str, str], field: str
) -> None:
    status, headers, body = await _download(api, "admin", **params)
    assert status in (400, 422) and headers["Content-Type"].startswith("application/json")
    assert field.encode() in body


async def _rich_pair(api: Api) -> tuple[int, int, dict[str, Any]]:
    """Kept client K (a1, no INN) and its duplicate O (a1) with everything attached."""
    a1 = api.users["a1"].id
    keep = await _client(api.db, a1, "ООО Ромашка", city=None, notes="из формы")
    other = await _client(
        api.db,
        a1,
        "Ромашка, АО",
        inn=inn10("770123456"),
        kpp="770201001",
        city="Москва",
        headcount=40,
        custom={"discount": 5},
        notes="из 1С",
    )
    await _phone(api.db, keep, "+79160000010")
    async with api.db.transaction() as s:
        person = ContactPerson(client_id=other, name="Иванов Иван", position="Директор")
        s.add(person)
        await s.flush()
        s.add_all(
            [
                ContactPoint(kind="phone", value="+79160000011", client_id=other),
                ContactPoint(kind="email", value="info@romashka.ru", client_id=other),
                ContactPoint(kind="phone", value="+79160000012", contact_person_id=person.id),
            ]
        )
        lead = Lead(source="call", client_id=other, owner_id=a1)
        s.add(lead)
        await s.flush()
        deal = Deal(client_id=other, title="Поставка", owner_id=a1, lead_id=lead.id)
        s.add(deal)
        await s.flush()
        when = datetime(2026, 3, 5, 10, tzinfo=UTC)
        for i in range(3):
            s.add(
                Interaction(
                    client_id=other,
                    channel="call",
                    direction="in",
                    kind="call_ended",
                    outcome="answered",
                    user_id=a1,
                    occurred_at=when,
                    deal_id=deal.id if i == 0 else None,
                )
            )
        s.add(Task(kind="call_back", title="Перезвонить", client_id=other, assignee_id=a1))
        s.add_all(
            [
                ClientTag(client_id=other, tag="vip"),
                ClientTag(client_id=other, tag="опт"),
                ClientTag(client_id=keep, tag="vip"),
            ]
        )
        s1, s2 = Segment(name="Розница"), Segment(name="Москва")
        s.add_all([s1, s2])
        await s.flush()
        s.add_all(
            [
                SegmentClient(segment_id=s1.id, client_id=other),
                SegmentClient(segment_id=s2.id, client_id=other),
                SegmentClient(segment_id=s1.id, client_id=keep),
            ]
        )
        batch = ImportBatch(file_name="x.xlsx", status="done")
        s.add(batch)
        await s.flush()
        s.add(ImportLink(batch_id=batch.id, entity="client", entity_id=other, action="created"))
        branch = Client(kind="company", name="Филиал", owner_id=a1, parent_id=other)
        s.add(branch)
        await s.flush()
        extra = {"lead": lead.id, "deal": deal.id, "person": person.id, "branch": branch.id}
    return keep, other, extra


async def _monthly(db: Database) -> list[tuple[Any, ...]]:
    async with db.sessions() as s:
        rows = await s.execute(select(InteractionMonthly).order_by(InteractionMonthly.month))
        return [(r.user_id, r.month, r.channel, r.outcome, r.n) for (r,) in rows]


async def _n(db: Database, model: Any, *where: Any) -> int:
    async with db.sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def test_merge_moves_everything_and_audits_once(api: Api) -> None:
    keep, other, extra = await _rich_pair(api)
    monthly = await _monthly(api.db)
    assert monthly and monthly[0][-1] == 3
    audits = await count(api.db)
    status, out = await api.as_("a1").post(f"/clients/{keep}/merge", {"other_id": other})
    assert status == 200, out
    assert out["id"] == keep and out["name"] == "ООО Ромашка"
    assert out["inn"] == inn10("770123456")
    assert sorted(out["phones"]) == ["+79160000010", "+79160000011"]
    assert out["emails"] == ["info@romashka.ru"]
    moved = out["merged"]["moved"]
    assert moved["interactions"] == 3 and moved["contact_points"] == 2
    assert moved["contact_persons"] == 1 and moved["leads"] == 1 and moved["deals"] == 1
    assert moved["tasks"] == 1 and moved["client_tags"] == 1 and moved["segment_clients"] == 1
    assert moved["import_links"] == 1 and moved["branches"] == 1
    db = api.db
    async with db.sessions() as s:
        assert await s.get(Client, other) is None
        kept = await s.get(Client, keep)
        assert kept is not None
        assert (kept.kpp, kept.city, kept.headcount) == ("770201001", "Москва", 40)
        assert kept.custom == {"discount": 5} and kept.notes == "из формы\n\nиз 1С"
        tags = set(await s.scalars(select(ClientTag.tag).where(ClientTag.client_id == keep)))
        assert tags == {"vip", "опт"}
        assert (await s.get(ContactPerson, extra["person"])).client_id == keep  # type: ignore[union-attr]
        assert (await s.get(Deal, extra["deal"])).client_id == keep  # type: ignore[union-attr]
        assert (await s.get(Lead, extra["lead"])).client_id == keep  # type: ignore[union-attr]
        assert (await s.get(Client, extra["branch"])).parent_id == keep  # type: ignore[union-attr]
    assert await _n(db, Interaction, Interaction.client_id == keep) == 3
    assert await _n(db, SegmentClient, SegmentClient.client_id == keep) == 2
    assert await _monthly(db) == monthly  # counters unchanged: nothing double-counted or lost
    assert await count(db) == audits + 1
    async with db.sessions() as s:
        entry = await s.scalar(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1))
    assert entry is not None and (entry.action, entry.entity, entry.entity_id) == (
        "merge",
        "client",
        keep,
    )
    assert entry.details["other_id"] == other and entry.details["moved"]["interactions"] == 3
    # The name search follows: the other's name is gone, the kept one is found.
    _, page = await api.as_("a1").get("/clients", q="Ромашка, АО")
    assert [c["id"] for c in page["items"]] in ([], [keep])
    _, page = await api.as_("a1").get("/clients", q="Ромашка")
    assert [c["id"] for c in page["items"]] == [keep]
    _, page = await api.as_("a1").get("/clients", q="+79160000012")
    assert [c["id"] for c in page["items"]] == [keep]


async def test_merge_takes_chosen_fields(api: Api) -> None:
    a1 = api.users["a1"].id
    inn = inn10("500100732")
    keep = await _client(api.db, a1, "Лютик", inn=inn, status="active", region="Тула")
    other = await _client(
        api.db, a1, "ООО Лютик", inn=inn, kpp="500101001", status="cold", region="Тверь"
    )
    status, dup = await api.as_("a1").get(f"/clients/{keep}/duplicates")
    assert status == 200 and [d["id"] for d in dup["items"]] == [other]
    assert "inn" in dup["items"][0]["reasons"] and "name" in dup["items"][0]["reasons"]
    body = {"other_id": other, "fields": {"name": "other", "inn": "other", "region": "this"}}
    status, out = await api.as_("a1").post(f"/clients/{keep}/merge", body)
    assert status == 200, out
    assert (out["name"], out["region"], out["status"]) == ("ООО Лютик", "Тула", "active")
    async with api.db.sessions() as s:
        kept = await s.get(Client, keep)
    assert kept is not None and (kept.inn, kept.kpp) == (inn, "500101001")
    assert out["merged"]["fields"] == {"name": "ООО Лютик", "kpp": "500101001"}


@pytest.mark.parametrize(
    ("who", "owners", "expected"),
    [
        ("a1", ("a1", "a1"), 200),
        ("a1", ("a1", "a2"), 404),
        ("a1", ("a2", "a1"), 404),
        ("b1", ("a1", "a1"), 404),
        ("sup", ("a1", "a2"), 200),
        ("sup", ("a1", "b1"), 404),
        ("admin", ("a1", "b1"), 200),
    ],
)
async def test_merge_roles(api: Api, who: str, owners: tuple[str, str], expected: int) -> None:
    keep = await _client(api.db, api.users[owners[0]].id, "Первый")
    other = await _client(api.db, api.users[owners[1]].id, "Второй")
    audits = await count(api.db)
    status, out = await api.as_(who).post(f"/clients/{keep}/merge", {"other_id": other})
    assert status == expected, out
    async with api.db.sessions() as s:
        assert (await s.get(Client, other) is None) == (expected == 200)
    assert await count(api.db) == audits + (expected == 200)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "other_id"),
        ({"other_id": "x"}, "other_id"),
        ({"other_id": "SELF"}, "other_id"),
        ({"other_id": "OTHER", "fields": {"nope": "other"}}, "fields.nope"),
        ({"other_id": "OTHER", "fields": {"kpp": "other"}}, "fields.kpp"),
        ({"other_id": "OTHER", "fields": {"name": "both"}}, "fields.name"),
        ({"other_id": 99999999}, "other_id"),
    ],
)
async def test_merge_refuses_bad_input_and_writes_nothing(
    api: Api, body: dict[str, Any], field: str
) -> None:
    keep = await _client(api.db, api.users["a1"].id, "Первый")
    other = await _client(api.db, api.users["a1"].id, "Второй")
    body = {
        k: {"SELF": keep, "OTHER": other}.get(v, v) if isinstance(v, str) else v
        for k, v in body.items()
    }
    audits = await count(api.db)
    status, out = await api.as_("a1").post(f"/clients/{keep}/merge", body)
    assert status in (404, 422), out
    assert out["field"].startswith(field.split(".")[0]) and out.get("error") and out["error_ru"]
    assert await count(api.db) == audits
    assert await _n(api.db, Client) == 2


async def test_duplicates_by_phone_of_a_contact_person_and_visibility(api: Api) -> None:
    a1, b1 = api.users["a1"].id, api.users["b1"].id
    me = await _client(api.db, a1, "Север")
    mine = await _client(api.db, a1, "Северный ветер")
    hidden = await _client(api.db, b1, "ООО Север")
    status, out = await api.as_("a1").get(f"/clients/{me}/duplicates")
    assert status == 200 and [d["id"] for d in out["items"]] == [mine]
    _, out = await api.as_("admin").get(f"/clients/{me}/duplicates")
    assert {d["id"] for d in out["items"]} == {mine, hidden}
    status, _ = await api.as_("b1").get(f"/clients/{me}/duplicates")
    assert status == 404


async def test_opposite_merges_at_once_keep_one_client(api: Api) -> None:
    """A merges B while B merges A: the rows are locked in id order, so one wins, the
    other finds its duplicate gone (404), nothing deadlocks and one client remains."""
    import asyncio

    a = await _client(api.db, api.users["a1"].id, "Первый")
    b = await _client(api.db, api.users["a1"].id, "Второй")
    await _phone(api.db, a, "+79160000021")
    await _phone(api.db, b, "+79160000022")
    caller = api.as_("a1")
    results = await asyncio.gather(
        caller.post(f"/clients/{a}/merge", {"other_id": b}),
        caller.post(f"/clients/{b}/merge", {"other_id": a}),
    )
    assert sorted(status for status, _ in results) == [200, 404], results
    assert await _n(api.db, Client) == 1
    assert await _n(api.db, ContactPoint) == 2
    async with api.db.sessions() as s:
        owners = set(await s.scalars(select(ContactPoint.client_id)))
    assert len(owners) == 1
