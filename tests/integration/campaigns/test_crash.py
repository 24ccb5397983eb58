"""kill -9 a process in the middle of a campaign, restart it: nobody gets two, everybody
gets one, except those whose SMTP transaction was in flight (at most the concurrency),
which are ``unknown`` and are not resent."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

from sqlalchemy import func, select

from crm_core.access import Actor
from crm_core.db import Database, migrate
from crm_core.models import CampaignRecipient, OutboxCommand
from crm_core.services import campaigns as svc
from tests.support.api import seed_team
from tests.support.smtp_sink import SmtpSink

from .conftest import seed_clients

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
N = 400
CONCURRENCY = 4


def spawn(url: str, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.campaign_sender", url, str(port), str(CONCURRENCY)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


async def test_kill_9_mid_campaign_nobody_gets_two(db_url: str) -> None:
    db = Database(db_url)
    await migrate(db)
    sink = SmtpSink(delay=0.02).start()
    try:
        users, _ = await seed_team(db)
        emails: list[str | None] = [f"r{i}@example.ru" for i in range(N)]
        ids, _ = await seed_clients(db, users["a1"].id, emails)
        admin = Actor.of(users["admin"])
        policy = svc.CampaignPolicy()
        async with db.transaction() as s:
            c = await svc.create_campaign(
                s,
                admin,
                policy,
                {
                    "name": "crash",
                    "client_ids": ids,
                    "subject": "Hi {{ client.name }}",
                    "text": "x",
                },
            )
            cid = c.id
        async with db.transaction() as s:
            await svc.start(s, admin, policy, cid)

        proc = spawn(db_url, sink.port)
        deadline = time.monotonic() + 60
        while len(sink.handler.received) < N // 4:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
            assert time.monotonic() < deadline, "the sender made no progress"
            await asyncio.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        at_kill = len(sink.handler.received)
        assert at_kill < N, "the campaign ended before the kill: make it slower"

        proc = spawn(db_url, sink.port)
        try:
            proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, proc.stderr.read() if proc.stderr else b""

        got = sink.handler.count_by_rcpt()
        assert max(got.values()) == 1, "somebody got two"
        async with db.sessions() as s:
            rows = list(
                await s.scalars(
                    select(CampaignRecipient).where(CampaignRecipient.campaign_id == cid)
                )
            )
            outbox = dict(
                (
                    await s.execute(
                        select(OutboxCommand.status, func.count()).group_by(OutboxCommand.status)
                    )
                ).all()
            )
        by_status: dict[str, list[CampaignRecipient]] = {}
        for r in rows:
            by_status.setdefault(r.status, []).append(r)
        assert set(by_status) <= {"sent", "unknown"}, {k: len(v) for k, v in by_status.items()}
        unknown = by_status.get("unknown", [])
        # the kill hit SMTP transactions in flight (the sink holds each DATA for 20 ms)
        assert 1 <= len(unknown) <= CONCURRENCY
        for r in by_status["sent"]:
            assert got.get(r.email) == 1
        for r in unknown:
            assert got.get(r.email, 0) <= 1  # maybe delivered, never resent
            assert r.error and "check before resending" in r.error
        assert len(rows) == N
        assert sum(got.values()) == len(by_status["sent"]) + sum(
            got.get(r.email, 0) for r in unknown
        )
        assert outbox.get("sent") == len(by_status["sent"])
        assert outbox.get("unknown", 0) == len(unknown)
    finally:
        sink.stop()
        await db.dispose()
