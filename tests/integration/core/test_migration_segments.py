"""0010_segments: ``clients.last_contact_at`` filled from the existing interactions, then
kept by the database whoever records an interaction (pipeline, outbox, import) and when
an interaction moves to another client; the downgrade keeps every row."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, text, update

from crm_core.db import Database, downgrade_to, migrate
from crm_core.models import Client, Interaction
from tests.conftest import PG_ADMIN_URL, _pg_admin


@pytest.fixture(params=["sqlite", "pg"])
async def old_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A database at 0006_client_profile, before this migration."""
    if request.param == "sqlite":
        database = Database(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
        name = None
    else:
        request.getfixturevalue("pg_url")
        name = f"crmhub_mig10_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        _pg_admin(f'CREATE DATABASE "{name}"')
        database = Database(f"{PG_ADMIN_URL.rpartition('/')[0]}/{name}")
    await migrate(database, "0006_client_profile")
    try:
        yield database
    finally:
        await database.dispose()
        if name:
            _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _at(day: int) -> datetime:
    return datetime(2025, 3, day, 12, 0, tzinfo=UTC)


async def _last(db: Database, client_id: int) -> datetime | None:
    async with db.sessions() as s:
        return await s.scalar(select(Client.last_contact_at).where(Client.id == client_id))


async def test_backfill_then_kept_current(old_db: Database) -> None:
    async with old_db.transaction() as s:
        for cid in (1, 2, 3):
            s.add(Client(id=cid, kind="company", name=f"c{cid}", status="cold"))
        await s.flush()
        for cid, day in ((1, 3), (1, 9), (1, 5), (2, 4)):
            s.add(
                Interaction(
                    client_id=cid,
                    channel="call",
                    direction="in",
                    kind="call_ended",
                    occurred_at=_at(day),
                )
            )
    await migrate(old_db)
    assert await _last(old_db, 1) == _at(9)
    assert await _last(old_db, 2) == _at(4)
    assert await _last(old_db, 3) is None
    # a new interaction moves it forward; an older one does not move it back
    async with old_db.transaction() as s:
        s.add(
            Interaction(
                client_id=2,
                channel="email",
                direction="out",
                kind="email_sent",
                occurred_at=_at(20),
            )
        )
        s.add(
            Interaction(
                client_id=1,
                channel="email",
                direction="in",
                kind="email_received",
                occurred_at=_at(1),
            )
        )
        s.add(
            Interaction(
                client_id=None,
                channel="email",
                direction="in",
                kind="email_received",
                occurred_at=_at(25),
            )
        )
    assert await _last(old_db, 2) == _at(20)
    assert await _last(old_db, 1) == _at(9)
    # an interaction moved to client 3 (a lead converted, a merge) counts for it
    async with old_db.transaction() as s:
        await s.execute(
            update(Interaction).where(Interaction.occurred_at == _at(25)).values(client_id=3)
        )
    assert await _last(old_db, 3) == _at(25)
    # down and up again: rows and values kept, the triggers back
    await downgrade_to(old_db, "0006_client_profile")
    async with old_db.engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM interactions"))).scalar() == 7
    await migrate(old_db)
    assert await _last(old_db, 3) == _at(25)
    async with old_db.transaction() as s:
        s.add(
            Interaction(
                client_id=3, channel="call", direction="out", kind="call_ended", occurred_at=_at(28)
            )
        )
    assert await _last(old_db, 3) == _at(28)
