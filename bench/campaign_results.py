"""Campaign results on a large base: the analytics report "campaigns" (replies turned
into leads and deals), one campaign's counts and its 20,000-recipient XLSX.

    python bench/campaign_results.py [--db postgresql+asyncpg://postgres@127.0.0.1/x]
        [--campaigns 20] [--recipients 20000] [--clients 100000]

Without ``--db`` a temporary SQLite file is used; a PostgreSQL database given must exist
and be empty (``createdb``).  Clients, each with a lead and a deal (a third won) spread over the
year; ``campaigns`` campaigns of ``recipients`` recipients, a tenth of whom replied.
Last line: one JSON object with the timings in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert

from crm_core.access import Actor
from crm_core.db import Database, migrate
from crm_core.models import Campaign, CampaignRecipient, Client, Deal, Lead, User
from crm_core.services import campaign_results as svc
from crm_core.services.export import Column, XlsxSink

T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)
BATCH = 5000


async def _bulk(db: Database, model: Any, rows: list[dict[str, Any]]) -> None:
    for k in range(0, len(rows), BATCH):
        async with db.transaction() as s:
            await s.execute(insert(model), rows[k : k + BATCH])


async def seed(db: Database, n_campaigns: int, n_recipients: int, n_clients: int) -> None:
    rnd = random.Random(14)
    boss = {"id": 1, "email": "boss@example.ru", "role": "admin", "name": "B"}
    boss["token_hash"] = "x" * 64
    await _bulk(db, User, [boss])
    await _bulk(
        db,
        Client,
        [
            {"id": i, "kind": "company", "name": f"Клиент {i}", "owner_id": 1}
            for i in range(1, n_clients + 1)
        ],
    )
    leads, deals = [], []
    for i in range(1, n_clients + 1):
        at = T0 + timedelta(hours=rnd.randrange(24 * 365))
        leads.append({"id": i, "source": "email", "client_id": i, "owner_id": 1, "created_at": at})
        won = i % 3 == 0
        deals.append(
            {
                "id": i,
                "client_id": i,
                "title": f"d{i}",
                "stage": "won" if won else "new",
                "amount": Decimal(1000 + i % 50_000),
                "owner_id": 1,
                "created_at": at + timedelta(days=1),
                "closed_at": at + timedelta(days=3) if won else None,
            }
        )
    await _bulk(db, Lead, leads)
    await _bulk(db, Deal, deals)
    await _bulk(
        db,
        Campaign,
        [
            {
                "id": c,
                "name": f"Рассылка {c}",
                "status": "done",
                "created_by": 1,
                "started_at": T0 + timedelta(days=14 * c),
                "finished_at": T0 + timedelta(days=14 * c, hours=1),
                "audience": {},
            }
            for c in range(1, n_campaigns + 1)
        ],
    )
    statuses = ["sent"] * 80 + ["replied"] * 10 + ["bounced"] * 4 + ["failed"] * 3
    statuses += ["unsubscribed", "unknown", "suppressed"]
    for c in range(1, n_campaigns + 1):
        sent_at = T0 + timedelta(days=14 * c, minutes=5)
        start = rnd.randrange(n_clients)
        rows = []
        for k in range(n_recipients):
            st = statuses[rnd.randrange(len(statuses))]
            rows.append(
                {
                    "campaign_id": c,
                    "client_id": 1 + (start + k) % n_clients,
                    "email": f"r{k}@c{c}.example",
                    "status": st,
                    "sent_at": None if st in ("failed", "unknown", "suppressed") else sent_at,
                    "attempts": 1,
                }
            )
        await _bulk(db, CampaignRecipient, rows)


def _ms(t: float) -> float:
    return round((time.perf_counter() - t) * 1000, 1)


async def run(url: str, n_campaigns: int, n_recipients: int, n_clients: int) -> dict[str, Any]:
    db = Database(url)
    await migrate(db)
    t = time.perf_counter()
    await seed(db, n_campaigns, n_recipients, n_clients)
    out: dict[str, Any] = {"seed_ms": _ms(t)}
    if db.engine.dialect.name == "postgresql":
        async with db.engine.begin() as conn:
            from sqlalchemy import text

            await conn.execute(text("ANALYZE"))
    admin = Actor(user_id=1, role="admin")
    async with db.sessions() as s:
        await svc.campaigns_report(s, admin, None, None)  # warm
        t = time.perf_counter()
        report = await svc.campaigns_report(s, admin, None, None)
        out["report_ms"] = _ms(t)
        t = time.perf_counter()
        await svc.campaign_counts(s, 1)
        out["counts_ms"] = _ms(t)
        t = time.perf_counter()
        page = await svc.recipients_with_names(s, admin, 1, status="unknown", limit=50, after=None)
        out["recipients_page_ms"] = _ms(t)
    with tempfile.TemporaryDirectory() as tmp:
        sink = XlsxSink(Path(tmp) / "r.xlsx")
        t = time.perf_counter()
        await sink.header([Column(f"c{i}", f"c{i}") for i in range(7)])
        rows = 0
        async with db.sessions() as s:
            async for batch in svc.recipient_rows(s, 1):
                await sink.rows(batch)
                rows += len(batch)
        await sink.close()
        out["xlsx_ms"] = _ms(t)
        out["xlsx_rows"] = rows
        out["xlsx_bytes"] = (await asyncio.to_thread(os.stat, Path(tmp) / "r.xlsx")).st_size
    await db.dispose()
    out["campaigns"] = len(report["items"])
    out["leads"] = report["leads"]
    out["deals"] = report["deals"]
    out["unknown_page"] = len(page["items"])
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--db", default="")
    p.add_argument("--campaigns", type=int, default=20)
    p.add_argument("--recipients", type=int, default=20_000)
    p.add_argument("--clients", type=int, default=100_000)
    a = p.parse_args()
    tmp = tempfile.mkdtemp()
    url = a.db or f"sqlite+aiosqlite:///{tmp}/bench.db"
    result = asyncio.run(run(url, a.campaigns, a.recipients, a.clients))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
