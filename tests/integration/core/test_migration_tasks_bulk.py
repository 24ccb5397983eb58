"""0011_tasks_bulk keeps every task (a nullable ``result`` column is added) and adds
``jobs``; its downgrade keeps the tasks too, and the upgrade runs again after it."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from crm_core.db import Database, downgrade_to, migrate
from tests.conftest import PG_ADMIN_URL, _pg_admin

ROWS = [
    "INSERT INTO users (id, email, name, role, token_hash, active, timezone, working_hours, "
    "absences, weight, locale, created_at) VALUES (1, 'a@x.ru', 'A', 'manager', 'h', true, "
    "'Europe/Moscow', '{}', '[]', 1, 'ru', '2025-01-01')",
    "INSERT INTO clients (id, kind, name, status, owner_id, notes, custom, kpp, created_at, "
    "updated_at) VALUES (1, 'company', 'Ромашка', 'cold', 1, '', '{}', '', '2025-01-01', "
    "'2025-01-01')",
    "INSERT INTO tasks (id, kind, title, status, client_id, assignee_id, note, created_at) "
    "VALUES (1, 'call_back', 'Перезвонить', 'open', 1, 1, 'n', '2025-01-01')",
]


@pytest.fixture(params=["sqlite", "pg"])
async def old_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A database at 0006_client_profile with a user, a client and a task."""
    if request.param == "sqlite":
        database = Database(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
        name = None
    else:
        request.getfixturevalue("pg_url")
        name = f"crmhub_migtb_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        _pg_admin(f'CREATE DATABASE "{name}"')
        database = Database(f"{PG_ADMIN_URL.rpartition('/')[0]}/{name}")
    await migrate(database, "0006_client_profile")
    async with database.engine.begin() as conn:
        for sql in ROWS:
            await conn.execute(text(sql))
    try:
        yield database
    finally:
        await database.dispose()
        if name:
            _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _tables(db: Database) -> set[str]:
    async with db.engine.connect() as conn:
        return await conn.run_sync(lambda c: set(inspect(c).get_table_names()))


async def test_upgrade_and_downgrade_keep_the_tasks(old_db: Database) -> None:
    await migrate(old_db, "0011_tasks_bulk")
    assert "jobs" in await _tables(old_db)
    async with old_db.engine.connect() as conn:
        row = (await conn.execute(text("SELECT id, title, note, result FROM tasks"))).one()
    assert tuple(row) == (1, "Перезвонить", "n", None)
    async with old_db.engine.begin() as conn:
        await conn.execute(text("UPDATE tasks SET result = 'дозвонился'"))
    await downgrade_to(old_db, "0006_client_profile")
    assert "jobs" not in await _tables(old_db)
    async with old_db.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT id, title, client_id FROM tasks"))).all()
        if old_db.is_sqlite:
            assert (await conn.execute(text("PRAGMA foreign_key_check"))).all() == []
    assert [tuple(r) for r in rows] == [(1, "Перезвонить", 1)]
    await migrate(old_db, "0011_tasks_bulk")
    assert "jobs" in await _tables(old_db)
