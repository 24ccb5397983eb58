"""Benchmark: plan a task for each of 10,000 clients in one mass operation, on SQLite and
PostgreSQL, through the job runner (``crm_core.jobs.JobRunner``) exactly as the API
queues it (``crm_core.services.bulk.queue_job``).

The base: 50 managers, 10,000 clients owned round-robin; the job: ``tasks`` for every
client (selection by the list filters, i.e. all of them), assignee = each client's owner,
at most 20 per manager per day.  The time is from queueing to ``done``; it is checked that
every client got one task and no manager more than 20 on a day.  Baseline measured in
the same run on the same database: one bare ``executemany`` of 10,000 task rows (what the
job writes, without selection, permissions, audit or batching); ``*_ratio`` = job / bare.
Memory: the process's peak RSS, and its growth during the jobs (flat: batches of 500).

Last line, one JSON object: ``bulk_10k_s`` (the worse database), ``pg_bulk_10k_s``,
``sqlite_bulk_10k_s``, ``peak_rss_mb``, ``rss_growth_mb``, ``pg_ratio``, ``sqlite_ratio``.

    .venv/bin/python bench/bulk.py [--clients 10000] [--managers 50] [--only sqlite|pg]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _load import drop_db as drop_url  # noqa: E402
from _load import fresh_db as fresh_url  # noqa: E402
from sqlalchemy import delete, func, insert, select  # noqa: E402

from crm_core.access import Actor  # noqa: E402
from crm_core.db import Database, migrate  # noqa: E402
from crm_core.jobs import JobRunner  # noqa: E402
from crm_core.models import AuditEntry, Client, Job, Task, User, utcnow  # noqa: E402
from crm_core.services.bulk import queue_job  # noqa: E402

PER_DAY = 20


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


async def seed(db: Database, clients: int, managers: int) -> tuple[int, list[int]]:
    """An admin, ``managers`` managers and ``clients`` clients owned round-robin."""
    now = utcnow()
    async with db.transaction() as s:
        admin = User(email="admin@bench.ru", name="Admin", role="admin", token_hash="h-admin")
        s.add(admin)
        await s.flush()
        ids = list(
            await s.scalars(
                insert(User).returning(User.id, sort_by_parameter_order=True),
                [
                    {
                        "email": f"m{i}@bench.ru",
                        "name": f"Менеджер {i}",
                        "role": "manager",
                        "team": f"T{i % 5}",
                        "token_hash": f"h-{i}",
                        "active": True,
                        "timezone": "Europe/Moscow",
                        "working_hours": {},
                        "absences": [],
                        "weight": 1,
                        "locale": "ru",
                        "created_at": now,
                    }
                    for i in range(managers)
                ],
            )
        )
        admin_id = admin.id
    chunk = 2000
    for start in range(0, clients, chunk):
        async with db.transaction() as s:
            await s.execute(
                insert(Client),
                [
                    {
                        "kind": "company",
                        "name": f"ООО «Клиент {i}»",
                        "status": "cold",
                        "owner_id": ids[i % managers],
                        "notes": "",
                        "custom": {},
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i in range(start, min(clients, start + chunk))
                ],
            )
    return admin_id, ids


async def bare(db: Database, owners: list[int], clients: int) -> float:
    """The same number of task rows in one executemany (then removed again)."""
    async with db.sessions() as s:
        client_ids = list(await s.scalars(select(Client.id).order_by(Client.id).limit(clients)))
    now = utcnow()
    rows = [
        {
            "kind": "call_back",
            "title": "bare",
            "status": "open",
            "due_at": now,
            "remind_at": now,
            "assignee_id": owners[i % len(owners)],
            "client_id": cid,
            "note": "",
            "created_at": now,
        }
        for i, cid in enumerate(client_ids)
    ]
    t0 = time.perf_counter()
    async with db.transaction() as s:
        await s.execute(insert(Task), rows)
    elapsed = time.perf_counter() - t0
    async with db.transaction() as s:
        await s.execute(delete(Task).where(Task.title == "bare"))
    return elapsed


async def run_job(db: Database, admin_id: int) -> float:
    actor = Actor(admin_id, "admin")
    params: dict[str, Any] = {
        "kind": "call_back",
        "title": "Обзвон базы",
        "start_date": (date.today() + timedelta(days=1)).isoformat(),
        "per_manager_per_day": PER_DAY,
        "assignee_id": None,
        "due_time": "10:00",
        "workdays_only": True,
        "note": None,
    }
    t0 = time.perf_counter()
    async with db.transaction() as s:
        job, _ = await queue_job(s, actor, "tasks", params, {"filters": {}}, "bench-1")
        job_id = job.id
    await JobRunner(db).run_once()
    elapsed = time.perf_counter() - t0
    async with db.sessions() as s:
        job = await s.get(Job, job_id)
        assert job is not None and job.status == "done", job.status if job else None
    return elapsed


async def check(db: Database, clients: int) -> None:
    async with db.sessions() as s:
        n = await s.scalar(select(func.count(func.distinct(Task.client_id))))
        total = await s.scalar(select(func.count()).select_from(Task))
        audits = await s.scalar(select(func.count()).select_from(AuditEntry))
        days = Counter(
            (a, d.date())
            for a, d in (await s.execute(select(Task.assignee_id, Task.due_at))).all()
            if d is not None
        )
    assert n == total == clients == audits, (n, total, clients, audits)
    assert max(days.values()) <= PER_DAY, max(days.values())


async def one(kind: str, tmp: Path, clients: int, managers: int) -> dict[str, float]:
    db = Database(await fresh_url(kind, tmp, f"bulk_{kind}"))
    try:
        await migrate(db)
        admin_id, owners = await seed(db, clients, managers)
        base = await bare(db, owners, clients)
        before = current_rss_mb()
        took = await run_job(db, admin_id)
        grew = current_rss_mb() - before
        await check(db, clients)
        out = {"s": round(took, 2), "bare_s": round(base, 3), "rss_growth_mb": round(grew, 1)}
        print(kind, json.dumps(out), flush=True)
        return out
    finally:
        await db.dispose()
        await drop_url(db.url)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=10_000)
    ap.add_argument("--managers", type=int, default=50)
    ap.add_argument("--only", choices=["sqlite", "pg"])
    args = ap.parse_args()
    kinds = [args.only] if args.only else ["sqlite", "pg"]
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in kinds:
            results[kind] = await one(kind, Path(tmp), args.clients, args.managers)
    summary: dict[str, Any] = {
        "clients": args.clients,
        "bulk_10k_s": max(r["s"] for r in results.values()),
        "pg_bulk_10k_s": results.get("pg", {}).get("s"),
        "sqlite_bulk_10k_s": results.get("sqlite", {}).get("s"),
        "peak_rss_mb": round(rss_mb(), 1),
        "rss_growth_mb": max(r["rss_growth_mb"] for r in results.values()),
    }
    for kind, r in results.items():
        summary[f"{kind}_ratio"] = round(r["s"] / r["bare_s"], 1) if r["bare_s"] else None
    print(json.dumps(summary))


if __name__ == "__main__":
    asyncio.run(main())
