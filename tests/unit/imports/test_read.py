"""The pure reader on the shared samples and on small files built here."""

from __future__ import annotations

import zipfile
from pathlib import Path

import openpyxl
import pytest

from crm_core.imports.errors import ImportFileError
from crm_core.imports.mapping import parse_mapping
from crm_core.imports.read import read_clients
from crm_core.imports.table import Limits

SAMPLES = Path(__file__).parents[2] / "fixtures" / "import"


def _xlsx(path: Path, rows: list[list[object]], title: str = "Лист1") -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = title
    for r in rows:
        ws.append(r)
    wb.save(path)
    return path


def test_simple_xlsx_sample() -> None:
    sheet = read_clients(SAMPLES / "clients_simple.xlsx")
    rows = list(sheet.rows)
    assert sheet.sheet == "Клиенты" and sheet.header_row == 1
    assert sheet.mapping["ИНН"] == "inn" and sheet.mapping["Телефон"] == "phones"
    by_row = {r.row: r for r in rows}
    assert [p.e164 for p in by_row[3].phones] == ["+74952223344", "+79160001122"]
    assert by_row[5].kind == "person"
    assert by_row[2].inn == by_row[6].inn == "7730123456"
    bad = by_row[7]
    assert [(e.row, e.column, e.value) for e in bad.errors] == [(7, "ИНН", "7701234567")]
    assert "checksum" in bad.errors[0].error and "контрольной" in bad.errors[0].error_ru
    assert all(not r.errors for r in rows if r.row != 7)


def test_utf8_csv_sample_skips_blank_row() -> None:
    sheet = read_clients(SAMPLES / "clients_utf8.csv")
    rows = list(sheet.rows)
    assert sheet.detail == "utf-8, comma"
    assert [r.row for r in rows] == [2, 3, 4]
    assert rows[1].phones[0].e164 == rows[2].phones[0].e164 == "+79215556677"
    assert rows[0].phones[0].e164 == "+12125550100"
    assert sheet.mapping["tags"] == "tags"  # recognized, not stored yet


def test_windows_1251_semicolon_with_bom_free_header(tmp_path: Path) -> None:
    text = (
        "Наименование;ИНН;Телефон;E-mail;Ответственный\r\n"
        "ООО Ромашка;7730123456;8-916-111-22-33, +7 903 444 55 66;A@Romashka.ru;Иванова Анна\r\n"
        "ИП Сидоров;500100732259;+7 495 123-45-67 доб. 12;;\r\n"
    )
    path = tmp_path / "clients.csv"
    path.write_bytes(text.encode("windows-1251"))
    sheet = read_clients(path)
    rows = list(sheet.rows)
    assert sheet.detail == "windows-1251, semicolon"
    assert [p.e164 for p in rows[0].phones] == ["+79161112233", "+79034445566"]
    assert rows[0].emails == ["a@romashka.ru"] and rows[0].owner == "Иванова Анна"
    assert rows[1].inn == "500100732259"
    assert (rows[1].phones[0].e164, rows[1].phones[0].extension) == ("+74951234567", "12")


def test_utf8_bom_tab_separated(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_bytes("\ufeffName\tPhone\tEmail\nAcme\t+7 916 555 12 34\tx@acme.example\n".encode())
    sheet = read_clients(path)
    (row,) = list(sheet.rows)
    assert sheet.detail == "utf-8, tab" and sheet.mapping == {
        "Name": "name",
        "Phone": "phones",
        "Email": "emails",
    }
    assert row.name == "Acme" and row.emails == ["x@acme.example"]


def test_1c_report_title_rows_and_totals(tmp_path: Path) -> None:
    path = _xlsx(
        tmp_path / "1c.xlsx",
        [
            ["Список контрагентов"],
            ["Период: 01.01.2026 - 31.12.2026", None, None],
            [],
            ["Наименование", "ИНН", "Рабочий телефон", "Мобильный телефон", "Основной менеджер"],
            ["ООО «Ромашка»", 7730123456, "+7 495 111-22-33", "8 916 111 22 33", "Петров Иван"],
            [None, None, None, None, None],
            ["АО «Альфа»", "0274062111", None, None, None],
            ["Всего понемногу", None, "+7 495 222-33-44", None, None],
            ["Итого", None, None, 3, None],
        ],
    )
    sheet = read_clients(path)
    rows = list(sheet.rows)
    assert sheet.header_row == 4
    assert [r.row for r in rows] == [5, 7, 8]
    assert [p.e164 for p in rows[0].phones] == ["+74951112233", "+79161112233"]
    assert rows[0].inn == "7730123456" and rows[1].inn == "0274062111"
    assert rows[0].owner == "Петров Иван"


def test_excel_number_inn_gets_its_leading_zero_back(tmp_path: Path) -> None:
    path = _xlsx(tmp_path / "n.xlsx", [["Название", "ИНН"], ["Альфа", 274062111]])
    (row,) = list(read_clients(path).rows)
    assert row.inn == "0274062111" and not row.errors


def test_amocrm_person_with_company(tmp_path: Path) -> None:
    path = tmp_path / "amo.csv"
    path.write_text(
        "Полное имя,Должность,Компания,Рабочий телефон,Рабочий email,Теги\n"
        "Анна Смирнова,Закупщик,ООО Вектор,+7 916 000-11-22,anna@vector.example,vip\n"
        "Олег Ким,,,+7 916 000-11-33,,\n",
        encoding="utf-8",
    )
    sheet = read_clients(path)
    company, person = list(sheet.rows)
    assert (company.name, company.kind, company.contact_name, company.position) == (
        "ООО Вектор",
        "company",
        "Анна Смирнова",
        "Закупщик",
    )
    assert company.emails == ["anna@vector.example"]
    assert (person.name, person.kind, person.contact_name) == ("Олег Ким", "person", None)


def test_invalid_values_reported_with_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("Name,INN,Phone,Email,Kind\nA,12345,123,not-an-email,alien\n", encoding="utf-8")
    (row,) = list(read_clients(path).rows)
    assert {(e.column, e.value) for e in row.errors} == {
        ("INN", "12345"),
        ("Phone", "123"),
        ("Email", "not-an-email"),
        ("Kind", "alien"),
    }
    assert all(e.row == 2 and e.error and e.error_ru for e in row.errors)


def test_mapping_overrides_and_refuses_aliases(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("Клиент (полное),Тел. для SMS,Телефон\nАльфа,+79161234567,x\n", "utf-8")
    mapping = parse_mapping(
        "columns:\n  'Клиент (полное)': name\n  'Тел. для SMS': phones\n  Телефон: null\n"
    )
    sheet = read_clients(path, mapping=mapping)
    (row,) = list(sheet.rows)
    assert sheet.mapping == {"Клиент (полное)": "name", "Тел. для SMS": "phones", "Телефон": None}
    assert row.name == "Альфа" and not row.errors
    bomb = "a: &a ['x','x']\nb: &b [*a,*a]\nc: [*b,*b]\n"
    with pytest.raises(ImportFileError, match="anchors and aliases"):
        parse_mapping(bomb)
    with pytest.raises(ImportFileError, match="unknown field 'nmae'"):
        parse_mapping("columns:\n  X: nmae\n")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "not a spreadsheet"),
        (b"PK\x03\x04garbage" * 10, "corrupt"),
        ("Имя,Телефон\nАнна,1\n".encode("utf-16-le"), "UTF-16"),
        ("Название;Телефон\nПривет мир;+79161234567\n".encode("koi8-r"), "neither UTF-8"),
        (b"", "empty"),
    ],
)
def test_bad_files_get_clear_errors(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "f.xlsx"
    path.write_bytes(content)
    with pytest.raises(ImportFileError, match=match) as info:
        list(read_clients(path).rows)
    assert info.value.message_ru


def test_password_protected_workbook(tmp_path: Path) -> None:
    # An encrypted .xlsx is an OLE2 container with an "EncryptedPackage" stream.
    blob = (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 500 + "EncryptedPackage".encode("utf-16-le")
    )
    path = tmp_path / "secret.xlsx"
    path.write_bytes(blob)
    with pytest.raises(ImportFileError, match="password"):
        read_clients(path)


def test_size_and_row_limits(tmp_path: Path) -> None:
    path = _xlsx(tmp_path / "big.xlsx", [["Name", "Phone"]] + [["A", "+79161234567"]] * 20)
    with pytest.raises(ImportFileError, match="more than 10 rows") as info:
        list(read_clients(path, limits=Limits(max_rows=10)).rows)
    assert "Лист1" in info.value.message
    with pytest.raises(ImportFileError, match="more than the limit"):
        read_clients(path, limits=Limits(max_bytes=1000))
    csv_path = tmp_path / "big.csv"
    csv_path.write_text("Name,Phone\n" + "A,+79161234567\n" * 20, "utf-8")
    with pytest.raises(ImportFileError, match="more than 10 rows"):
        list(read_clients(csv_path, limits=Limits(max_rows=10)).rows)


def test_missing_sheet_and_no_header(tmp_path: Path) -> None:
    path = _xlsx(tmp_path / "s.xlsx", [["foo", "bar"], [1, 2]])
    with pytest.raises(ImportFileError, match=r"no sheet 'Клиенты'.*Лист1"):
        read_clients(path, sheet="Клиенты")
    with pytest.raises(ImportFileError, match="no header row"):
        read_clients(path)


def test_xlsx_formulas_give_cached_values(tmp_path: Path) -> None:
    # openpyxl writes no cached values; craft one: a formula cell with a <v> cached value.
    path = _xlsx(tmp_path / "f.xlsx", [["Name", "Phone"], ["Acme", "=A1"]])
    with zipfile.ZipFile(path) as zf:
        items = {n: zf.read(n) for n in zf.namelist()}
    sheet_xml = items["xl/worksheets/sheet1.xml"].decode()
    sheet_xml = sheet_xml.replace("<f>A1</f><v></v>", "<f>A1</f><v>+79161234567</v>")
    sheet_xml = sheet_xml.replace("<f>A1</f><v />", "<f>A1</f><v>+79161234567</v>")
    assert "+79161234567" in sheet_xml, sheet_xml
    items["xl/worksheets/sheet1.xml"] = sheet_xml.replace('t="n"', 't="str"').encode()
    with zipfile.ZipFile(path, "w") as zf:
        for n, data in items.items():
            zf.writestr(n, data)
    (row,) = list(read_clients(path).rows)
    assert [p.e164 for p in row.phones] == ["+79161234567"]
