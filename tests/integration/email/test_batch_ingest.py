"""The hub's batch path (``Hub.ingest_batch``: inbox rows and processing in one
transaction per slice) against the per-message path (``hub(event)``: inbox first, the
worker after), on the recorded fixtures, SQLite and PostgreSQL; and a crash in the middle
of a batch, which must neither lose nor duplicate anything."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

import crm_core.pipeline.worker as worker_mod
from connectors.email import ImapMailbox
from connectors.email.normalize import parse_message
from crm_core.db import Database, migrate
from crm_core.events import InboundEvent
from crm_core.hub import Hub
from crm_core.models import (
    AttachmentRow,
    Client,
    ContactPoint,
    InboxEvent,
    Interaction,
    Lead,
    Task,
    User,
)
from crm_core.pipeline.process import PipelineConfig
from crm_core.ports import ConnectorHealth, IngestReceipt
from tests.conftest import _reset_pg
from tests.integration.email.conftest import MemoryState, settings_for, wait_until
from tests.support.dovecot import DovecotServer, fixture_messages, unique_messages

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "email"
OWN = frozenset({"sales@crm.example", "manager1@crm.example"})


def _events() -> list[InboundEvent]:
    """Every fixture as recorded (so the thread fixtures thread), then the set again
    with fresh Message-IDs (known senders: matched, not new leads), parsed as the
    connector does."""
    raws = [raw for _, raw in fixture_messages(FIXTURES)]
    raws += [raw for _, raw in unique_messages(FIXTURES, 60, "again")]
    return [parse_message(raw, mailbox="sales", own_addresses=OWN) for raw in raws]


async def _seed(db: Database) -> None:
    """Two managers (round robin) and a known client owning one of the senders."""
    async with db.transaction() as s:
        a = User(email="m1@crm.example", name="M1", role="manager", token_hash="t1")
        b = User(email="m2@crm.example", name="M2", role="manager", token_hash="t2")
        s.add_all([a, b])
        await s.flush()
        client = Client(name="Known client", kind="company", owner_id=b.id)
        s.add(client)
        await s.flush()
        s.add(ContactPoint(kind="email", value="client@client.example", client_id=client.id))


async def _snapshot(db: Database) -> dict[str, Any]:
    """The CRM's state, with row ids replaced by the Message-ID of the event behind them."""
    async with db.sessions() as s:
        inbox = {r.id: r for r in await s.scalars(select(InboxEvent))}
        ext = {i: r.external_id for i, r in inbox.items()}
        leads = {r.id: r for r in await s.scalars(select(Lead))}
        lead_key = {i: ext.get(r.first_event_id or -1) for i, r in leads.items()}
        inters = {r.id: r for r in await s.scalars(select(Interaction))}
        inter_key = {i: ext.get(r.event_id or -1) for i, r in inters.items()}
        users = {r.id: r.email for r in await s.scalars(select(User))}
        return {
            "inbox": sorted(
                (
                    r.external_id,
                    r.status,
                    r.attempts,
                    lead_key.get(r.lead_id),
                    r.client_id is not None,
                    inter_key.get(r.interaction_id),
                )
                for r in inbox.values()
            ),
            "interactions": sorted(
                (
                    inter_key[i],
                    r.channel,
                    r.direction,
                    r.kind,
                    r.classification,
                    r.subject,
                    r.body,
                    r.html,
                    r.thread_id,
                    r.message_key,
                    lead_key.get(r.lead_id),
                    r.client_id is not None,
                    r.occurred_at.isoformat(),
                )
                for i, r in inters.items()
            ),
            "leads": sorted(
                (
                    lead_key[i],
                    r.status,
                    r.source,
                    r.title,
                    r.name,
                    users.get(r.owner_id),
                    r.queue,
                    r.needs_review,
                    r.assign_reason,
                    r.client_id is not None,
                )
                for i, r in leads.items()
            ),
            "points": sorted(
                (
                    r.kind,
                    r.value,
                    lead_key.get(r.lead_id),
                    r.client_id is not None,
                    r.unreachable,
                    r.unreachable_reason,
                )
                for r in await s.scalars(select(ContactPoint))
            ),
            "attachments": sorted(
                (inter_key[r.interaction_id], r.filename, r.content_type, r.size, r.sha256)
                for r in await s.scalars(select(AttachmentRow))
            ),
            "tasks": sorted(
                (r.kind, r.status, lead_key.get(r.lead_id), users.get(r.assignee_id))
                for r in await s.scalars(select(Task))
            ),
            "last_contact": sorted(str(r.last_contact_at) for r in await s.scalars(select(Client))),
        }


async def _fresh(db: Database, tmp_path: Path, name: str) -> Database:
    if db.is_postgres:
        await _reset_pg(db)
        return db
    other = Database(f"sqlite+aiosqlite:///{tmp_path / name}")
    await migrate(other)
    return other


async def _run_hub(
    db: Database, tmp_path: Path, body: Callable[[Hub], Awaitable[None]], **kw: Any
) -> Hub:
    hub = Hub(db, cfg=PipelineConfig(attachments_dir=str(tmp_path / "att")), **kw)
    await hub.start()
    try:
        await body(hub)
        assert await hub.drain(120)
    finally:
        await hub.stop()
    return hub


async def _counts(db: Database) -> tuple[int, int, int, int]:
    async with db.sessions() as s:
        rows = await s.scalar(select(func.count()).select_from(InboxEvent))
        done = await s.scalar(
            select(func.count()).select_from(InboxEvent).where(InboxEvent.status == "processed")
        )
        inters = await s.scalar(select(func.count()).select_from(Interaction))
        keys = await s.scalar(select(func.count(func.distinct(Interaction.message_key))))
    return int(rows or 0), int(done or 0), int(inters or 0), int(keys or 0)


async def test_batch_path_gives_what_the_per_message_path_gives(
    db: Database, tmp_path: Path
) -> None:
    events = _events()
    await _seed(db)

    dup_each: list[bool] = []
    dup_batch: list[bool] = []

    async def one_by_one(hub: Hub) -> None:
        for ev in events:
            dup_each.append((await hub(ev)).duplicate)

    await _run_hub(db, tmp_path, one_by_one, poll_interval=0.05)
    expected = await _snapshot(db)

    other = await _fresh(db, tmp_path, "batch.db")
    try:
        await _seed(other)
        fell_back: list[int] = []

        async def in_batches(hub: Hub) -> None:
            hub.lean_batch = 16  # several slices, each its own transaction
            original = hub.processor.persist_and_process

            async def watched(part: Any) -> Any:
                done = await original(part)
                if done is None:
                    fell_back.append(len(part))
                return done

            hub.processor.persist_and_process = watched  # type: ignore[method-assign]
            for i in range(0, len(events), 40):
                receipts = await hub.ingest_batch(events[i : i + 40])
                dup_batch.extend(r.duplicate for r in receipts)

        hub = await _run_hub(other, tmp_path, in_batches, poll_interval=0.05)
        got = await _snapshot(other)
    finally:
        if other is not db:
            await other.dispose()
    assert fell_back == []  # the lean path did the work, not the fallback
    assert dup_batch == dup_each  # fixtures sharing a Message-ID are duplicates on both
    assert hub.processor.stats.processed == len(events) - sum(dup_batch)
    for part in expected:
        assert got[part] == expected[part], part
    # the fixtures did exercise what the comparison is about
    inters = expected["interactions"]
    assert {row[4] for row in inters} >= {"bounce", "auto_reply", "regular"}
    assert any(row[2] == "out" for row in inters)
    threads = [row[8] for row in inters if row[0].endswith("@client.example")]
    assert len(threads) >= 3 and len(set(threads)) < len(threads)  # a thread was joined
    assert expected["attachments"]
    assert any(row[3] for row in expected["leads"]) or expected["leads"]


async def test_duplicates_in_and_across_batches_are_answered_not_written(
    db: Database, tmp_path: Path
) -> None:
    events = [
        parse_message(raw, mailbox="sales", own_addresses=OWN)
        for _, raw in unique_messages(FIXTURES, 30, "dup")
    ]

    async def twice(hub: Hub) -> None:
        first = await hub.ingest_batch(events + events[:5])
        assert [r.duplicate for r in first] == [False] * 30 + [True] * 5
        assert first[30].event_id == first[0].event_id
        again = await hub.ingest_batch(events)
        assert all(r.duplicate for r in again)
        assert [r.event_id for r in again] == [r.event_id for r in first[:30]]
        assert [r.interaction_id for r in again] == [r.interaction_id for r in first[:30]]

    await _run_hub(db, tmp_path, twice)
    rows, done, inters, _ = await _counts(db)
    assert (rows, done, inters) == (30, 30, 30)


class Crash(BaseException):
    """The process dying: not an ``Exception``, so nothing on the way catches it."""


async def test_crash_mid_batch_neither_loses_nor_duplicates(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = [
        parse_message(raw, mailbox="sales", own_addresses=OWN)
        for _, raw in unique_messages(FIXTURES, 90, "crash")
    ]
    real = worker_mod.process_event
    seen: list[int] = []

    async def dying(s: Any, event: InboundEvent, *args: Any, **kw: Any) -> Any:
        seen.append(1)
        if len(seen) == 50:  # the 20th event of the second slice of 30
            raise Crash
        return await real(s, event, *args, **kw)

    monkeypatch.setattr(worker_mod, "process_event", dying)

    async def crashing(hub: Hub) -> None:
        hub.lean_batch = 30
        with pytest.raises(Crash):
            await hub.ingest_batch(events)

    hub = Hub(db, cfg=PipelineConfig(attachments_dir=str(tmp_path / "att")))
    await hub.start()
    try:
        await crashing(hub)
    finally:
        await hub.stop()
    # the first slice committed; the slice that died left nothing behind
    rows, done, inters, keys = await _counts(db)
    assert (rows, done, inters, keys) == (30, 30, 30, 30)

    monkeypatch.setattr(worker_mod, "process_event", real)
    # restarted: the connector did not move its watermark, so it hands the batch again

    async def again(hub: Hub) -> None:
        receipts = await hub.ingest_batch(events)
        assert [r.duplicate for r in receipts] == [True] * 30 + [False] * 60

    await _run_hub(db, tmp_path, again)
    assert await _counts(db) == (90, 90, 90, 90)


async def test_a_failing_event_sends_its_slice_down_the_per_message_path(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An event that raises: the slice rolls back, goes to the inbox as usual, and the
    worker processes the others and records that one as failed (nothing lost)."""
    events = [
        parse_message(raw, mailbox="sales", own_addresses=OWN)
        for _, raw in unique_messages(FIXTURES, 20, "fail")
    ]
    bad = events[7].external_id
    real = worker_mod.process_event
    import crm_core.pipeline.worker as w

    async def picky(s: Any, event: InboundEvent, *args: Any, **kw: Any) -> Any:
        if event.external_id == bad:
            raise RuntimeError("this one breaks")
        return await real(s, event, *args, **kw)

    monkeypatch.setattr(w, "process_event", picky)

    async def body(hub: Hub) -> None:
        receipts = await hub.ingest_batch(events)
        assert {r.status for r in receipts} == {"pending"}
        await wait_until(lambda: hub.processor.stats.processed == 19, 60)
        await asyncio.sleep(0.1)

    hub = await _run_hub(db, tmp_path, body, poll_interval=0.05)
    assert hub.processor.stats.failed >= 1
    async with db.sessions() as s:
        statuses = dict((r.external_id, r.status) for r in await s.scalars(select(InboxEvent)))
    assert len(statuses) == 20
    assert statuses.pop(bad) == "failed"
    assert set(statuses.values()) == {"processed"}


class HubBatches:
    """The hub as the gateway hands it to connectors (``Ingest`` + ``ingest_batch``);
    ``die_on`` makes one ``ingest_batch`` call commit half its batch and then die."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.calls = 0
        self.die_on: int | None = None
        self.died = asyncio.Event()

    async def __call__(self, event: InboundEvent, *, wait: bool = False) -> IngestReceipt:
        return await self.hub(event, wait=wait)

    async def ingest_batch(self, events: list[InboundEvent]) -> list[IngestReceipt]:
        self.calls += 1
        if self.calls == self.die_on:
            await self.hub.ingest_batch(events[: len(events) // 2])
            self.died.set()
            await asyncio.Event().wait()  # hangs until the task is cancelled (killed)
        return await self.hub.ingest_batch(events)


async def test_mailbox_killed_mid_batch_resumes_without_loss_or_double(
    db: Database, tmp_path: Path, dovecot: DovecotServer, user: str
) -> None:
    """A real Dovecot mailbox through the real hub: the process dies while a batch is
    half committed; the stored UID watermark had not moved past it, so the restarted
    connector fetches it again and the inbox answers the committed half as duplicates."""
    msgs = unique_messages(FIXTURES, 130, "kill")
    dovecot.append_many(user, [raw for _, raw in msgs])
    hub = Hub(db, cfg=PipelineConfig(attachments_dir=str(tmp_path / "att")))
    await hub.start()
    state = MemoryState()
    try:
        ingest = HubBatches(hub)
        ingest.die_on = 2
        box = settings_for(dovecot, user, batch_size=50)
        mb = ImapMailbox(box, ingest, state, ConnectorHealth(name=box.name, channel="email"))
        task = asyncio.create_task(mb.run())
        await asyncio.wait_for(ingest.died.wait(), 60)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        saved = next(iter(state.data.values()))
        assert saved["last_uid"] == 50  # the first batch only: committed before it moved
        assert (await _counts(db))[:3] == (75, 75, 75)

        again = HubBatches(hub)
        mb2 = ImapMailbox(box, again, state, ConnectorHealth(name=box.name, channel="email"))
        task2 = asyncio.create_task(mb2.run())
        try:
            await asyncio.wait_for(mb2.synced.wait(), 60)
        finally:
            task2.cancel()
            await asyncio.gather(task2, return_exceptions=True)
        assert mb2.stats.duplicates == 25
        assert await hub.drain(60)
    finally:
        await hub.stop()
    assert await _counts(db) == (130, 130, 130, 130)
    async with db.sessions() as s:
        ids = set(await s.scalars(select(InboxEvent.external_id)))
    assert ids == {m for m, _ in msgs}


async def test_mailbox_batches_parsed_in_workers_with_a_broken_message(
    db: Database, tmp_path: Path, dovecot: DovecotServer, user: str
) -> None:
    """The batch path with ``parse_workers``: parsed in a worker process, one call per
    batch; a message that is no mail at all is kept raw and marked failed, the others are
    on the timeline."""
    msgs = unique_messages(FIXTURES, 9, "workers")
    junk = b"no header here at all\r\n\r\njust words\r\n"
    raws = [raw for _, raw in msgs]
    dovecot.append_many(user, [*raws[:4], junk, *raws[4:]])
    hub = Hub(db, cfg=PipelineConfig(attachments_dir=str(tmp_path / "att")), poll_interval=0.05)
    await hub.start()
    try:
        ingest = HubBatches(hub)
        box = settings_for(dovecot, user, batch_size=4, parse_workers=1)
        mb = ImapMailbox(
            box, ingest, MemoryState(), ConnectorHealth(name=box.name, channel="email")
        )
        task = asyncio.create_task(mb.run())
        try:
            await asyncio.wait_for(mb.synced.wait(), 60)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert ingest.calls == 3  # 10 messages in batches of 4
        assert mb.stats.parse_failures == 1 and mb.stats.failed_uids == [("INBOX", 5)]
        await wait_until(lambda: hub.processor.stats.failed >= 1, 30)  # then retried
    finally:
        await hub.stop()
    async with db.sessions() as s:
        rows = {r.external_id: r for r in await s.scalars(select(InboxEvent))}
    assert len(rows) == 10
    failed = [r for r in rows.values() if r.status == "failed"]
    assert len(failed) == 1 and failed[0].external_id.startswith("sha256:")
    assert "parse_error" in str(failed[0].payload)
    assert {m for m, _ in msgs} == {k for k, r in rows.items() if r.status == "processed"}
