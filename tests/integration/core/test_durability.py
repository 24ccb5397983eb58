"""Issue 10 item 12: what is acknowledged survives a power cut.

The power cut itself is not reproduced here (LazyFS is not installable on this machine);
these tests check what makes it survivable: every SQLite connection commits with
``synchronous=FULL``, an attachment file and its directories are fsynced before the
inbox row that names it commits, and two writers of one file never share a temp file.
Issue 11 item 7 (the store side): readers never wait for the writer, a write that
cannot get the store in time raises StoreBusy instead of hanging or "database is locked".
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from crm_core.db import Database, StoreBusy, migrate
from crm_core.events import Attachment, Channel, EventKind, InboundEvent
from crm_core.files import write_durable
from crm_core.hub import Hub
from crm_core.models import InboxEvent, Segment
from crm_core.pipeline.process import PipelineConfig


async def test_every_sqlite_connection_commits_with_synchronous_full(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    try:
        await migrate(db)
        seen: list[int] = []

        async def write_side() -> None:
            async with db.connect() as conn:  # the inbox writer's path
                seen.append(int(await conn.scalar(text("PRAGMA synchronous"))))
                await asyncio.sleep(0.01)

        async def session_side() -> None:
            async with db.transaction() as s:  # the API's write path
                seen.append(int(await s.scalar(text("PRAGMA synchronous"))))

        async def reader() -> None:
            async with db.sessions() as s:  # several pooled connections at once
                seen.append(int(await s.scalar(text("PRAGMA synchronous"))))
                await asyncio.sleep(0.01)

        await asyncio.gather(write_side(), session_side(), *(reader() for _ in range(6)))
        assert seen == [2] * 8  # 2 = FULL
    finally:
        await db.dispose()


async def test_a_reader_does_not_wait_for_an_open_write(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", busy_timeout=0.3)
    try:
        await migrate(db)
        writing, done = asyncio.Event(), asyncio.Event()

        async def long_write() -> None:
            async with db.transaction() as s:
                s.add(Segment(name="pending"))
                await s.flush()
                writing.set()
                await done.wait()

        task = asyncio.create_task(long_write())
        await writing.wait()
        try:
            async with db.sessions() as s:  # BEGIN (deferred), not BEGIN IMMEDIATE
                n = await s.scalar(select(func.count()).select_from(Segment))
            assert n == 0  # the snapshot before the uncommitted write
        finally:
            done.set()
            await task
        async with db.sessions() as s:
            assert await s.scalar(select(func.count()).select_from(Segment)) == 1
    finally:
        await db.dispose()


async def test_a_write_that_cannot_get_the_store_in_time_is_store_busy(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    db = Database(f"sqlite+aiosqlite:///{path}", busy_timeout=0.2)
    try:
        await migrate(db)
        # The write slot of this process is held: the next writer gives up, nothing hangs.
        holding, release = asyncio.Event(), asyncio.Event()

        async def hold() -> None:
            async with db.transaction() as s:
                await s.execute(text("SELECT 1"))
                holding.set()
                await release.wait()

        task = asyncio.create_task(hold())
        await holding.wait()
        # The holder took SQLite's write lock at BEGIN (IMMEDIATE): another process cannot.
        probe = sqlite3.connect(path, isolation_level=None, timeout=0)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            probe.execute("BEGIN IMMEDIATE")
        probe.close()
        with pytest.raises(StoreBusy):
            async with asyncio.timeout(60):  # a guard against a hang, not a timing check
                async with db.transaction() as s:
                    s.add(Segment(name="never"))
        release.set()
        await task

        # Another process holds SQLite's write lock: StoreBusy, not "database is locked".
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(StoreBusy):
                async with db.transaction() as s:
                    s.add(Segment(name="never"))
        finally:
            other.execute("ROLLBACK")
            other.close()
        async with db.transaction() as s:  # and the store takes writes again
            s.add(Segment(name="later"))
        async with db.sessions() as s:
            names = list(await s.scalars(select(Segment.name)))
        assert names == ["later"]
    finally:
        await db.dispose()


def test_identical_files_stored_at_once_are_complete(tmp_path: Path) -> None:
    content = os.urandom(2 * 2**20)
    digest = hashlib.sha256(content).hexdigest()
    for round_ in range(5):
        path = tmp_path / str(round_) / digest[:2] / digest
        barrier = threading.Barrier(6)
        errors: list[BaseException] = []

        def store(
            target: Path = path,
            gate: threading.Barrier = barrier,
            errors: list[BaseException] = errors,
        ) -> None:
            gate.wait()
            try:
                write_durable(target, content)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=store) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
        assert sorted(p.name for p in path.parent.iterdir()) == [digest]  # no temp left


def _form_with_file(content: bytes) -> InboundEvent:
    return InboundEvent(
        channel=Channel.WEBFORM,
        kind=EventKind.FORM_SUBMITTED,
        external_id="form-with-file-1",
        occurred_at=datetime.now(UTC),
        identities=("phone:+79165550001",),
        display_name="Анна",
        attachments=(
            Attachment(
                filename="brief.pdf",
                content_type="application/pdf",
                size=len(content),
                content=content,
            ),
        ),
    )


async def test_attachment_and_its_directories_are_fsynced_before_the_row_commits(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "attachments"
    hub = Hub(db, cfg=PipelineConfig(attachments_dir=str(root)))
    content = b"%PDF-1.4 brief" * 1000
    digest = hashlib.sha256(content).hexdigest()
    trail: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        real_fsync(fd)
        trail.append("fsync " + os.readlink(f"/proc/self/fd/{fd}"))

    monkeypatch.setattr(os, "fsync", recording_fsync)
    write_batch = hub.writer.write_batch

    async def recording_write_batch(events: list[InboundEvent]) -> list:
        out = await write_batch(events)
        trail.append("inbox row committed")
        return out

    monkeypatch.setattr(hub.writer, "write_batch", recording_write_batch)
    await hub.start(process=False)
    try:
        receipt = await hub(_form_with_file(content))
    finally:
        await hub.stop()
    commit = trail.index("inbox row committed")
    before = trail[:commit]
    stored = root / digest[:2] / digest
    # The bytes, under the unique temp name they are renamed from.
    temp = f"fsync {stored.parent}/.{digest}."
    assert any(t.startswith(temp) and t.endswith(".part") for t in before), before
    assert f"fsync {stored.parent}" in before  # the file's name in its directory
    assert f"fsync {root}" in before  # the new <sha[:2]> directory's name
    assert f"fsync {root.parent}" in before  # the new attachments directory's name
    assert stored.read_bytes() == content
    async with db.sessions() as s:
        row = await s.get(InboxEvent, receipt.event_id)
    assert row is not None and row.payload["attachments"][0]["sha256"] == digest
