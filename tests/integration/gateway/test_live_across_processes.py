"""Live events across hub processes (PostgreSQL): three ``crmhub serve`` processes on
one database; the leader tracks a call from the PBX and the operator's caller card
arrives, once, on an SSE stream held by each of the three.  And the bridge itself: a
missed notification is caught up from the database, late commits are not lost, nothing
is delivered twice, and a new process does not replay the past."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
from sqlalchemy import insert

from crm_core.db import Database, migrate
from crm_core.live import LiveEvent, LiveHub
from crm_core.models import LiveEventRow, utcnow
from gateway.live_bridge import LiveBridge
from tests.conftest import PG_ADMIN_URL, _pg_admin
from tests.support.ami_server import AMIServer, load_transcript
from tests.support.ami_truth import AMI_FIXTURES
from tests.support.live_crmhub import Crmhub

CALL = AMI_FIXTURES / "a_inbound_answered.ami"


@pytest.fixture
def pg_db(pg_url: str) -> Iterator[str]:
    """A database of its own (the processes migrate it)."""
    name = f"crmhub_live_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    _pg_admin(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_ADMIN_URL.rpartition('/')[0]}/{name}"
    finally:
        _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class _Pbx:
    ami_port: int


async def _sse(base: str, token: str, got: list[tuple[str, dict[str, Any]]]) -> None:
    """Hold an operator's SSE stream on ``base`` and append every event to ``got``."""
    auth = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/api/v1/live/ticket", headers=auth, json={}) as r:
            ticket = (await r.json())["ticket"]
        async with http.get(
            f"{base}/live/sse", params={"ticket": ticket}, timeout=aiohttp.ClientTimeout(total=None)
        ) as r:
            assert r.status == 200
            kind = ""
            async for raw in r.content:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    got.append((kind, json.loads(line[6:])))


def _healthy(hub: Crmhub, limit_s: float = 60.0) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        assert hub.proc is not None and hub.proc.poll() is None, hub.tail()
        if hub.readyz() is not None:
            return
        time.sleep(0.2)
    raise AssertionError(f"crmhub did not answer: {hub.tail()}")


def _leaders(hubs: list[Crmhub]) -> list[Crmhub]:
    out = []
    for hub in hubs:
        body = hub.readyz() or {}
        if any(c.get("state") == "connected" for c in body.get("connectors", [])):
            out.append(hub)
    return out


async def test_caller_card_reaches_streams_on_every_process(pg_db: str, tmp_path: Path) -> None:
    async with AMIServer(speed=0.05) as srv:
        pbx = cast(Any, _Pbx(srv.port))
        hubs = [Crmhub(tmp_path / f"hub{i}", pg_db, pbx) for i in range(3)]
        anna = hubs[0].add_user("anna@example.ru", "manager", extension="101")
        streams: list[list[tuple[str, dict[str, Any]]]] = [[], [], []]
        readers: list[asyncio.Task[None]] = []
        try:
            for hub in hubs:
                hub.start(wait_connected=False)
            for hub in hubs:
                await asyncio.to_thread(_healthy, hub)
            deadline = time.monotonic() + 30
            while not _leaders(hubs):
                assert time.monotonic() < deadline, [h.tail() for h in hubs]
                await asyncio.sleep(0.2)
            assert len(_leaders(hubs)) == 1  # one process holds the AMI link
            for hub, got in zip(hubs, streams, strict=True):
                readers.append(asyncio.create_task(_sse(hub.base_url, anna.token, got)))
            deadline = time.monotonic() + 10
            while not all(any(k == "hello" for k, _ in got) for got in streams):
                assert time.monotonic() < deadline, streams
                await asyncio.sleep(0.05)
            srv.push(load_transcript(CALL))

            def cards(got: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
                return [d for k, d in got if k == "caller_card"]

            deadline = time.monotonic() + 30
            while not all(cards(got) for got in streams):
                assert time.monotonic() < deadline, (streams, [h.tail() for h in hubs])
                await asyncio.sleep(0.1)
            await asyncio.sleep(3)  # a second copy would arrive by now (poll is 2 s)
            for got in streams:
                (card,) = cards(got)
                assert card["payload"]["caller"] == "+74951234567"
        finally:
            for t in readers:
                t.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
            for hub in hubs:
                hub.stop()


@pytest.fixture
async def pg_database(pg_db: str) -> AsyncIterator[Database]:
    db = Database(pg_db)
    await migrate(db)
    try:
        yield db
    finally:
        await db.dispose()


async def test_bridge_catches_up_late_commits_once_and_skips_the_past(
    pg_database: Database,
) -> None:
    db = pg_database
    old = LiveHub()
    past = LiveBridge(db, old)
    await past.publish(LiveEvent(kind="task_reminder", payload={"n": 0}))  # before B started
    assert await past.write_pending() == 1  # the writer task's work, done here by hand

    a, b = LiveHub(), LiveHub()
    bridge_a, bridge_b = LiveBridge(db, a), LiveBridge(db, b)
    await bridge_a.start_position()
    await bridge_b.start_position()
    async with b.subscribe() as sub:
        # published while B was not listening (no pump running): fetched from the table
        await bridge_a.publish(LiveEvent(kind="caller_card", payload={"n": 1}, owner_id=7))
        assert await bridge_b.fetch() == 0  # queued: the publisher does not wait for it
        assert await bridge_a.write_pending() == 1
        assert await bridge_b.fetch() == 1
        first = await sub.next()
        assert (first.kind, dict(first.payload), first.owner_id) == ("caller_card", {"n": 1}, 7)
        assert await bridge_b.fetch() == 0  # never twice
        # a row with a lower id committed after a higher one was read: still delivered
        high = bridge_b.high
        async with db.engine.begin() as conn:
            for row_id in (high + 5, high + 3):
                await conn.execute(
                    insert(LiveEventRow).values(
                        id=row_id,
                        node="other",
                        kind="sla_warning",
                        payload={"id": row_id},
                        created_at=utcnow(),
                    )
                )
                if row_id == high + 5:
                    assert await bridge_b.fetch() == 0  # not committed yet
        assert await bridge_b.fetch() == 2
        got = [(await sub.next()).payload["id"] for _ in range(2)]
        assert sorted(got) == [high + 3, high + 5]
        assert await bridge_b.fetch() == 0
        # its own events are not delivered again from the table
        assert await bridge_a.fetch() == 2  # A sees the two "other" rows, not its own
        assert sub.queue.empty()
    assert past.delivered == 0 and bridge_b.delivered == 3


MISSED = AMI_FIXTURES / "b_inbound_missed_noanswer.ami"


async def _until(cond: Any, limit_s: float = 30.0) -> None:
    deadline = time.monotonic() + limit_s
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


async def _callbacks(db_url: str) -> int:
    from sqlalchemy import func, select

    from crm_core.models import Task

    db = Database(db_url)
    try:
        async with db.sessions() as s:
            n = await s.scalar(
                select(func.count()).select_from(Task).where(Task.kind == "call_back")
            )
            return int(n or 0)
    finally:
        await db.dispose()


async def _call_rows(db_url: str) -> list[tuple[str, str]]:
    """(kind, linkedid) of every call interaction on the timeline."""
    from sqlalchemy import select

    from crm_core.models import Interaction

    db = Database(db_url)
    try:
        async with db.sessions() as s:
            rows = await s.execute(
                select(Interaction.kind, Interaction.meta).where(Interaction.channel == "call")
            )
            return [(r.kind, str((r.meta or {}).get("linkedid"))) for r in rows]
    finally:
        await db.dispose()


async def test_leader_killed_mid_call_another_takes_over_and_nothing_is_lost_or_doubled(
    pg_db: str, tmp_path: Path
) -> None:
    """kill -9 the process holding the AMI link while a call rings: another process takes
    the link within 10 s, adopts the ringing call, and every call is logged exactly once."""
    async with AMIServer(speed=0.02) as srv:
        pbx = cast(Any, _Pbx(srv.port))
        hubs = [Crmhub(tmp_path / f"hub{i}", pg_db, pbx) for i in range(3)]
        hubs[0].add_user("anna@example.ru", "manager", extension="101")
        try:
            for hub in hubs:
                hub.start(wait_connected=False)
            for hub in hubs:
                await asyncio.to_thread(_healthy, hub)
            deadline = time.monotonic() + 30
            while not _leaders(hubs):
                assert time.monotonic() < deadline, [h.tail() for h in hubs]
                await asyncio.sleep(0.2)
            (leader,) = _leaders(hubs)
            assert leader.proc is not None
            status = await asyncio.to_thread(hubs[1].cli, "status")
            (conn,) = status["connectors"]
            assert conn["leader"].endswith(f"pid {leader.proc.pid}"), status
            assert len(status["processes"]) == 3

            # a whole call before the failover
            srv.push(load_transcript(CALL))
            deadline = time.monotonic() + 30
            while [k for k, _ in await _call_rows(pg_db)].count("call_ended") < 1:
                assert time.monotonic() < deadline, leader.tail()
                await asyncio.sleep(0.2)
            # a second call starts ringing, then the leader dies
            missed = load_transcript(MISSED)
            ring = next(i for i, (_, m) in enumerate(missed) if m["Event"] == "DialBegin")
            srv.push(missed[: ring + 1])
            await _until(lambda: srv.finished)
            await asyncio.sleep(1.0)  # the leader has seen the ring
            leader.kill9()
            killed = time.monotonic()
            rest = [h for h in hubs if h is not leader]
            while not _leaders(rest):
                assert time.monotonic() - killed < 10, [h.tail() for h in rest]
                await asyncio.sleep(0.1)
            print(f"failover took {time.monotonic() - killed:.1f} s")
            (new_leader,) = _leaders(rest)
            # the call ends after the failover
            srv.push(missed[ring + 1 :])
            deadline = time.monotonic() + 40
            while len([k for k, _ in await _call_rows(pg_db) if k == "call_ended"]) < 2:
                assert time.monotonic() < deadline, (await _call_rows(pg_db), new_leader.tail())
                await asyncio.sleep(0.3)
            await asyncio.sleep(3)  # a duplicate would show by now
            calls = await _call_rows(pg_db)
            ended = [lid for k, lid in calls if k == "call_ended"]
            assert len(ended) == 2 and len(set(ended)) == 2, calls
            assert await _callbacks(pg_db) == 1  # the missed call: one "call back" task
            status = await asyncio.to_thread(new_leader.cli, "status")
            assert new_leader.proc is not None
            assert status["connectors"][0]["leader"].endswith(f"pid {new_leader.proc.pid}")
        finally:
            for hub in hubs:
                hub.stop()
