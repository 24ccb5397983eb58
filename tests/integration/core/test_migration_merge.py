"""0014_merge adds the two indexes a merge needs, keeps every row, and downgrades."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from crm_core.db import Database, downgrade_to, migrate
from tests.conftest import PG_ADMIN_URL, _pg_admin


@pytest.fixture(params=["sqlite", "pg"])
async def own_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        database = Database(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")
        name = None
    else:
        request.getfixturevalue("pg_url")  # skips (or fails in CI) without PostgreSQL
        name = f"crmhub_mm_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        _pg_admin(f'CREATE DATABASE "{name}"')
        database = Database(f"{PG_ADMIN_URL.rpartition('/')[0]}/{name}")
    try:
        yield database
    finally:
        await database.dispose()
        if name:
            _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _indexes(db: Database) -> set[str]:
    async with db.engine.connect() as conn:
        return await conn.run_sync(
            lambda c: {
                ix["name"]
                for t in ("import_links", "outbox")
                for ix in inspect(c).get_indexes(t)
                if ix["name"]
            }
        )


async def test_indexes_come_and_go_and_rows_stay(own_db: Database) -> None:
    await migrate(own_db, "0006_client_profile")
    async with own_db.connect() as conn:
        await conn.execute(
            text(
                "INSERT INTO import_batches (kind, file_name, status, rows, report, created_at) "
                "VALUES ('clients', 'a.xlsx', 'done', 1, '{}', CURRENT_TIMESTAMP)"
            )
        )
        await conn.execute(
            text(
                "INSERT INTO import_links (batch_id, entity, entity_id, action) "
                "VALUES (1, 'client', 7, 'created')"
            )
        )
    assert not {"ix_import_links_entity", "ix_outbox_client_id"} & await _indexes(own_db)
    await migrate(own_db)
    assert {"ix_import_links_entity", "ix_outbox_client_id"} <= await _indexes(own_db)
    await downgrade_to(own_db, "0006_client_profile")
    assert not {"ix_import_links_entity", "ix_outbox_client_id"} & await _indexes(own_db)
    await migrate(own_db)
    async with own_db.engine.connect() as conn:
        assert (await conn.execute(text("SELECT entity_id FROM import_links"))).scalar() == 7
