"""The business profile through import: every field by its Russian and English header,
custom fields by label, statuses from the editable list, tags, manual segments, several
contact persons in one cell, branches by INN + KPP; a re-import changes nothing and
undo takes back exactly what was written (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import openpyxl
from sqlalchemy import func, select

from crm_core.db import Database
from crm_core.imports.read import read_clients
from crm_core.models import (
    Client,
    ClientStatus,
    ClientTag,
    ContactPerson,
    ContactPoint,
    CustomField,
    ImportLink,
    Segment,
    SegmentClient,
    User,
)
from crm_core.services.imports import import_clients, load_catalog, undo_import

# The export's headers (the other helper's `crmhub export clients`), one per custom field.
EXPORT_HEADER = [
    "Наименование",
    "Полное наименование",
    "ИНН",
    "КПП",
    "ОГРН",
    "Телефон",
    "E-mail",
    "Ответственный",
    "Контактное лицо",
    "Должность",
    "Сегмент",
    "Теги",
    "Статус",
    "Юридический адрес",
    "Фактический адрес",
    "Город",
    "Регион",
    "Отрасль",
    "Вид деятельности",
    "Численность",
    "Выручка",
    "Сайт",
    "Источник",
    "Головная компания",
    "Канал продаж",
    "Дата договора",
    "Products",
]
ROMASHKA = [
    "Ромашка",
    "ООО «Ромашка»",
    "7730123456",
    "773001001",
    "1027700132195",
    "+7 495 111-22-33",
    "info@romashka.example.ru",
    "petrov@example.ru",
    "Иванов Иван (директор); Петрова Анна (бухгалтер)",
    "",
    "Опт; Москва VIP",
    "vip, опт",
    "Думает",
    "Москва, ул. Ленина, 1",
    "Москва, ул. Мира, 2",
    "Москва",
    "Москва",
    "Торговля",
    "Оптовая торговля",
    "120",
    "1 500 000,50",
    "romashka.example.ru",
    "Выставка",
    "",
    "дилер",
    "01.02.2024",
    "Cables; Lamps",
]
BRANCH = [
    "Ромашка (Казань)",
    "",
    "7730123456",
    "165501001",
    "",
    "+7 843 222-33-44",
    "",
    "",
    "Сидоров Пётр",
    "управляющий",
    "",
    "",
    "Cold",
    "",
    "",
    "Казань",
    "Татарстан",
    "",
    "",
    "",
    "",
    "",
    "",
    "Ромашка",
    "",
    "",
    "",
]
PERSON = [""] * len(EXPORT_HEADER)
PERSON[8], PERSON[5], PERSON[12] = "Мария Ким", "8 921 555 66 77", "Постоянный"


def _xlsx(path: Path, rows: list[list[object]]) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Клиенты"
    for r in rows:
        ws.append(r)
    wb.save(path)
    return path


async def _count(db: Database, model: type) -> int:
    async with db.sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def _seed(db: Database) -> None:
    async with db.transaction() as s:
        s.add(User(email="petrov@example.ru", name="Иван Петров", role="manager", token_hash="p"))
        s.add_all(
            [
                CustomField(
                    key="channel",
                    label_ru="Канал продаж",
                    label_en="Sales channel",
                    type="choice",
                    options=["дилер", "прямые"],
                ),
                CustomField(
                    key="contract", label_ru="Дата договора", label_en="Contract date", type="date"
                ),
                CustomField(
                    key="products",
                    label_ru="Продукты",
                    label_en="Products",
                    type="multi",
                    options=["Cables", "Lamps", "Tools"],
                ),
            ]
        )


async def _snapshot(db: Database) -> dict[str, int]:
    return {
        m.__name__: await _count(db, m)
        for m in (Client, ContactPerson, ContactPoint, ClientTag, Segment, SegmentClient)
    }


async def test_export_headers_and_every_profile_field_import_and_undo(
    db: Database, tmp_path: Path
) -> None:
    await _seed(db)
    before = await _snapshot(db)
    path = _xlsx(tmp_path / "export.xlsx", [EXPORT_HEADER, ROMASHKA, BRANCH, PERSON])
    sheet = read_clients(path, catalog=await load_catalog(db))
    assert None not in sheet.mapping.values(), sheet.mapping  # every column maps by itself
    assert sheet.mapping["Канал продаж"] == "custom.channel"
    assert sheet.mapping["Products"] == "custom.products"
    report = await import_clients(db, sheet)
    assert report.errors == [] and (report.created, report.updated) == (3, 0)
    async with db.sessions() as s:
        head = await s.scalar(
            select(Client).where(Client.inn == "7730123456", Client.kpp == "773001001")
        )
        assert head is not None
        assert (head.full_name, head.ogrn, head.status) == (
            "ООО «Ромашка»",
            "1027700132195",
            "thinking",
        )
        assert (head.legal_address, head.actual_address, head.city) == (
            "Москва, ул. Ленина, 1",
            "Москва, ул. Мира, 2",
            "Москва",
        )
        assert (head.industry, head.activity, head.headcount) == (
            "Торговля",
            "Оптовая торговля",
            120,
        )
        assert head.revenue == Decimal("1500000.50") and head.website == "romashka.example.ru"
        assert head.source == "Выставка"
        assert head.custom == {
            "channel": "дилер",
            "contract": "2024-02-01",
            "products": ["Cables", "Lamps"],
        }
        owner = await s.scalar(select(User.id).where(User.email == "petrov@example.ru"))
        assert head.owner_id == owner
        people = (
            await s.execute(
                select(ContactPerson.name, ContactPerson.position, ContactPerson.is_primary)
                .where(ContactPerson.client_id == head.id)
                .order_by(ContactPerson.id)
            )
        ).all()
        assert [tuple(p) for p in people] == [
            ("Иванов Иван", "директор", True),
            ("Петрова Анна", "бухгалтер", False),
        ]
        tags = set(await s.scalars(select(ClientTag.tag).where(ClientTag.client_id == head.id)))
        assert tags == {"vip", "опт"}
        segs = set(
            await s.scalars(
                select(Segment.name)
                .join(SegmentClient, SegmentClient.segment_id == Segment.id)
                .where(SegmentClient.client_id == head.id)
            )
        )
        assert segs == {"Опт", "Москва VIP"}
        branch = await s.scalar(select(Client).where(Client.kpp == "165501001"))
        assert branch is not None and branch.parent_id == head.id and branch.inn == head.inn
        assert (branch.city, branch.region, branch.status) == ("Казань", "Татарстан", "cold")
        kim = await s.scalar(select(Client).where(Client.name == "Мария Ким"))
        assert kim is not None and (kim.kind, kim.status) == ("person", "regular")
    # The same file again: nothing changes, nothing new to undo.
    again = await import_clients(db, read_clients(path, catalog=await load_catalog(db)))
    assert (again.created, again.updated, again.unchanged, again.errors) == (0, 0, 3, [])
    async with db.sessions() as s:
        links = await s.scalar(
            select(func.count())
            .select_from(ImportLink)
            .where(ImportLink.batch_id == again.import_id)
        )
        assert links == 0
    await undo_import(db, again.import_id or 0)
    result = await undo_import(db, report.import_id or 0)
    assert result["removed_clients"] == 3 and result["removed_segments"] == 2
    assert await _snapshot(db) == before


async def test_update_adds_tags_segments_custom_and_undo_takes_only_that_back(
    db: Database, tmp_path: Path
) -> None:
    await _seed(db)
    async with db.transaction() as s:
        seg = Segment(name="Опт")
        c = Client(
            kind="company",
            name="Ромашка",
            inn="7730123456",
            city="Тверь",
            custom={"channel": "прямые"},
            status="active",
        )
        s.add_all([seg, c])
        await s.flush()
        s.add(ClientTag(client_id=c.id, tag="старый"))
        s.add(SegmentClient(segment_id=seg.id, client_id=c.id))
        s.add(ContactPerson(client_id=c.id, name="Иванов Иван"))
        cid = c.id
    before = await _snapshot(db)
    path = _xlsx(tmp_path / "upd.xlsx", [EXPORT_HEADER, ROMASHKA])
    report = await import_clients(db, read_clients(path, catalog=await load_catalog(db)))
    assert (report.created, report.updated, report.errors) == (0, 1, [])
    async with db.sessions() as s:
        c2 = await s.get(Client, cid)
        assert c2 is not None
        # Filled where empty, never overwritten: city, status and the channel stay.
        assert (c2.city, c2.status, c2.headcount, c2.birthday) == ("Тверь", "active", 120, None)
        assert c2.custom == {
            "channel": "прямые",
            "contract": "2024-02-01",
            "products": ["Cables", "Lamps"],
        }
        tags = set(await s.scalars(select(ClientTag.tag).where(ClientTag.client_id == cid)))
        assert tags == {"старый", "vip", "опт"}
        assert await s.scalar(select(func.count()).select_from(SegmentClient)) == 2
        assert await s.scalar(select(func.count()).select_from(ContactPerson)) == 2
    await undo_import(db, report.import_id or 0)
    assert await _snapshot(db) == before
    async with db.sessions() as s:
        c3 = await s.get(Client, cid)
        assert c3 is not None and c3.custom == {"channel": "прямые"} and c3.headcount is None
        assert c3.kpp == "" and c3.ogrn is None and c3.city == "Тверь"


async def test_bad_profile_values_are_row_errors_naming_the_column(
    db: Database, tmp_path: Path
) -> None:
    await _seed(db)
    async with db.transaction() as s:
        s.add(ClientStatus(key="vip", name_ru="VIP-клиент", name_en="VIP", position=70))
    path = tmp_path / "bad.csv"
    path.write_text(
        "Name;Phone;Status;KPP;OGRN;Headcount;Birthday;Sales channel;Parent company\n"
        "A;+79160000001;Неизвестный;;;;;;\n"
        "B;+79160000002;;12345;;;;;\n"
        "C;+79160000003;;;1027700132194;;;;\n"
        "D;+79160000004;;;;много;;;\n"
        "E;+79160000005;;;;;31.02.2020;;\n"
        "F;+79160000006;;;;;;оптом;\n"
        "G;+79160000007;;;;;;;Нет такой\n"
        "H;+79160000008;VIP-клиент;;;;01.02.1990;;\n",
        encoding="utf-8",
    )
    report = await import_clients(db, read_clients(path, catalog=await load_catalog(db)))
    errors = {(e.row, e.column) for e in report.errors}
    assert errors == {
        (2, "Status"),
        (3, "KPP"),
        (4, "OGRN"),
        (5, "Headcount"),
        (6, "Birthday"),
        (7, "Sales channel"),
        (8, "Parent company"),
    }
    assert all(e.error and e.error_ru for e in report.errors)
    assert report.created == 1
    async with db.sessions() as s:
        h = (await s.scalars(select(Client))).one()
        assert (h.name, h.status, h.birthday) == ("H", "vip", date(1990, 2, 1))


async def test_a_holding_three_levels_deep_in_one_file(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "holding.csv"
    path.write_text(
        "Наименование;ИНН;КПП;Телефон;Головная компания\n"
        "Холдинг;7730123456;;+79160000001;\n"
        "Дочка;7712345671;;+79160000002;7730123456\n"
        "Внучка;;;+79160000003;Дочка\n"
        "Филиал холдинга;7730123456;165501001;+79160000004;\n",
        encoding="utf-8",
    )
    report = await import_clients(db, read_clients(path))
    assert (report.created, report.errors) == (4, [])
    async with db.sessions() as s:
        by_name = {c.name: c for c in await s.scalars(select(Client))}
    assert by_name["Холдинг"].parent_id is None
    assert by_name["Дочка"].parent_id == by_name["Холдинг"].id
    assert by_name["Внучка"].parent_id == by_name["Дочка"].id
    assert by_name["Филиал холдинга"].parent_id == by_name["Холдинг"].id
    result = await undo_import(db, report.import_id or 0)
    assert result["removed_clients"] == 4 and await _count(db, Client) == 0
