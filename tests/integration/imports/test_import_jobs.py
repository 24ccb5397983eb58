"""Import jobs survive a crash: ``crmhub serve`` killed (SIGKILL) in the middle of an
import resumes it after a restart from the last committed row, and the base ends with
each row once; two hubs never run the same job (lease, FOR UPDATE SKIP LOCKED on PG)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import func, select, update

from crm_core.db import Database
from crm_core.imports.errors import ImportFileError
from crm_core.imports.read import read_clients
from crm_core.imports.table import Limits
from crm_core.models import Client, ContactPoint, ImportBatch, utcnow
from crm_core.services.imports import (
    JobLost,
    claim_import_job,
    queue_import_job,
    run_import_job,
    undo_import,
)
from tests.support.app import add_user
from tests.support.dovecot import free_port

ROOT = Path(__file__).resolve().parents[3]
LIMIT = 120.0  # liveness bound, not a timing assertion
ROWS = 12_000


def _csv(path: Path, rows: int) -> Path:
    lines = ["Наименование;Телефон;E-mail"]
    lines += [f"Клиент {i};+7916{i:07d};c{i}@example.ru" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _config(db_url: str, port: int, tmp_path: Path) -> Path:
    top = {
        "database_url": db_url,
        "host": "127.0.0.1",
        "port": port,
        "log_format": "json",
        "routing_rules_path": "",
        "attachments_dir": str(tmp_path / "data" / "attachments"),
        "sla_poll_seconds": 0,
        "poll_interval": 0.1,
        "import_lease_seconds": 1.0,
    }
    path = tmp_path / "crmhub.toml"
    path.write_text("\n".join(f"{k} = {json.dumps(v)}" for k, v in top.items()) + "\n")
    return path


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


async def _serve(config: Path, port: int, log: Path) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRMHUB_")}
    with log.open("ab") as fh:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway.cli",
            "--config",
            str(config),
            "serve",
            cwd=str(ROOT),
            env=env,
            stdout=fh,
            stderr=fh,
        )
    loop = asyncio.get_running_loop()
    end = loop.time() + LIMIT
    async with aiohttp.ClientSession() as http:
        while loop.time() < end:
            assert proc.returncode is None, _tail(log)
            try:
                async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                    if r.status == 200:
                        return proc
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("crmhub serve did not become healthy")


async def _state(db: Database, batch_id: int) -> tuple[str, int, int]:
    async with db.sessions() as s:
        batch = await s.get(ImportBatch, batch_id)
        assert batch is not None
        clients = int(await s.scalar(select(func.count()).select_from(Client)) or 0)
        return batch.status, batch.done_row, clients


async def test_a_killed_hub_resumes_the_import_from_the_last_committed_row(
    db_url: str, tmp_path: Path
) -> None:
    _, token = await add_user(db_url, "boss@example.ru", "admin")
    port = free_port()
    config = _config(db_url, port, tmp_path)
    log = tmp_path / "crmhub.log"
    path = _csv(tmp_path / "big.csv", ROWS)
    db = Database(db_url)
    auth = {"Authorization": f"Bearer {token}"}
    base = f"http://127.0.0.1:{port}/api/v1"
    proc = await _serve(config, port, log)
    try:
        async with aiohttp.ClientSession() as http:
            form = aiohttp.FormData()
            form.add_field("file", path.read_bytes(), filename="big.csv")
            async with http.post(f"{base}/imports", data=form, headers=auth) as r:
                assert r.status == 202, await r.text()
                batch_id = (await r.json())["id"]
        loop = asyncio.get_running_loop()
        end = loop.time() + LIMIT
        while loop.time() < end:  # the first chunks committed, not the last
            status, done_row, _ = await _state(db, batch_id)
            if done_row > 0 or status not in ("running", "queued"):
                break
            await asyncio.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
        status, done_row, clients = await _state(db, batch_id)
        assert status == "running", "the import finished before the kill: make it bigger"
        assert 0 < done_row < ROWS + 1
        assert clients == done_row - 1  # each chunk is all in or all out
        stored = list((tmp_path / "data" / "imports").iterdir())
        assert len(stored) == 1  # the upload is kept until the job ends

        proc = await _serve(config, port, log)
        end = loop.time() + LIMIT
        while loop.time() < end:
            status, done_row, clients = await _state(db, batch_id)
            if status not in ("queued", "running"):
                break
            await asyncio.sleep(0.1)
        assert status == "done", _tail(log)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/imports/{batch_id}", headers=auth) as r:
                job = await r.json()
        report = job["report"]
        assert (report["rows"], report["created"], report["errors"]) == (ROWS, ROWS, [])
        async with db.sessions() as s:
            assert await s.scalar(select(func.count()).select_from(Client)) == ROWS
            points = await s.scalar(select(func.count()).select_from(ContactPoint))
            assert points == 2 * ROWS
        assert not list((tmp_path / "data" / "imports").iterdir())
        # Undo takes back the rows of both runs.
        result = await undo_import(db, batch_id)
        assert result["removed_clients"] == ROWS
        assert (await _state(db, batch_id))[2] == 0
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        await db.dispose()


async def test_one_job_one_hub_and_a_lost_lease_stops_the_old_runner(
    db: Database, tmp_path: Path
) -> None:
    path = _csv(tmp_path / "small.csv", 30)
    batch_id = await queue_import_job(
        db, file_name="small.csv", path=str(path), user_id=None, params={}
    )
    lease = timedelta(seconds=60)
    first = await claim_import_job(db, "hub-a", lease)
    assert first is not None and first.id == batch_id
    assert await claim_import_job(db, "hub-b", lease) is None  # leased by hub-a
    async with db.transaction() as s:  # hub-a died: its lease runs out
        await s.execute(update(ImportBatch).values(lease_until=utcnow() - timedelta(seconds=1)))
    second = await claim_import_job(db, "hub-b", lease)
    assert second is not None and second.lease_owner == "hub-b"
    # hub-a wakes up: its job is not its own any more, it writes nothing.
    with pytest.raises(JobLost):
        await run_import_job(db, first, read_clients(path), owner="hub-a", lease=lease)
    async with db.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(Client)) == 0
    report = await run_import_job(db, second, read_clients(path), owner="hub-b", lease=lease)
    assert report.created == 30
    async with db.sessions() as s:
        batch = await s.get(ImportBatch, batch_id)
        assert batch is not None and (batch.status, batch.done_row) == ("done", 31)


async def test_a_file_error_midway_takes_back_what_the_job_wrote(
    db: Database, tmp_path: Path
) -> None:
    path = _csv(tmp_path / "long.csv", 1600)
    batch_id = await queue_import_job(
        db, file_name="long.csv", path=str(path), user_id=None, params={}
    )
    lease = timedelta(seconds=60)
    job = await claim_import_job(db, "hub-a", lease)
    assert job is not None and job.id == batch_id
    sheet = read_clients(path, limits=Limits(max_rows=1500))  # the header is fine
    with pytest.raises(ImportFileError, match="more than 1500 rows"):
        await run_import_job(db, job, sheet, owner="hub-a", lease=lease)
    async with db.sessions() as s:
        batch = await s.get(ImportBatch, batch_id)
        assert batch is not None and batch.done_row > 0  # a chunk had been committed
        assert await s.scalar(select(func.count()).select_from(Client)) == 0
        assert await s.scalar(select(func.count()).select_from(ContactPoint)) == 0
