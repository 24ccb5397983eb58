"""A small closed-loop HTTP load generator shared by the benchmarks (loopback only)."""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

__all__ = ["LoadResult", "free_port", "run_load", "start_process", "stop_process", "wait_http"]


@dataclass
class LoadResult:
    requests: int
    ok: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def pct(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, round(p / 100 * (len(data) - 1)))]

    def summary(self) -> dict[str, float]:
        return {
            "rps": round(self.rps, 1),
            "p50_ms": round(self.pct(50), 2),
            "p99_ms": round(self.pct(99), 2),
            "ok": self.ok,
            "errors": self.errors,
            "mean_ms": round(statistics.fmean(self.latencies_ms), 2) if self.latencies_ms else 0,
        }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_process(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


async def wait_http(url: str, wait_s: float = 30) -> None:
    deadline = time.monotonic() + wait_s
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < deadline:
            try:
                async with s.get(url) as r:
                    if r.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


async def run_load(
    url: str,
    make_body: Callable[[int], dict[str, str]],
    *,
    concurrency: int = 50,
    seconds: float = 5.0,
    warmup: float = 1.0,
) -> LoadResult:
    counter = 0
    latencies: list[float] = []
    ok = errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.perf_counter()
        measure_from = start + warmup
        stop_at = measure_from + seconds

        async def worker() -> None:
            nonlocal counter, ok, errors
            while True:
                now = time.perf_counter()
                if now >= stop_at:
                    return
                counter += 1
                body = make_body(counter)
                t0 = time.perf_counter()
                try:
                    async with session.post(url, data=body) as r:
                        await r.read()
                        good = 200 <= r.status < 300
                except aiohttp.ClientError:
                    good = False
                t1 = time.perf_counter()
                if t0 >= measure_from and t1 <= stop_at:
                    if good:
                        ok += 1
                        latencies.append((t1 - t0) * 1000)
                    else:
                        errors += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return LoadResult(ok + errors, ok, errors, seconds, latencies)


PG_ADMIN = os.environ.get("CRMHUB_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


async def pg_exec(sql: str) -> None:
    """One statement on the PostgreSQL admin database."""
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def fresh_db(kind: str, tmp: Path, tag: str, prefix: str = "crmhub_bench") -> str:
    """The URL of a new empty database: a file in ``tmp``, or a new PostgreSQL database."""
    if kind == "sqlite":
        return f"sqlite+aiosqlite:///{tmp / (tag + '.db')}"
    name = f"{prefix}_{tag}_{uuid.uuid4().hex[:6]}"
    await pg_exec(f'CREATE DATABASE "{name}"')
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


async def drop_db(url: str) -> None:
    """Drop a database made by :func:`fresh_db` (a SQLite file stays in its temp dir)."""
    if url.startswith("postgresql"):
        await pg_exec(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
