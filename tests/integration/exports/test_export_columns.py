"""The export's columns and cell values: custom-field headers never read as another
column, OWASP quoting, phones as people read them, values as the importer reads them."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

from crm_core.db import Database
from crm_core.models import CustomField
from crm_core.services.export import (
    Column,
    XlsxSink,
    _phone,
    _plain,
    export_columns,
    safe_text,
)


async def test_custom_field_headers_do_not_collide(db: Database) -> None:
    async with db.transaction() as s:
        s.add_all(
            [
                CustomField(key="phone2", label_ru="Телефон", type="text", position=2),
                CustomField(key="size", label_ru="Размер", type="number", position=1),
                CustomField(key="old", label_ru="Старое", type="text", active=False),
                CustomField(key="deal", label_ru="Сделка", type="text", entity="deal"),
            ]
        )
    async with db.sessions() as s:
        cols = await export_columns(s)
    headers = [c.header for c in cols]
    assert len(headers) == len(set(headers))
    custom = [(c.field, c.header) for c in cols if c.field.startswith("custom:")]
    assert custom == [("custom:size", "Размер"), ("custom:phone2", "Телефон (phone2)")]
    assert headers[-5:] == [
        "Телефон",
        "E-mail",
        "Контактное лицо",
        "Должность",
        "Согласие на рассылку",
    ]


def test_cell_values() -> None:
    for evil in ("=1+1", "+7", "-2", "@SUM(A1)", "\tx", "\rx"):
        assert safe_text(evil) == "'" + evil
    assert safe_text("ООО Ромашка") == "ООО Ромашка"
    assert _phone("+74951234567", "12") == "+7 495 123-45-67 доб. 12"
    assert _phone("+375291234567", None) == "+375291234567"
    assert _plain(Decimal("1500.00")) == 1500 and _plain(Decimal("12.50")) == Decimal("12.5")
    assert _plain(date(1980, 5, 17)) == "1980-05-17"
    assert _plain(["A", "C"]) == "A, C" and _plain([]) is None and _plain("") is None
    assert _plain(True) == "да" and _plain(7) == 7


async def test_xlsx_cells_hold_control_characters_and_formulas(tmp_path: Path) -> None:
    import openpyxl

    sink = XlsxSink(tmp_path / "x.xlsx")
    await sink.header([Column("name", "Наименование"), Column("notes", "Примечание")])
    await sink.rows([["ООО\x07 Звонок", "=1+1"], ["\x01@cmd", 5]])
    await sink.close()
    ws = openpyxl.load_workbook(tmp_path / "x.xlsx").active
    assert ws["A2"].value == "ООО Звонок" and ws["B2"].value == "=1+1"
    assert ws["B2"].data_type == "s" and ws["B2"].quotePrefix
    assert ws["A3"].value == "@cmd" and ws["A3"].quotePrefix and ws["B3"].value == 5
