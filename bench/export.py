"""Benchmark: client export (``crmhub export clients``), time and peak memory.

Fills a fresh database with N clients (profile, 1-2 phones, an email, tags on every
third, a contact person with a phone on every fifth), then runs ``crmhub export
clients`` as a child process for CSV and XLSX, first at N/10 clients and again at N
(the same database grown), and reads each child's peak RSS from ``wait4``: a streamed
export needs about the same memory for N/10 and N clients.  Baseline in the same run:
a bare dump (one streamed ``SELECT`` of the clients table through ``csv.writer``, also
a child process).  The last line is one JSON object: per backend ``<db>_csv_s``,
``<db>_xlsx_s``, ``<db>_bare_s``, ``<db>_csv_ratio`` / ``<db>_xlsx_ratio`` (bare time /
export time), ``<db>_*_cpu_s`` (CPU seconds of each child: steadier than wall time
on a shared machine), ``<db>_csv_rss_mb`` / ``<db>_xlsx_rss_mb`` at N and ``..._small_rss_mb``
at N/10, and ``clients``.

    .venv/bin/python bench/export.py [--clients 200000] [--only sqlite|pg]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _load import drop_db, fresh_db  # noqa: E402
from sqlalchemy import insert, select, text  # noqa: E402

from crm_core.db import Database, migrate  # noqa: E402
from crm_core.models import Client, ClientTag, ContactPerson, ContactPoint, utcnow  # noqa: E402
from crm_core.services.users import create_user  # noqa: E402

_W10 = (2, 4, 10, 3, 5, 9, 4, 6, 8)
CITIES = ["Москва", "Санкт-Петербург", "Казань", "Тула", "Екатеринбург"]
BATCH = 5000


def inn10(i: int) -> str:
    body = f"77{i:07d}"
    return body + str(sum(int(d) * w for d, w in zip(body, _W10, strict=True)) % 11 % 10)


async def _max_id(s: Any, model: Any) -> int:
    return int(await s.scalar(select(text(f"coalesce(max(id), 0) FROM {model.__tablename__}"))))


async def grow(url: str, start: int, stop: int) -> None:
    """Add clients ``start`` .. ``stop - 1`` (ids given, executemany in batches)."""
    db = Database(url)
    try:
        await migrate(db)
        async with db.transaction() as s:
            owner = await s.scalar(text("SELECT id FROM users ORDER BY id LIMIT 1"))
            if owner is None:
                user, _ = await create_user(s, "bench@example.ru", "admin", name="Bench")
                owner = user.id
        now = utcnow()
        for lo in range(start, stop, BATCH):
            hi = min(stop, lo + BATCH)
            async with db.transaction() as s:
                pid = await _max_id(s, ContactPerson)
                cpid = await _max_id(s, ContactPoint)
                clients, points, persons, tags = [], [], [], []
                for i in range(lo, hi):
                    cid = i + 1
                    clients.append(
                        {
                            "id": cid,
                            "kind": "company",
                            "name": f"ООО «Клиент {i}»",
                            "inn": inn10(i),
                            "kpp": "",
                            "city": CITIES[i % 5],
                            "region": CITIES[i % 5],
                            "industry": "Торговля",
                            "headcount": i % 500,
                            "status": "active",
                            "owner_id": owner,
                            "custom": {},
                            "notes": "",
                            "created_at": now,
                            "updated_at": now,
                        }
                    )
                    phones = [f"+7916{i:07d}"] + ([f"+7495{i:07d}"] if i % 2 else [])
                    for p in phones:
                        cpid += 1
                        points.append({"id": cpid, "kind": "phone", "value": p, "client_id": cid})
                    cpid += 1
                    points.append(
                        {"id": cpid, "kind": "email", "value": f"c{i}@example.ru", "client_id": cid}
                    )
                    if i % 3 == 0:
                        tags.append({"client_id": cid, "tag": "vip"})
                    if i % 5 == 0:
                        pid += 1
                        persons.append(
                            {
                                "id": pid,
                                "client_id": cid,
                                "name": f"Иван {i}",
                                "position": "Директор",
                            }
                        )
                        cpid += 1
                        points.append(
                            {
                                "id": cpid,
                                "kind": "phone",
                                "value": f"+7903{i:07d}",
                                "contact_person_id": pid,
                            }
                        )
                for row in points:
                    row.setdefault("client_id", None)
                    row.setdefault("contact_person_id", None)
                    row.update(unreachable=False, created_at=now)
                await s.execute(insert(Client), clients)
                if persons:
                    for p in persons:
                        p.update(notes="", is_primary=False, created_at=now)
                    await s.execute(insert(ContactPerson), persons)
                await s.execute(insert(ContactPoint), points)
                if tags:
                    await s.execute(insert(ClientTag), tags)
        if url.startswith("postgresql"):
            async with db.connect() as conn:
                for t in ("clients", "contact_persons", "contact_points"):
                    await conn.execute(
                        text(
                            f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), "
                            f"(SELECT coalesce(max(id), 1) FROM {t}))"
                        )
                    )
                await conn.execute(text("ANALYZE"))
    finally:
        await db.dispose()


CPU: dict[str, float] = {}  # CPU seconds of the last child, by label


def child(args: list[str], url: str, label: str = "") -> tuple[float, float]:
    """Run ``args`` as a child process; (seconds, its peak RSS in MB); its CPU seconds
    (user + system: what a loaded machine does not inflate) go to ``CPU[label]``."""
    env = {**os.environ, "CRMHUB_DATABASE_URL": url, "CRMHUB_ROUTING_RULES_PATH": ""}
    started = time.monotonic()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - started
    CPU[label] = usage.ru_utime + usage.ru_stime
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{args} failed: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
    return seconds, usage.ru_maxrss / 1024


async def bare_dump(url: str, out: str) -> None:
    db = Database(url)
    try:
        async with db.engine.connect() as conn:
            result = await conn.stream(select(Client.__table__))
            with open(out, "w", newline="", encoding="utf-8") as fh:  # noqa: ASYNC230
                writer = csv.writer(fh, delimiter=";")
                async for part in result.partitions(2000):
                    writer.writerows(part)
    finally:
        await db.dispose()


def export(url: str, fmt: str, out: Path) -> tuple[float, float]:
    cli = [sys.executable, "-m", "gateway.cli", "export", "clients", "--format", fmt]
    return child([*cli, "-o", str(out)], url, fmt)


async def run(kind: str, n: int, tmp: Path) -> dict[str, Any]:
    url = await fresh_db(kind, tmp, f"export_{kind}")
    out: dict[str, Any] = {}
    try:
        small = max(1, n // 10)
        await grow(url, 0, small)
        _, out[f"{kind}_csv_small_rss_mb"] = export(url, "csv", tmp / "s.csv")
        _, out[f"{kind}_xlsx_small_rss_mb"] = export(url, "xlsx", tmp / "s.xlsx")
        await grow(url, small, n)
        bare_s, _ = child(
            [sys.executable, __file__, "--bare", url, str(tmp / "bare.csv")], url, "bare"
        )
        csv_s, csv_rss = export(url, "csv", tmp / "c.csv")
        csv_cpu = CPU["csv"]
        xlsx_s, xlsx_rss = export(url, "xlsx", tmp / "c.xlsx")
        out[f"{kind}_bare_cpu_s"] = round(CPU["bare"], 2)
        out[f"{kind}_csv_cpu_s"] = round(csv_cpu, 2)
        out[f"{kind}_xlsx_cpu_s"] = round(CPU["xlsx"], 2)
        out.update(
            {
                f"{kind}_bare_s": round(bare_s, 2),
                f"{kind}_csv_s": round(csv_s, 2),
                f"{kind}_xlsx_s": round(xlsx_s, 2),
                f"{kind}_csv_ratio": round(bare_s / csv_s, 3),
                f"{kind}_xlsx_ratio": round(bare_s / xlsx_s, 3),
                f"{kind}_csv_rss_mb": round(csv_rss, 1),
                f"{kind}_xlsx_rss_mb": round(xlsx_rss, 1),
                f"{kind}_csv_mb": round((tmp / "c.csv").stat().st_size / 2**20, 1),
                f"{kind}_xlsx_mb": round((tmp / "c.xlsx").stat().st_size / 2**20, 1),
            }
        )
        out[f"{kind}_csv_small_rss_mb"] = round(out[f"{kind}_csv_small_rss_mb"], 1)
        out[f"{kind}_xlsx_small_rss_mb"] = round(out[f"{kind}_xlsx_small_rss_mb"], 1)
        print(json.dumps(out, ensure_ascii=False), flush=True)
    finally:
        await drop_db(url)
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--clients", type=int, default=200_000)
    p.add_argument("--only", choices=["sqlite", "pg"])
    p.add_argument("--bare", nargs=2, metavar=("URL", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.bare:
        asyncio.run(bare_dump(*args.bare))
        return
    result: dict[str, Any] = {"clients": args.clients}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("sqlite", "pg"):
            if args.only in (None, kind):
                result.update(asyncio.run(run(kind, args.clients, Path(tmp))))
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
