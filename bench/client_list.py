"""Benchmark: the clients list with profile filters and sorting, on SQLite and PostgreSQL.

Bulk-loads N companies (default 200,000) with a profile (status, city, region, industry,
headcount, revenue, tags, a custom field), then times ``list_clients`` as an admin, one
page of 50, for each case below, against a baseline measured in the same run on the same
database: the default list (newest first, no filter).  Each case also pages once with
the ``next_after`` cursor.  Prints one line per case, then one JSON object with the
median milliseconds and the ratio to the baseline per database and case.

    .venv/bin/python bench/client_list.py [--clients 200000] [--only sqlite|pg] [--runs 7]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _load import drop_db, fresh_db  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from crm_core.access import Actor  # noqa: E402
from crm_core.db import Database, migrate  # noqa: E402
from crm_core.models import Client, ClientTag, CustomField, User, utcnow  # noqa: E402
from crm_core.services.clients import list_clients  # noqa: E402
from crm_core.services.common import ListFilter  # noqa: E402

CITIES = ["Москва", "Санкт-Петербург", "Казань", "Новосибирск", "Екатеринбург"] + [
    f"Город {i}" for i in range(95)
]
INDUSTRIES = ["Банки", "Розница", "Опт", "Медицина", "IT", "Логистика", "Производство"]
STATUSES = ["cold", "thinking", "ready", "active", "regular", "lost"]
TAGS = ["vip", "опт", "новый", "партнёр", "дилер"]
CASES: dict[str, dict[str, Any]] = {
    "city": {"extra": {"city": "Казань"}},
    "status": {"status": "ready"},
    "tag": {"extra": {"tag": "vip"}},
    "industry_headcount": {"extra": {"industry": "IT", "headcount_min": 100}},
    "sort_name": {"extra": {"sort": "name"}},
    "sort_revenue_desc": {"extra": {"sort": "-revenue"}},
    "sort_created_at": {"extra": {"sort": "-created_at"}},
    "city_sort_revenue": {"extra": {"city": "Москва", "sort": "-revenue"}},
    "cf_with_city": {"extra": {"city": "Казань", "cf": {"size": "M"}}},
}


async def load(db: Database, n: int) -> None:
    rng = random.Random(7)
    now = utcnow()
    async with db.transaction() as s:
        s.add(User(email="admin@bench", name="Admin", role="admin", token_hash="x" * 64))
        s.add(CustomField(key="size", label_ru="Размер", type="choice", options=["S", "M", "L"]))
    batch = 5000
    for start in range(0, n, batch):
        rows = []
        tags = []
        for i in range(start, min(n, start + batch)):
            rows.append(
                {
                    "id": i + 1,
                    "kind": "company",
                    "name": f"Компания {rng.randrange(10**6):06d}",
                    "kpp": "",
                    "status": rng.choice(STATUSES),
                    "owner_id": 1,
                    "city": rng.choice(CITIES) if rng.random() < 0.9 else None,
                    "region": None,
                    "industry": rng.choice(INDUSTRIES),
                    "headcount": rng.randrange(1, 5000),
                    "revenue": Decimal(rng.randrange(10**9)) if rng.random() < 0.8 else None,
                    "custom": {"size": rng.choice("SML")},
                    "notes": "",
                    "created_at": now,
                    "updated_at": now,
                }
            )
            if rng.random() < 0.2:
                tags.append({"client_id": i + 1, "tag": rng.choice(TAGS)})
        async with db.transaction() as s:
            await s.execute(insert(Client), rows)
            if tags:
                await s.execute(insert(ClientTag), tags)
    if db.url.startswith("postgresql"):
        async with db.engine.connect() as conn:
            await conn.exec_driver_sql("ANALYZE")
            await conn.commit()
    else:
        async with db.engine.connect() as conn:
            await conn.exec_driver_sql("ANALYZE")


async def timed(db: Database, flt_args: dict[str, Any], runs: int) -> tuple[float, float]:
    """Median ms of the first page and of the page after it."""
    actor = Actor(1, "admin")
    firsts: list[float] = []
    seconds: list[float] = []
    for _ in range(runs):
        flt = ListFilter(limit=50, **{k: v for k, v in flt_args.items() if k != "extra"})
        flt.extra = dict(flt_args.get("extra", {}))
        async with db.sessions() as s:
            t0 = time.perf_counter()
            page = await list_clients(s, actor, flt)
            firsts.append((time.perf_counter() - t0) * 1000)
            if page.next_after:
                flt.after = page.next_after
                t0 = time.perf_counter()
                await list_clients(s, actor, flt)
                seconds.append((time.perf_counter() - t0) * 1000)
    return statistics.median(firsts), statistics.median(seconds) if seconds else 0.0


async def one(kind: str, tmp: Path, n: int, runs: int) -> dict[str, Any]:
    url = await fresh_db(kind, tmp, "clientlist")
    db = Database(url)
    try:
        await migrate(db)
        t0 = time.perf_counter()
        await load(db, n)
        print(f"{kind}: loaded {n} clients in {time.perf_counter() - t0:.1f} s", flush=True)
        base, base_next = await timed(db, {}, runs)
        out: dict[str, Any] = {
            "baseline_ms": round(base, 2),
            "baseline_next_ms": round(base_next, 2),
        }
        for name, args in CASES.items():
            ms, next_ms = await timed(db, args, runs)
            out[name] = {
                "ms": round(ms, 2),
                "next_ms": round(next_ms, 2),
                "ratio": round(ms / base, 2) if base else None,
            }
            print(f"{kind} {name}: {ms:.1f} ms (next page {next_ms:.1f} ms), x{ms / base:.1f}")
        return out
    finally:
        await db.dispose()
        await drop_db(url)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--only", choices=["sqlite", "pg"])
    args = ap.parse_args()
    result: dict[str, Any] = {"clients": args.clients}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("sqlite", "pg"):
            if args.only in (None, kind):
                result[kind] = await one(kind, Path(tmp), args.clients, args.runs)
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    asyncio.run(main())
