"""Form -> lead ingest benchmark (issue 2).

In one run, on SQLite and on PostgreSQL, with 50 concurrent clients for a fixed time:
(a) a bare aiohttp endpoint inserting one row per request with the raw driver, one commit
    per request (bench/raw_insert_server.py), and
(b) crmhub's full path: POST /hooks/forms/{key} -> durable inbox -> match -> assign -> lead,
    answered after processing (the handler waits for the lead, bounded).
Prints requests/s, p50 and p99 for both and the ratio b/a, checks that every 2xx
submission is in the database afterwards, and ends with one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _load import (  # noqa: E402
    drop_db,
    free_port,
    fresh_db,
    run_load,
    start_process,
    stop_process,
    wait_http,
)

CRMHUB = [sys.executable, "-m", "gateway.cli"]


def body(i: int) -> dict[str, str]:
    return {
        "name": f"Клиент {i}",
        "phone": f"+7 916 {i // 10000 % 1000:03d}-{i // 100 % 100:02d}-{i % 100:02d}",
        "email": f"client{i}@example.ru",
        "comment": "Хочу демо",
        "utm_source": "bench",
    }


def cli(env: dict[str, str], *args: str) -> dict:
    out = subprocess.run(CRMHUB + list(args), env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


async def bench_raw(kind: str, tmp: Path, seconds: float) -> dict:
    url = await fresh_db(kind, tmp, "raw")
    port = free_port()
    proc = start_process(
        [sys.executable, str(ROOT / "bench" / "raw_insert_server.py"), url, str(port)]
    )
    try:
        await wait_http(f"http://127.0.0.1:{port}/healthz")
        res = await run_load(f"http://127.0.0.1:{port}/hook", body, seconds=seconds)
    finally:
        stop_process(proc)
        await drop_db(url)
    return res.summary()


async def count_rows(url: str) -> tuple[int, int]:
    from sqlalchemy import func, select

    from crm_core.db import Database
    from crm_core.models import InboxEvent, Lead

    db = Database(url)
    try:
        async with db.sessions() as s:
            inbox = await s.scalar(select(func.count()).select_from(InboxEvent))
            leads = await s.scalar(select(func.count()).select_from(Lead))
        return int(inbox or 0), int(leads or 0)
    finally:
        await db.dispose()


async def bench_crmhub(kind: str, tmp: Path, seconds: float) -> dict:
    url = await fresh_db(kind, tmp, "hub")
    env = {
        **os.environ,
        "CRMHUB_DATABASE_URL": url,
        "CRMHUB_LOG_LEVEL": "WARNING",
        "CRMHUB_WEBFORMS__RATE_PER_MINUTE": "100000000",
        "CRMHUB_ROUTING_RULES_PATH": "",
        "PYTHONPATH": str(ROOT),
    }
    for i in range(3):
        cli(env, "users", "add", f"m{i}@bench.example", "--role", "manager")
    form = cli(env, "forms", "add", "bench")
    port = free_port()
    proc = start_process([*CRMHUB, "serve", "--port", str(port)], env=env)
    try:
        await wait_http(f"http://127.0.0.1:{port}/healthz")
        hook = f"http://127.0.0.1:{port}/hooks/forms/{form['key']}?secret={form['secret']}"
        res = await run_load(hook, body, seconds=seconds)
    finally:
        stop_process(proc)
    inbox, leads = await count_rows(url)
    await drop_db(url)
    out = res.summary()
    out.update({"inbox_rows": inbox, "leads": leads, "durable_ok": inbox >= res.ok})
    return out


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--only", choices=["sqlite", "pg"])
    args = ap.parse_args()
    figures: dict[str, float | bool] = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for kind in ("sqlite", "pg"):
            if args.only and kind != args.only:
                continue
            raw = await bench_raw(kind, tmp, args.seconds)
            hub = await bench_crmhub(kind, tmp, args.seconds)
            ratio = hub["rps"] / raw["rps"] if raw["rps"] else 0.0
            print(f"[{kind}] raw driver : {raw}")
            print(f"[{kind}] crmhub     : {hub}")
            print(f"[{kind}] ratio b/a  : {ratio:.2f} (target >= 0.5), p99 {hub['p99_ms']} ms")
            figures[f"{kind}_ratio"] = round(ratio, 3)
            figures[f"{kind}_p99_ms"] = hub["p99_ms"]
            figures[f"{kind}_raw_rps"] = raw["rps"]
            figures[f"{kind}_crmhub_rps"] = hub["rps"]
            figures[f"{kind}_durable_ok"] = hub["durable_ok"]
    print(json.dumps(figures))


if __name__ == "__main__":
    asyncio.run(main())
