"""Writing an imported sheet: dedupe, updates, errors, re-import, undo (SQLite and PG)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from crm_core.db import Database
from crm_core.imports.errors import ImportFileError
from crm_core.imports.read import read_clients
from crm_core.imports.table import Limits
from crm_core.models import (
    Client,
    ContactPerson,
    ContactPoint,
    Deal,
    ImportBatch,
    Lead,
    Segment,
    User,
)
from crm_core.services.imports import import_clients, undo_import

SAMPLES = Path(__file__).parents[2] / "fixtures" / "import"


async def _users(db: Database) -> dict[str, int]:
    async with db.transaction() as s:
        users = [
            User(email="petrov@example.ru", name="Иван Петров", role="manager", token_hash="a"),
            User(email="ivanova@example.ru", name="Анна Иванова", role="manager", token_hash="b"),
        ]
        s.add_all(users)
        await s.flush()
        return {u.email: u.id for u in users}


async def _count(db: Database, model: type) -> int:
    async with db.sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def _points(db: Database, client_id: int) -> set[str]:
    async with db.sessions() as s:
        direct = await s.scalars(
            select(ContactPoint.value).where(ContactPoint.client_id == client_id)
        )
        via = await s.scalars(
            select(ContactPoint.value)
            .join(ContactPerson, ContactPerson.id == ContactPoint.contact_person_id)
            .where(ContactPerson.client_id == client_id)
        )
        return set(direct) | set(via)


async def test_simple_xlsx_dedupes_reports_and_reimports_unchanged(db: Database) -> None:
    users = await _users(db)
    report = await import_clients(db, read_clients(SAMPLES / "clients_simple.xlsx"))
    assert (report.rows, report.created, report.updated, report.unchanged) == (6, 4, 1, 0)
    assert [(e.row, e.column, e.value) for e in report.errors] == [(7, "ИНН", "7701234567")]
    assert report.mapping["ИНН"] == "inn"
    async with db.sessions() as s:
        romashka = await s.scalar(select(Client).where(Client.inn == "7730123456"))
        assert romashka is not None and romashka.owner_id == users["petrov@example.ru"]
        assert await s.scalar(select(Client).where(Client.name.like("%Плохой%"))) is None
        person = await s.scalar(select(Client).where(Client.kind == "person"))
        assert person is not None and person.name == "Иван Петрович Сидоренко"
    assert await _points(db, romashka.id) == {
        "+74951112233",
        "info@romashka.example.ru",
        "zakaz@romashka.example.ru",
    }
    assert await _count(db, Client) == 4
    again = await import_clients(db, read_clients(SAMPLES / "clients_simple.xlsx"))
    assert (again.created, again.updated, again.unchanged) == (0, 0, 5)
    assert await _count(db, Client) == 4 and await _count(db, ImportBatch) == 2


async def test_csv_same_phone_in_two_formats_is_one_client(db: Database) -> None:
    await _users(db)
    report = await import_clients(db, read_clients(SAMPLES / "clients_utf8.csv"))
    assert (report.rows, report.created, report.unchanged, report.errors) == (3, 2, 1, [])
    async with db.sessions() as s:
        kim = (await s.scalars(select(Client).where(Client.name == "Мария Ким"))).one()
        seg = await s.get(Segment, kim.segment_id)
        assert kim.kind == "person" and seg is not None and seg.name == "Розница"


async def test_match_fills_empty_fields_never_erases_and_owner_by_name(
    db: Database, tmp_path: Path
) -> None:
    users = await _users(db)
    async with db.transaction() as s:
        c = Client(kind="company", name="ООО Ромашка", region="Москва", notes="важный")
        s.add(c)
        await s.flush()
        s.add(ContactPoint(kind="phone", value="+79161112233", client_id=c.id))
        cid = c.id
    path = tmp_path / "upd.csv"
    path.write_text(
        "Наименование;ИНН;Телефон;E-mail;Ответственный;Регион;Примечание\n"
        "Ромашка;7730123456;8 (916) 111-22-33, 8 903 444 55 66;new@romashka.ru;"
        "Петров Иван;;\n",
        "utf-8",
    )
    report = await import_clients(db, read_clients(path))
    assert (report.created, report.updated) == (0, 1)
    async with db.sessions() as s:
        c2 = await s.get(Client, cid)
        assert c2 is not None
        assert (c2.name, c2.inn, c2.region, c2.notes) == (
            "ООО Ромашка",
            "7730123456",
            "Москва",
            "важный",
        )
        assert c2.owner_id == users["petrov@example.ru"]
    assert await _points(db, cid) == {"+79161112233", "+79034445566", "new@romashka.ru"}
    # Undo takes back what it added and restores the empty fields.
    result = await undo_import(db, report.import_id or 0)
    assert result["restored_fields"] == 2 and result["removed_clients"] == 0
    assert await _points(db, cid) == {"+79161112233"}
    async with db.sessions() as s:
        c3 = await s.get(Client, cid)
        assert c3 is not None and (c3.inn, c3.owner_id, c3.region) == (None, None, "Москва")


async def test_row_problems_are_reported_and_not_written(db: Database, tmp_path: Path) -> None:
    await _users(db)
    async with db.transaction() as s:
        s.add_all(
            [Client(kind="company", name="A", inn="7730123456"), Client(kind="company", name="B")]
        )
        await s.flush()
        b = await s.scalar(select(Client.id).where(Client.name == "B"))
        s.add(ContactPoint(kind="phone", value="+79160000001", client_id=b))
    path = tmp_path / "p.csv"
    path.write_text(
        "Name,INN,Phone,Email,Owner\n"
        "No key,,,,\n"
        "Ghost owner,,+79160000002,,nobody@example.ru\n"
        "Two clients,7730123456,+79160000001,,\n"
        ",,+79160000003,,\n"
        "Fine,,+79160000004,,Иванова Анна\n",
        "utf-8",
    )
    report = await import_clients(db, read_clients(path))
    assert (report.rows, report.created, report.skipped) == (5, 1, 1)
    assert [n.row for n in report.notes] == [2]
    errors = {(e.row, e.column): e for e in report.errors}
    assert set(errors) == {(3, "Owner"), (4, "Phone"), (5, "Name")}
    assert all(e.error_ru for e in report.errors)
    assert await _count(db, Client) == 3


async def test_amocrm_person_and_company_and_lead_point_taken_over(
    db: Database, tmp_path: Path
) -> None:
    async with db.transaction() as s:
        lead = Lead(source="phone", name="звонил")
        s.add(lead)
        await s.flush()
        s.add(ContactPoint(kind="phone", value="+79160001122", lead_id=lead.id))
    path = tmp_path / "amo.csv"
    path.write_text(
        "Полное имя,Должность,Компания,Рабочий телефон,Рабочий email\n"
        "Анна Смирнова,Закупщик,ООО Вектор,+7 916 000-11-22,anna@vector.example\n"
        "Анна Смирнова,Закупщик,ООО Вектор,,anna@vector.example\n",
        "utf-8",
    )
    report = await import_clients(db, read_clients(path))
    assert (report.created, report.unchanged) == (1, 1)
    async with db.sessions() as s:
        vector = (await s.scalars(select(Client))).one()
        person = (await s.scalars(select(ContactPerson))).one()
        assert (vector.name, person.name, person.position) == (
            "ООО Вектор",
            "Анна Смирнова",
            "Закупщик",
        )
        cp = await s.scalar(select(ContactPoint).where(ContactPoint.value == "+79160001122"))
        assert cp is not None and cp.contact_person_id == person.id and cp.lead_id is not None
    again = await import_clients(db, read_clients(path))
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)
    await undo_import(db, again.import_id or 0)
    result = await undo_import(db, report.import_id or 0)
    assert result["removed_clients"] == 1 and result["released_points"] == 1
    async with db.sessions() as s:
        cp = await s.scalar(select(ContactPoint).where(ContactPoint.value == "+79160001122"))
        assert cp is not None and cp.client_id is None and cp.contact_person_id is None
    assert await _count(db, ContactPerson) == 0 and await _count(db, Client) == 0


async def test_undo_keeps_clients_touched_since(db: Database) -> None:
    await _users(db)
    report = await import_clients(db, read_clients(SAMPLES / "clients_simple.xlsx"))
    async with db.transaction() as s:
        vector = await s.scalar(select(Client).where(Client.inn == "7712345671"))
        assert vector is not None
        s.add(Deal(client_id=vector.id, title="Поставка"))
        zd = await s.scalar(select(Client).where(Client.inn == "5001122339"))
        assert zd is not None
        zd.status = "thinking"
        vector_id, zd_id = vector.id, zd.id
    result = await undo_import(db, report.import_id or 0)
    assert sorted(result["kept_clients"]) == sorted([vector_id, zd_id])
    assert result["removed_clients"] == 2
    assert await _count(db, Client) == 2
    assert await _points(db, vector_id) == {"+74952223344", "+79160001122"}
    with pytest.raises(ValueError, match="undone"):
        await undo_import(db, report.import_id or 0)


async def test_dry_run_writes_nothing_and_file_error_midway_writes_nothing(
    db: Database, tmp_path: Path
) -> None:
    await _users(db)
    report = await import_clients(db, read_clients(SAMPLES / "clients_simple.xlsx"), dry_run=True)
    assert (report.import_id, report.created, report.updated) == (None, 4, 1)
    assert await _count(db, Client) == 0 and await _count(db, ImportBatch) == 0
    path = tmp_path / "big.csv"
    path.write_text(
        "Name,Phone\n" + "".join(f"C{i},+7916000{i:04d}\n" for i in range(1200)), "utf-8"
    )
    with pytest.raises(ImportFileError, match="more than 1100 rows"):
        await import_clients(db, read_clients(path, limits=Limits(max_rows=1100)))
    assert await _count(db, Client) == 0 and await _count(db, ImportBatch) == 0
    report = await import_clients(db, read_clients(path))
    assert report.created == 1200 and await _count(db, Client) == 1200
