"""0006_client_profile keeps every row: clients and their children survive the SQLite
table rebuild (foreign keys off, nothing cascades), statuses move to the new list,
segment_id becomes a membership, the name search still follows renames, and a branch
may now share its head office's INN with its own KPP."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from crm_core.db import Database, migrate
from crm_core.services.search import client_ids_matching
from tests.conftest import PG_ADMIN_URL, _pg_admin


@pytest.fixture(params=["sqlite", "pg"])
async def old_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A database at 0005_imports, before the client profile."""
    if request.param == "sqlite":
        database = Database(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
        name = None
    else:
        request.getfixturevalue("pg_url")  # skips (or fails in CI) without PostgreSQL
        name = f"crmhub_mig_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        _pg_admin(f'CREATE DATABASE "{name}"')
        database = Database(f"{PG_ADMIN_URL.rpartition('/')[0]}/{name}")
    await migrate(database, "0005_imports")
    try:
        yield database
    finally:
        await database.dispose()
        if name:
            _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


OLD_ROWS = [
    "INSERT INTO users (id, email, name, role, token_hash, active, timezone, working_hours, "
    "absences, weight, locale, created_at) VALUES (1, 'a@x.ru', 'A', 'manager', 'h', true, "
    "'Europe/Moscow', '{}', '[]', 1, 'ru', '2025-01-01')",
    "INSERT INTO segments (id, name, description) VALUES (1, 'Банки', '')",
    "INSERT INTO clients (id, kind, name, inn, segment_id, status, owner_id, notes, created_at, "
    "updated_at) VALUES (1, 'company', 'Ромашка', '7707083893', 1, 'warm', 1, 'n', "
    "'2025-01-01', '2025-01-01')",
    "INSERT INTO clients (id, kind, name, status, notes, created_at, updated_at) VALUES "
    "(2, 'person', 'Иван Петров', 'permanent', '', '2025-01-02', '2025-01-02')",
    "INSERT INTO contact_persons (id, client_id, name, created_at) VALUES "
    "(1, 1, 'Мария', '2025-01-01')",
    "INSERT INTO contact_points (id, kind, value, client_id, contact_person_id, unreachable, "
    "created_at) VALUES (1, 'phone', '+79161112233', 1, 1, false, '2025-01-01')",
    "INSERT INTO deals (id, client_id, title, stage, currency, owner_id, created_at, "
    "updated_at) VALUES (1, 1, 'Поставка', 'new', 'RUB', 1, '2025-01-01', '2025-01-01')",
    "INSERT INTO tasks (id, kind, title, status, client_id, note, created_at) VALUES "
    "(1, 'call_back', 'Перезвонить', 'open', 1, '', '2025-01-01')",
]


async def test_upgrade_keeps_every_row(old_db: Database) -> None:
    async with old_db.engine.begin() as conn:
        for sql in OLD_ROWS:
            await conn.execute(text(sql))
    await migrate(old_db)
    async with old_db.engine.connect() as conn:

        async def one(sql: str) -> object:
            return (await conn.execute(text(sql))).scalar()

        assert await one("SELECT count(*) FROM clients") == 2
        assert await one("SELECT count(*) FROM contact_points WHERE client_id = 1") == 1
        assert await one("SELECT count(*) FROM contact_persons WHERE client_id = 1") == 1
        assert await one("SELECT count(*) FROM deals WHERE client_id = 1") == 1
        assert await one("SELECT count(*) FROM tasks WHERE client_id = 1") == 1
        assert await one("SELECT status FROM clients WHERE id = 1") == "thinking"
        assert await one("SELECT status FROM clients WHERE id = 2") == "regular"
        assert await one("SELECT kpp FROM clients WHERE id = 1") == ""
        assert await one("SELECT client_id FROM segment_clients WHERE segment_id = 1") == 1
        assert await one("SELECT kind FROM segments WHERE id = 1") == "manual"
        assert await one("SELECT count(*) FROM client_statuses") == 6
    if old_db.is_sqlite:
        async with old_db.engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
    # a branch shares the INN with its own KPP; the same INN+KPP twice is refused
    async with old_db.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO clients (id, kind, name, inn, kpp, status, notes, custom, "
                "created_at, updated_at) VALUES (3, 'company', 'Ромашка, филиал', "
                "'7707083893', '770701001', 'cold', '', '{}', '2025-02-01', '2025-02-01')"
            )
        )
    with pytest.raises(IntegrityError):
        async with old_db.engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO clients (id, kind, name, inn, kpp, status, notes, custom, "
                    "created_at, updated_at) VALUES (4, 'company', 'Дубль', '7707083893', '', "
                    "'cold', '', '{}', '2025-02-01', '2025-02-01')"
                )
            )
    # deleting a client still cascades (foreign keys back on), and the name search
    # follows a rename made after the rebuild
    async with old_db.sessions() as s:
        await s.execute(text("UPDATE clients SET name = 'Василёк' WHERE id = 1"))
        await s.commit()
        assert set(await s.scalars(select(client_ids_matching(s, "Василёк")))) == {1}
        assert set(await s.scalars(select(client_ids_matching(s, "Ромашка")))) == {3}
        await s.execute(text("UPDATE contact_persons SET name = 'Мариам' WHERE id = 1"))
        await s.commit()
        assert set(await s.scalars(select(client_ids_matching(s, "Мариам")))) == {1}
        await s.execute(text("DELETE FROM clients WHERE id = 1"))
        await s.commit()
        assert (await s.execute(text("SELECT count(*) FROM contact_points"))).scalar() == 0


async def test_downgrade_then_upgrade_again(old_db: Database) -> None:
    async with old_db.engine.begin() as conn:
        for sql in OLD_ROWS:
            await conn.execute(text(sql))
    await migrate(old_db)
    from crm_core.db import downgrade_to

    await downgrade_to(old_db, "0005_imports")
    async with old_db.engine.connect() as conn:
        assert (await conn.execute(text("SELECT status FROM clients WHERE id = 1"))).scalar() == (
            "warm"
        )
        assert (await conn.execute(text("SELECT count(*) FROM deals"))).scalar() == 1
    await migrate(old_db)
