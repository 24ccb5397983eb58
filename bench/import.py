"""Benchmark: client base import, rows per second, on SQLite and PostgreSQL.

Generates an XLSX of N client rows (companies with 1-3 phones as people write them, an
email, a contact person with a position, a city and a segment; every tenth row repeats
an earlier company's INN with a new email: an update), imports it with ``crmhub``'s
reader and writer into a fresh database, and compares with a baseline measured in the
same run on the same file and the same database: openpyxl read-only iteration plus bare
``executemany`` of the same clients, contact persons and contact points.
The last line is one JSON object with ``sqlite_rows_per_s``, ``pg_rows_per_s``,
``bare_rows_per_s`` (SQLite), ``bare_pg_rows_per_s``, ``sqlite_ratio``, ``pg_ratio`` and
``peak_rss_mb`` (the whole process).

    .venv/bin/python bench/import.py [--rows 100000] [--only sqlite|pg]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import openpyxl  # noqa: E402
from _load import drop_db as drop_url  # noqa: E402
from _load import fresh_db as fresh_url  # noqa: E402
from sqlalchemy import insert, select  # noqa: E402

from crm_core.db import Database, migrate  # noqa: E402
from crm_core.imports.read import read_clients  # noqa: E402
from crm_core.models import Client, ContactPerson, ContactPoint, utcnow  # noqa: E402
from crm_core.services.imports import import_clients  # noqa: E402

_W10 = (2, 4, 10, 3, 5, 9, 4, 6, 8)
CPU: dict[str, float] = {}  # rows per CPU second of this process (a shared machine)
SEGMENTS = ["Опт", "Розница", "Медицина", "Госсектор", "Экспорт"]


def inn10(i: int) -> str:
    body = f"77{i:07d}"
    check = sum(int(d) * w for d, w in zip(body, _W10, strict=True)) % 11 % 10
    return body + str(check)


def _phone(i: int, k: int) -> str:
    n = i * 3 + k
    return f"8 (9{16 + k}) {n // 10000 % 1000:03d}-{n // 100 % 100:02d}-{n % 100:02d}"


def source_row(i: int) -> list[str]:
    """Row ``i`` of the file; every tenth repeats company ``i - 5`` (same INN) with a
    new email."""
    company = i - 5 if i % 10 == 9 else i
    phones = ", ".join(_phone(company, k) for k in range(1 + company % 3))
    email = f"c{i}@example.ru"
    return [
        f"ООО «Клиент {company}»",
        inn10(company),
        phones,
        email,
        f"Иванов Иван {company}",
        "директор",
        CITIES[company % 4],
        SEGMENTS[company % 5],
    ]


CITIES = ["Москва", "Казань", "Пермь", "Тула"]
HEADER = [
    "Наименование",
    "ИНН",
    "Телефон",
    "E-mail",
    "Контактное лицо",
    "Должность",
    "Город",
    "Сегмент",
]


def make_xlsx(path: Path, rows: int) -> int:
    """The file; returns how many distinct companies it holds."""
    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet("Клиенты")
    ws.append(HEADER)
    for i in range(rows):
        ws.append(source_row(i))
    wb.save(path)
    return sum(1 for i in range(rows) if i % 10 != 9)


async def fresh_db(kind: str, tmp: Path, tag: str) -> Database:
    db = Database(await fresh_url(kind, tmp, tag))
    await migrate(db)
    return db


async def drop_db(db: Database) -> None:
    await db.dispose()
    await drop_url(db.url)


async def bare(db: Database, path: Path) -> int:
    """openpyxl read-only iteration + executemany of the clients, their contact persons
    and points (a repeated INN is skipped; no parsing beyond the digits)."""
    wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    ws = wb.worksheets[0]
    it = ws.iter_rows(values_only=True)
    next(it)
    n = 0
    seen: set[str] = set()
    async with db.transaction() as s:
        conn = await s.connection()
        chunk: list[tuple[Any, ...]] = []

        async def flush() -> None:
            now = utcnow()
            fresh = []
            for r in chunk:
                if r[1] not in seen:
                    seen.add(r[1])
                    fresh.append(r)
            clients = [
                {
                    "kind": "company",
                    "name": r[0],
                    "inn": r[1],
                    "kpp": "",
                    "city": r[6],
                    "status": "cold",
                    "notes": "",
                    "created_at": now,
                    "updated_at": now,
                }
                for r in fresh
            ]
            await conn.execute(insert(Client.__table__), clients)
            found = await conn.execute(
                select(Client.inn, Client.id).where(Client.inn.in_([r[1] for r in fresh]))
            )
            by_inn = {inn: cid for inn, cid in found}
            await conn.execute(
                insert(ContactPerson.__table__),
                [
                    {"client_id": by_inn[r[1]], "name": r[4], "position": r[5], "created_at": now}
                    for r in fresh
                ],
            )
            points: list[dict[str, Any]] = []
            for r in fresh:
                cid = by_inn[r[1]]
                for phone in r[2].split(", "):
                    points.append(
                        {
                            "kind": "phone",
                            "value": "+7" + "".join(c for c in phone if c.isdigit())[1:],
                            "client_id": cid,
                            "unreachable": False,
                            "created_at": now,
                        }
                    )
                points.append(
                    {
                        "kind": "email",
                        "value": r[3],
                        "client_id": cid,
                        "unreachable": False,
                        "created_at": now,
                    }
                )
            await conn.execute(insert(ContactPoint.__table__), points)
            chunk.clear()

        for row in it:
            chunk.append(row)
            n += 1
            if len(chunk) == 1000:
                await flush()
        if chunk:
            await flush()
    wb.close()
    return n


async def one(kind: str, tmp: Path, path: Path, rows: int, companies: int) -> tuple[float, float]:
    db = await fresh_db(kind, tmp, "bare")
    try:
        t0 = time.perf_counter()
        assert await bare(db, path) == rows
        bare_rps = rows / (time.perf_counter() - t0)
    finally:
        await drop_db(db)
    db = await fresh_db(kind, tmp, "imp")
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        report = await import_clients(db, read_clients(path), file_name=path.name)
        rps = rows / (time.perf_counter() - t0)
        CPU[kind] = rows / (time.process_time() - c0)
        assert report.created == companies, report.as_dict(limit=3)
        assert report.updated == rows - companies and not report.errors
    finally:
        await drop_db(db)
    print(
        f"{kind}: import {rps:.0f} rows/s ({CPU[kind]:.0f} per CPU second of this process),"
        f" bare {bare_rps:.0f} rows/s",
        file=sys.stderr,
    )
    return rps, bare_rps


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--only", choices=["sqlite", "pg"])
    args = ap.parse_args()
    out: dict[str, Any] = {"rows": args.rows}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        path = tmp / "clients.xlsx"
        companies = make_xlsx(path, args.rows)
        for kind in ("sqlite", "pg"):
            if args.only and kind != args.only:
                continue
            rps, bare_rps = await one(kind, tmp, path, args.rows, companies)
            out[f"{kind}_rows_per_s"] = round(rps)
            out["bare_rows_per_s" if kind == "sqlite" else "bare_pg_rows_per_s"] = round(bare_rps)
            out[f"{kind}_ratio"] = round(rps / bare_rps, 3)
            out[f"{kind}_rows_per_cpu_s"] = round(CPU[kind])
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main())
