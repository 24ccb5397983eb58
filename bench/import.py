"""Benchmark: client base import, rows per second, on SQLite and PostgreSQL.

Generates an XLSX of N client rows (name, INN, phone as people write it, email, segment),
imports it with ``crmhub``'s reader and writer into a fresh database, and compares with
a baseline measured in the same run on the same file and the same database: openpyxl
read-only iteration plus bare ``executemany`` of the same clients and contact points.
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
from crm_core.models import Client, ContactPoint, utcnow  # noqa: E402
from crm_core.services.imports import import_clients  # noqa: E402

_W10 = (2, 4, 10, 3, 5, 9, 4, 6, 8)
SEGMENTS = ["Опт", "Розница", "Медицина", "Госсектор", "Экспорт"]


def inn10(i: int) -> str:
    body = f"77{i:07d}"
    check = sum(int(d) * w for d, w in zip(body, _W10, strict=True)) % 11 % 10
    return body + str(check)


def make_xlsx(path: Path, rows: int) -> None:
    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet("Клиенты")
    ws.append(["Наименование", "ИНН", "Телефон", "E-mail", "Сегмент"])
    for i in range(rows):
        phone = f"8 (916) {i // 10000 % 1000:03d}-{i // 100 % 100:02d}-{i % 100:02d}"
        ws.append([f"ООО «Клиент {i}»", inn10(i), phone, f"c{i}@example.ru", SEGMENTS[i % 5]])
    wb.save(path)


async def fresh_db(kind: str, tmp: Path, tag: str) -> Database:
    db = Database(await fresh_url(kind, tmp, tag))
    await migrate(db)
    return db


async def drop_db(db: Database) -> None:
    await db.dispose()
    await drop_url(db.url)


async def bare(db: Database, path: Path) -> int:
    """openpyxl read-only iteration + executemany of the clients and their points."""
    wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    ws = wb.worksheets[0]
    it = ws.iter_rows(values_only=True)
    next(it)
    n = 0
    async with db.transaction() as s:
        chunk: list[tuple[Any, ...]] = []

        async def flush() -> None:
            now = utcnow()
            clients = [
                {
                    "kind": "company",
                    "name": r[0],
                    "inn": r[1],
                    "status": "cold",
                    "notes": "",
                    "created_at": now,
                    "updated_at": now,
                }
                for r in chunk
            ]
            await s.execute(insert(Client), clients)
            found = await s.execute(
                select(Client.inn, Client.id).where(Client.inn.in_([r[1] for r in chunk]))
            )
            by_inn = dict(found.tuples().all())
            points: list[dict[str, Any]] = []
            for r in chunk:
                cid = by_inn[r[1]]
                points.append(
                    {
                        "kind": "phone",
                        "value": "+7" + "".join(c for c in r[2] if c.isdigit())[1:],
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
            await s.execute(insert(ContactPoint), points)
            chunk.clear()

        for row in it:
            chunk.append(row)
            n += 1
            if len(chunk) == 500:
                await flush()
        if chunk:
            await flush()
    wb.close()
    return n


async def one(kind: str, tmp: Path, path: Path, rows: int) -> tuple[float, float]:
    db = await fresh_db(kind, tmp, "bare")
    try:
        t0 = time.perf_counter()
        assert await bare(db, path) == rows
        bare_rps = rows / (time.perf_counter() - t0)
    finally:
        await drop_db(db)
    db = await fresh_db(kind, tmp, "imp")
    try:
        t0 = time.perf_counter()
        report = await import_clients(db, read_clients(path), file_name=path.name)
        rps = rows / (time.perf_counter() - t0)
        assert report.created == rows and not report.errors, report.as_dict()["errors"][:3]
    finally:
        await drop_db(db)
    print(f"{kind}: import {rps:.0f} rows/s, bare {bare_rps:.0f} rows/s", file=sys.stderr)
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
        make_xlsx(path, args.rows)
        for kind in ("sqlite", "pg"):
            if args.only and kind != args.only:
                continue
            rps, bare_rps = await one(kind, tmp, path, args.rows)
            out[f"{kind}_rows_per_s"] = round(rps)
            out["bare_rows_per_s" if kind == "sqlite" else "bare_pg_rows_per_s"] = round(bare_rps)
            out[f"{kind}_ratio"] = round(rps / bare_rps, 3)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main())
