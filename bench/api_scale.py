"""The API on a two-year base (issue 11): lists, search, cards, board and analytics on
SMALL and LARGE bases, on PostgreSQL and SQLite, and form intake as the base grows.

SMALL: 2,000 clients, 10,000 interactions.  LARGE: 200,000 clients (510,000 contact
points), 1,000,000 interactions, 100,000 leads, 50,000 deals (~198,000 stage changes),
100,000 tasks, 50 managers in 5 teams; ``--scale`` shrinks LARGE for quick runs.  The
base is bulk-loaded straight into the migrated schema (bench/_scale_data.py).  The hub
runs pinned to one core.  Every endpoint is timed as an admin and as a manager: 2
warm-ups, then ``--requests`` sequential requests.  Intake: one form webhook per second
(alternating a new and a known contact) for ``--intake-seconds`` on SMALL and LARGE.
Then 10 concurrent senders on LARGE SQLite (5xx counted) and one sender on an empty
base (the p50 of a submission answered after its lead is committed, checked after every
answer, and the hub's CPU per submission).  This process runs on core 0, the hub on core
1.  Any non-2xx answer on the
timed endpoints fails the run.  The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _load import drop_db, free_port, stop_process, wait_http  # noqa: E402
from _load import fresh_db as _fresh_db  # noqa: E402
from _scale_data import Sizes, Truth, load  # noqa: E402

CRMHUB = [sys.executable, "-m", "gateway.cli"]
ANALYTICS = "/analytics/"
# Segments of the generated base (ids filled by seed_segments) and a rule set to preview.
SEGMENTS: dict[str, int] = {}
PREVIEW_RULES = {
    "all": [
        {"field": "kind", "op": "eq", "value": "company"},
        {"field": "days_since_contact", "op": "lte", "value": 60},
        {
            "any": [
                {"field": "status", "op": "in", "value": ["active", "regular"]},
                {"field": "deals_won_count", "op": "gte", "value": 1},
            ]
        },
    ]
}


class BenchFailed(RuntimeError):
    pass


async def fresh_db(kind: str, tmp: Path, tag: str) -> str:
    return await _fresh_db(kind, tmp, tag, prefix="crmhub_scale")


async def migrate_db(url: str) -> None:
    from crm_core.db import Database, migrate

    db = Database(url)
    try:
        await migrate(db)
    finally:
        await db.dispose()


def pct(data: list[float], p: float) -> float:
    s = sorted(data)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))] if s else float("nan")


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[bytes]
    base: str = field(default="")


def start_hub(url: str) -> Server:
    port = free_port()
    env = {
        **os.environ,
        "CRMHUB_DATABASE_URL": url,
        "CRMHUB_LOG_LEVEL": "WARNING",
        "CRMHUB_WEBFORMS__RATE_PER_MINUTE": "100000000",
        "CRMHUB_ROUTING_RULES_PATH": "",
        "PYTHONPATH": str(ROOT),
    }
    args = [*CRMHUB, "serve", "--port", str(port)]
    if shutil.which("taskset"):
        args = ["taskset", "-c", "1", *args]  # one core
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return Server(url, proc, f"http://127.0.0.1:{port}")


def endpoints(t: Truth, as_admin: bool) -> list[tuple[str, str]]:
    """(label, path): labels name the same request on SMALL and LARGE."""
    client = t.heavy_client if as_admin else t.manager_client
    paths = [
        ("/clients", "/clients"),
        ("/clients?offset=5000", "/clients?offset=5000"),
        ("/clients?after=<deep id> (keyset)", f"/clients?after={t.deep_client}"),
        ("/clients?q=<name fragment>", f"/clients?q={t.name_fragment}"),
        ("/clients?q=<INN>", f"/clients?q={t.inn}"),
        ("/clients?q=<phone 8 (9xx) ...>", f"/clients?q={t.phone_spelling}"),
        ("/clients?q=<Email>", f"/clients?q={t.email}"),
        ("/clients?q=<contact person>", f"/clients?q={t.person_name}"),
        ("/clients?phone=<phone>", f"/clients?phone={t.phone_spelling}"),
        ("/clients/<id>", f"/clients/{client}"),
        ("/clients/<heavy>/timeline", f"/clients/{t.heavy_client}/timeline"),
        ("/clients/<heavy>/contacts", f"/clients/{t.heavy_client}/contacts"),
        ("/leads", "/leads"),
        ("/leads?status=new", "/leads?status=new"),
        ("/leads?after=<deep id> (keyset)", f"/leads?after={t.deep_lead}"),
        ("/leads/<id>", f"/leads/{t.manager_lead}"),
        ("/leads/<id>/timeline", f"/leads/{t.manager_lead}/timeline"),
        ("/deals", "/deals"),
        ("/deals?status=open", "/deals?status=open"),
        ("/deals?status=negotiation (board)", "/deals?status=negotiation"),
        ("/deals/<id>", f"/deals/{t.manager_deal}"),
        ("/stages", "/stages"),
        ("/pipelines", "/pipelines"),
        ("/deals/board", "/deals/board"),
        ("/deals/board?amount_min=1000000", "/deals/board?amount_min=1000000"),
        ("/tasks", "/tasks"),
        ("/tasks?status=open", "/tasks?status=open"),
        ("/tasks?due=today", "/tasks?due=today&status=open"),
        ("/tasks?due=week", "/tasks?due=week&status=open"),
        ("/tasks?due=overdue", "/tasks?due=overdue"),
        ("/users", "/users"),
        ("/me", "/me"),
        ("/analytics/funnel", "/analytics/funnel"),
        ("/analytics/funnel?pipeline_id=<default>", "/analytics/funnel?pipeline_id=1"),
        ("/analytics/requests?group=day", "/analytics/requests?group=day"),
        ("/analytics/requests?group=week", "/analytics/requests?group=week"),
        ("/analytics/requests?group=month", "/analytics/requests?group=month"),
        ("/analytics/managers", "/analytics/managers"),
        (
            "/analytics/managers?created_from=<mid-month>",
            "/analytics/managers?created_from=2026-06-15",
        ),
        ("/analytics/sales?group=month", "/analytics/sales?group=month"),
        ("/analytics/sales?group=manager", "/analytics/sales?group=manager"),
        ("/analytics/sales?group=segment", "/analytics/sales?group=segment"),
        ("/analytics/sales?group=season", "/analytics/sales?group=season"),
        ("/analytics/plan-fact?period=2026-11", "/analytics/plan-fact?period=2026-11"),
        ("/analytics/plan-fact?period=2026-Q4", "/analytics/plan-fact?period=2026-Q4"),
        ("/analytics/promising", "/analytics/promising"),
        ("/analytics/managers?format=xlsx", "/analytics/managers?format=xlsx"),
        ("/analytics/sales?group=season&format=csv", "/analytics/sales?group=season&format=csv"),
        ("/analytics/promising?format=svg", "/analytics/promising?format=svg"),
        ("/plans?period=2026-11", "/plans?period=2026-11"),
    ]
    if not as_admin:
        paths.remove(("/users", "/users"))  # admins and supervisors only
    for name, seg in SEGMENTS.items():
        paths.append((f"/segments/<{name}>/clients", f"/segments/{seg}/clients"))
        paths.append((f"/clients?segment=<{name}>", f"/clients?segment={seg}"))
    if SEGMENTS:
        paths.append(("/segments (with counts)", "/segments"))
    return paths


async def seed_segments(url: str) -> None:
    """Three segments on the loaded base: two by rules, one manual (every 20th client)."""
    from sqlalchemy import text

    from crm_core.db import Database

    rules = {
        "rule_recent": PREVIEW_RULES,
        "rule_won": {
            "any": [
                {"field": "deals_won_amount", "op": "gte", "value": 100000},
                {"field": "status", "op": "eq", "value": "regular"},
            ]
        },
    }
    db = Database(url)
    try:
        async with db.connect() as conn:
            for i, (name, spec) in enumerate(rules.items(), start=1):
                await conn.execute(
                    text(
                        "INSERT INTO segments (id, name, description, kind, rules) "
                        "VALUES (:i, :n, '', 'rule', :r)"
                    ),
                    {"i": 900 + i, "n": name, "r": json.dumps(spec)},
                )
                SEGMENTS[name] = 900 + i
            await conn.execute(
                text(
                    "INSERT INTO segments (id, name, description, kind) "
                    "VALUES (903, 'manual_5pct', '', 'manual')"
                )
            )
            await conn.execute(
                text(
                    "INSERT INTO segment_clients (segment_id, client_id, added_at) "
                    "SELECT 903, id, created_at FROM clients WHERE id % 20 = 0"
                )
            )
            SEGMENTS["manual_5pct"] = 903
    finally:
        await db.dispose()


async def time_endpoints(srv: Server, t: Truth, n: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    async with aiohttp.ClientSession() as http:
        for who, token in (("admin", t.admin_token), ("manager", t.manager_token)):
            headers = {"Authorization": f"Bearer {token}"}
            for label, path in endpoints(t, who == "admin"):
                url = srv.base + "/api/v1" + path
                lat: list[float] = []
                for i in range(n + 2):
                    t0 = time.perf_counter()
                    async with http.get(url, headers=headers) as r:
                        body = await r.read()
                        if not 200 <= r.status < 300:
                            raise BenchFailed(f"{who} GET {path}: {r.status} {body[:300]!r}")
                    if i >= 2:
                        lat.append((time.perf_counter() - t0) * 1000)
                out[f"{who} {label}"] = {
                    "p50": round(pct(lat, 50), 1),
                    "p95": round(pct(lat, 95), 1),
                }
            if SEGMENTS:  # the editor's live count: POST /segments/preview
                url = srv.base + "/api/v1/segments/preview"
                lat = []
                for i in range(n + 2):
                    t0 = time.perf_counter()
                    async with http.post(url, headers=headers, json={"rules": PREVIEW_RULES}) as r:
                        body = await r.read()
                        if r.status != 200:
                            raise BenchFailed(
                                f"{who} POST /segments/preview: {r.status} {body[:300]!r}"
                            )
                    if i >= 2:
                        lat.append((time.perf_counter() - t0) * 1000)
                out[f"{who} POST /segments/preview"] = {
                    "p50": round(pct(lat, 50), 1),
                    "p95": round(pct(lat, 95), 1),
                }
    return out


def form_body(i: int, known_phone: str | None) -> dict[str, str]:
    phone = (
        known_phone
        if known_phone
        else f"+7 977 {i // 10000 % 1000:03d}-{i // 100 % 100:02d}-{i % 100:02d}"
    )
    return {
        "name": f"Посетитель {i}",
        "phone": phone,
        "email": f"visitor{i}-{uuid.uuid4().hex[:6]}@example.ru" if not known_phone else "",
        "comment": "Хочу демо",
        "utm_source": "bench",
    }


async def intake(srv: Server, t: Truth, seconds: float) -> list[float]:
    """One submission per second, alternately a new and a known contact."""
    hook = f"{srv.base}/hooks/forms/{t.form_key}?secret={t.form_secret}"
    lat: list[float] = []
    async with aiohttp.ClientSession() as http:
        for i in range(int(seconds)):
            tick = time.perf_counter()
            body = form_body(i + int(time.time()) % 100000, t.known_phone if i % 2 else None)
            async with http.post(hook, data=body) as r:
                text = await r.read()
                if not 200 <= r.status < 300:
                    raise BenchFailed(f"form webhook: {r.status} {text[:300]!r}")
            lat.append((time.perf_counter() - tick) * 1000)
            await asyncio.sleep(max(0.0, 1.0 - (time.perf_counter() - tick)))
    return lat


async def concurrent_senders(srv: Server, t: Truth, senders: int, seconds: float) -> dict[str, Any]:
    hook = f"{srv.base}/hooks/forms/{t.form_key}?secret={t.form_secret}"
    stop = time.perf_counter() + seconds
    counts = {"ok": 0, "5xx": 0, "other": 0}
    lat: list[float] = []
    seq = 0

    async def one(http: aiohttp.ClientSession) -> None:
        nonlocal seq
        while time.perf_counter() < stop:
            seq += 1
            t0 = time.perf_counter()
            try:
                async with http.post(hook, data=form_body(500000 + seq, None)) as r:
                    await r.read()
                    key = "ok" if r.status < 300 else "5xx" if r.status >= 500 else "other"
            except aiohttp.ClientError:
                key = "5xx"
            counts[key] += 1
            lat.append((time.perf_counter() - t0) * 1000)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=senders)) as http:
        await asyncio.gather(*(one(http) for _ in range(senders)))
    return {**counts, "p50_ms": round(pct(lat, 50), 1), "p99_ms": round(pct(lat, 99), 1)}


async def run_base(kind: str, tmp: Path, tag: str, sizes: Sizes, args: argparse.Namespace) -> dict:
    url = await fresh_db(kind, tmp, tag)
    try:
        await migrate_db(url)
        t0 = time.perf_counter()
        truth = await load(url, sizes)
        await seed_segments(url)
        load_s = time.perf_counter() - t0
        print(f"[{kind} {tag}] loaded {sizes} in {load_s:.0f} s {truth.load_phases}", flush=True)
        srv = start_hub(url)
        try:
            await wait_http(srv.base + "/healthz", 60)
            eps = await time_endpoints(srv, truth, args.requests)
            ingest = await intake(srv, truth, args.intake_seconds)
            c10 = None
            if kind == "sqlite" and tag == "large" and args.c10_seconds > 0:
                c10 = await concurrent_senders(srv, truth, 10, args.c10_seconds)
        finally:
            stop_process(srv.proc)
    finally:
        await drop_db(url)
    return {"load_s": load_s, "endpoints": eps, "ingest": ingest, "c10": c10}


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads) so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def c1_lead(kind: str, tmp: Path, seconds: float) -> dict[str, float]:
    """One submission at a time on an empty base (users and a form, no clients or
    leads), each answered only after its lead is committed: after every answer the
    leads list must hold one more lead (checked outside the timed part), so an answer
    that came before its lead (a timeout, a failed event) fails the run.  Returns the
    p50 latency and the hub's CPU per submission (from /proc; the hub is pinned to one
    core, this process to another, so the CPU figure is what one core spends)."""
    url = await fresh_db(kind, tmp, "empty")
    try:
        await migrate_db(url)
        truth = await load(url, Sizes(clients=0, interactions=0))
        srv = start_hub(url)
        try:
            await wait_http(srv.base + "/healthz", 60)
            hook = f"{srv.base}/hooks/forms/{truth.form_key}?secret={truth.form_secret}"
            leads = f"{srv.base}/api/v1/leads?limit=1"
            admin = {"Authorization": f"Bearer {truth.admin_token}"}
            lat: list[float] = []
            cpu = 0.0
            stop = time.perf_counter() + seconds
            i = 0
            async with aiohttp.ClientSession() as http:
                while time.perf_counter() < stop:
                    i += 1
                    body = form_body(900000 + i, None)
                    c0 = cpu_seconds(srv.proc.pid)
                    t0 = time.perf_counter()
                    async with http.post(hook, data=body) as r:
                        await r.read()
                        if r.status != 201:
                            raise BenchFailed(f"c1 form webhook: {r.status}")
                    t1 = time.perf_counter()
                    c1 = cpu_seconds(srv.proc.pid)
                    if i > 5:
                        lat.append((t1 - t0) * 1000)
                        cpu += c1 - c0
                    async with http.get(leads, headers=admin) as r:
                        total = (await r.json())["total"]
                    if total != i:
                        raise BenchFailed(f"c1: {i} submissions answered, {total} leads")
        finally:
            stop_process(srv.proc)
    finally:
        await drop_db(url)
    return {
        "p50_ms": round(statistics.median(lat), 2),
        "cpu_ms": round(cpu * 1000 / len(lat), 2),
        "n": len(lat),
    }


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=1.0, help="LARGE size factor (1 = full)")
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--intake-seconds", type=float, default=20)
    ap.add_argument("--c10-seconds", type=float, default=20)
    ap.add_argument("--only", choices=["sqlite", "pg"])
    args = ap.parse_args()
    small = Sizes(clients=2000, interactions=10000)
    large = Sizes(clients=int(200000 * args.scale), interactions=int(1000000 * args.scale))
    results: dict[str, dict[str, Any]] = {}
    figures: dict[str, Any] = {}
    worst: tuple[float, str] = (0.0, "")
    c10_5xx: Any = None
    c1: dict[str, float] = {}
    c1_cpu: dict[str, float] = {}
    load_times: dict[str, float] = {}
    if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, {0})  # the loader and the senders; the hub has core 1
    growth: list[float] = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for kind in ("pg", "sqlite"):
            if args.only and kind != args.only:
                continue
            s = await run_base(kind, tmp, "small", small, args)
            lg = await run_base(kind, tmp, "large", large, args)
            load_times[kind] = round(lg["load_s"], 1)
            results[kind] = {"small": s, "large": lg}
            rows = []
            lists: list[float] = []
            reports: list[float] = []
            for name, f in lg["endpoints"].items():
                sm = s["endpoints"].get(name, {})
                rows.append((name, sm.get("p50"), f["p50"], f["p95"]))
                (reports if ANALYTICS in name else lists).append(f["p95"])
                if f["p95"] > worst[0]:
                    worst = (f["p95"], f"{kind} {name}")
            print(f"\n[{kind}] endpoint | SMALL p50 | LARGE p50 | LARGE p95 (ms)")
            for r in rows:
                print(f"  {r[0]:<55} {r[1]!s:>8} {r[2]!s:>9} {r[3]!s:>9}")
            ms, ml = statistics.median(s["ingest"]), statistics.median(lg["ingest"])
            growth.append(ml / ms)
            print(f"[{kind}] intake median SMALL {ms:.1f} ms, LARGE {ml:.1f} ms: x{ml / ms:.2f}")
            figures[f"{kind}_worst_p95_ms"] = max(lists)
            figures[f"{kind}_analytics_worst_p95_ms"] = max(reports)
            if lg["c10"] is not None:
                print(f"[{kind}] 10 concurrent senders on LARGE: {lg['c10']}")
                c10_5xx = lg["c10"]["5xx"]
            one = await c1_lead(kind, tmp, max(5.0, args.intake_seconds / 2))
            c1[kind], c1_cpu[kind] = one["p50_ms"], one["cpu_ms"]
            print(f"[{kind}] one submission waiting for its lead, empty base: {one}")
    out = {
        "pg_worst_p95_ms": figures.get("pg_worst_p95_ms"),
        "sqlite_worst_p95_ms": figures.get("sqlite_worst_p95_ms"),
        "pg_analytics_worst_p95_ms": figures.get("pg_analytics_worst_p95_ms"),
        "sqlite_analytics_worst_p95_ms": figures.get("sqlite_analytics_worst_p95_ms"),
        "ingest_growth": round(max(growth), 2) if growth else None,
        "worst_endpoint": worst[1],
        "c10_errors_5xx": c10_5xx,
        "c1_lead_p50_ms": max(c1.values()) if c1 else None,
        "c1_lead_p50_ms_by_db": c1,
        "c1_lead_hub_cpu_ms_by_db": c1_cpu,
        "load_s": load_times,
        "scale": args.scale,
    }
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except BenchFailed as exc:
        print(json.dumps({"failed": str(exc)}, ensure_ascii=False))
        sys.exit(1)
