"""What the browser's import wizard calls: preview (the first rows and the detected
columns), a chosen mapping, dry run, progress, the list, undo; and every kind of bad file
is a clear 4xx naming what is wrong, with nothing written (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import aiohttp
import openpyxl
import pytest

from crm_core.db import Database
from crm_core.models import Client, CustomField, ImportBatch
from gateway.keys import SETTINGS
from tests.support.api import Caller, make_app, seed_team
from tests.support.app import make_settings

SAMPLES = Path(__file__).parents[2] / "fixtures" / "import"


async def post(who: Caller, path: str, content: bytes, name: str, **fields: str) -> tuple[int, Any]:
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("file", content, filename=name)
    for k, v in fields.items():
        form.add_field(k, v)
    resp = await who.http.post("/api/v1" + path, data=form, headers=who._headers())
    return resp.status, await resp.json()


async def wait_done(who: Caller, batch_id: int) -> dict[str, Any]:
    for _ in range(400):
        status, job = await who.get(f"/imports/{batch_id}")
        assert status == 200, job
        if job["status"] not in ("queued", "running"):
            return job
        await asyncio.sleep(0.05)
    raise AssertionError("the import job did not finish")


@pytest.fixture
async def admin(db: Database, aiohttp_client: Any, tmp_path: Path) -> Caller:
    users, tokens = await seed_team(db)
    app = make_app(db)
    app[SETTINGS] = make_settings(
        "sqlite://", tmp_path, import_max_bytes=200_000, import_max_rows=50
    )
    http = await aiohttp_client(app)
    return Caller(http, tokens["admin"], users["admin"].id)


async def _nothing(db: Database, tmp_path: Path) -> None:
    async with db.sessions() as s:
        from sqlalchemy import func, select

        for model in (Client, ImportBatch):
            assert await s.scalar(select(func.count()).select_from(model)) == 0
    uploads = tmp_path / "imports"
    assert not uploads.exists() or not list(uploads.iterdir())


async def test_preview_mapping_dry_run_import_list_and_undo(
    db: Database, admin: Caller, tmp_path: Path
) -> None:
    async with db.transaction() as s:
        s.add(CustomField(key="fleet", label_ru="Автопарк", label_en="Fleet", type="number"))
    csv = (
        "Отчёт по контрагентам\n\n"
        "Компания;Тел.;Почта;Автопарк;Служебное\n"
        "ООО Альфа;+7 916 000-00-01;a@alfa.example;12;x\n"
        "ООО Бета;+7 916 000-00-02;b@beta.example;много;y\n"
    ).encode()
    status, preview = await post(admin, "/imports/preview", csv, "a.csv")
    assert status == 200, preview
    assert preview["header_row"] == 3 and preview["total"] == 2
    fields = {c["header"]: c["field"] for c in preview["columns"]}
    assert fields == {
        "Компания": "name",
        "Тел.": "phones",
        "Почта": "emails",
        "Автопарк": "custom.fleet",
        "Служебное": None,
    }
    assert preview["rows"][0] == {
        "row": 4,
        "cells": ["ООО Альфа", "+7 916 000-00-01", "a@alfa.example", "12", "x"],
    }
    assert {"name": "custom.fleet", "label_ru": "Автопарк", "label_en": "Fleet"} in preview[
        "fields"
    ]
    await _nothing(db, tmp_path)
    # The wizard sends every column's field, "skip" as null: the fleet is skipped.
    chosen = {"columns": {**fields, "Автопарк": None}, "header_row": 3}
    status, job = await post(
        admin, "/imports", csv, "a.csv", mapping=json.dumps(chosen), dry_run="true"
    )
    assert status == 202, job
    dry = await wait_done(admin, job["id"])
    assert dry["dry_run"] is True and dry["report"]["created"] == 2
    assert dry["report"]["errors"] == []
    status, job = await post(admin, "/imports", csv, "a.csv", mapping=json.dumps(chosen))
    done = await wait_done(admin, job["id"])
    assert (done["status"], done["rows"], done["total"]) == ("done", 2, 2)
    async with db.sessions() as s:
        from sqlalchemy import select

        assert [c.custom for c in await s.scalars(select(Client))] == [{}, {}]
    status, listed = await admin.get("/imports")
    assert status == 200 and [i["id"] for i in listed["items"]] == [job["id"]]  # no dry runs
    assert listed["items"][0]["summary"]["created"] == 2
    status, undone = await admin.post(f"/imports/{job['id']}/undo")
    assert status == 200 and undone["removed_clients"] == 2
    status, again = await admin.post(f"/imports/{job['id']}/undo")
    assert status in (400, 409, 422) and again["field"] == "import_id"
    status, again = await admin.post(f"/imports/{dry['id']}/undo")
    assert status in (400, 409, 422) and "dry run" in again["error"] and again["error_ru"]


def _encrypted() -> bytes:
    return (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 500 + "EncryptedPackage".encode("utf-16-le")
    )


def _xlsx_rows(n: int) -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["Name", "Phone"])
    for i in range(n):
        ws.append([f"C{i}", f"+7916{i:07d}"])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _truncated_xlsx() -> bytes:
    data = (SAMPLES / "clients_simple.xlsx").read_bytes()
    return data[: len(data) // 2]


def _zip_not_xlsx() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("readme.txt", "hello")
    return out.getvalue()


BAD = [
    ("png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, 422, "not a spreadsheet"),
    ("truncated", _truncated_xlsx(), 422, "corrupt"),
    ("zip", _zip_not_xlsx(), 422, "corrupt"),
    ("password", _encrypted(), 422, "password"),
    ("xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600, 422, ".xls"),
    ("big", b"Name,Phone\n" + b"A,+79160000000\n" * 20_000, 413, "limit"),
    ("rows", _xlsx_rows(60), 422, "more than 50 rows"),
    ("koi8", "Название;Телефон\nПривет мир;+79161234567\n".encode("koi8-r"), 422, "UTF-8"),
    ("utf16", "Имя,Телефон\nАнна,1\n".encode("utf-16"), 422, "UTF-16"),
    ("empty", b"", 422, "empty"),
    ("noheader", b"foo,bar\n1,2\n", 422, "header"),
]


@pytest.mark.parametrize(("case", "content", "code", "words"), BAD, ids=[b[0] for b in BAD])
async def test_bad_files_are_clear_4xx_and_write_nothing(
    db: Database,
    admin: Caller,
    tmp_path: Path,
    case: str,
    content: bytes,
    code: int,
    words: str,
) -> None:
    for path in ("/imports/preview", "/imports"):
        status, body = await post(admin, path, content, f"{case}.xlsx")
        assert status == code, (path, body)
        assert body["field"] == "file" and words in body["error"], body
        assert body["error_ru"] and body["error_ru"] != body["error"]
    await _nothing(db, tmp_path)
