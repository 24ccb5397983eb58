"""Benchmark: sign-in latency against the running app (``crmhub serve`` in a subprocess).

Creates a SQLite database with one user and a password, starts the server on a free
port, then signs in N times in a row (``POST /api/v1/auth/login``) and prints the p50,
p90 and max in milliseconds with the argon2 parameters, as one JSON object.  Each
sign-in verifies one argon2id hash (crm_core/services/auth.py ``ARGON2``) and writes a
session and an audit entry.  The rate limit does not interfere: every sign-in succeeds.

    .venv/bin/python bench/sign_in.py [--runs 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PASSWORD = "Benchmark-Sign-In-2026"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _prepare(url: str) -> None:
    from sqlalchemy import update

    from crm_core.db import Database, migrate
    from crm_core.models import User
    from crm_core.services.auth import hash_password
    from crm_core.services.users import invite_user

    db = Database(url)
    await migrate(db)
    async with db.transaction() as s:
        user = await invite_user(s, "bench@example.ru", "manager", name="Bench")
        await s.execute(
            update(User).where(User.id == user.id).values(password_hash=hash_password(PASSWORD))
        )
    await db.dispose()


async def _run(base: str, runs: int) -> list[float]:
    times: list[float] = []
    async with aiohttp.ClientSession() as http:
        for _ in range(480):  # wait for the server (2 minutes at most)
            try:
                async with http.get(f"{base}/healthz") as r:
                    if r.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.25)
        else:
            raise SystemExit("the server did not start within 2 minutes")
        body = {"email": "bench@example.ru", "password": PASSWORD}
        for _ in range(runs + 3):
            http.cookie_jar.clear()
            t = time.perf_counter()
            async with http.post(f"{base}/api/v1/auth/login", json=body) as r:
                await r.read()
                assert r.status == 200, r.status
            times.append((time.perf_counter() - t) * 1000)
    return times[3:]  # the first ones warm up (imports, the dummy hash)


def main() -> None:
    from crm_core.services.auth import ARGON2

    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=50)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/bench.db"
        asyncio.run(_prepare(url))
        port = _free_port()
        env = {
            **os.environ,
            "CRMHUB_DATABASE_URL": url,
            "CRMHUB_ROUTING_RULES_PATH": "",
            "CRMHUB_LOG_LEVEL": "WARNING",
            "CRMHUB_ATTACHMENTS_DIR": f"{tmp}/att",
        }
        server = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--port", str(port)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            times = asyncio.run(_run(f"http://127.0.0.1:{port}", args.runs))
        finally:
            server.terminate()
            server.wait(30)
    q = statistics.quantiles(times, n=10)
    print(
        json.dumps(
            {
                "sign_in_ms": {
                    "p50": round(statistics.median(times), 1),
                    "p90": round(q[8], 1),
                    "max": round(max(times), 1),
                    "runs": len(times),
                },
                "argon2id": ARGON2,
                "cpus": os.cpu_count(),
                "load_average": os.getloadavg()[0],
            }
        )
    )


if __name__ == "__main__":
    main()
