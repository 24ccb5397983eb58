"""Shared fixtures: every storage test runs on SQLite and on PostgreSQL.

PostgreSQL: ``CRMHUB_TEST_PG`` (default ``postgresql+asyncpg://postgres@127.0.0.1:5432/test``).
Each test session creates its own database on that server (so parallel runs never
collide) and drops it at the end.  Where no server answers, PostgreSQL tests are skipped
with a clear message; under CI (``CI=true``) they fail instead.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from hypothesis import Phase, settings

from crm_core.db import Database, migrate
from tests.support.dovecot import DovecotServer, start_or_skip

PG_ADMIN_URL = os.environ.get("CRMHUB_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
FIXTURES = Path(__file__).parent / "fixtures"

# Hypothesis' "explain" phase re-runs a failing example under a line tracer: on the deep
# hostile payloads that took longer than the whole suite. A failure still shows its
# minimal example; it only loses the "these lines ran" hint.
settings.register_profile(
    "crmhub", phases=[p for p in Phase if p is not Phase.explain], print_blob=True
)
settings.load_profile("crmhub")


def _pg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


def _pg_admin(sql: str) -> None:
    """Run one statement on the admin database (in a thread: callers may be in a loop)."""
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(_pg_dsn(PG_ADMIN_URL), timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session."""
    name = f"crmhub_t_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        _pg_admin(f'CREATE DATABASE "{name}"')
    except Exception as exc:  # pragma: no cover - depends on the machine
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI but did not answer: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}")
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    yield f"{base}/{name}"
    try:
        _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except Exception:  # pragma: no cover
        pass


async def _reset_pg(db: Database) -> None:
    from sqlalchemy import text

    from crm_core.models import Base
    from crm_core.services.statuses import seed_default_statuses

    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    async with db.engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    async with db.transaction() as s:  # what the migrations seed: the default statuses
        await seed_default_statuses(s)


_pg_migrated: set[str] = set()


@pytest.fixture(params=["sqlite", "pg"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated, empty database: once SQLite (a temp file), once PostgreSQL."""
    if request.param == "sqlite":
        database = Database(f"sqlite+aiosqlite:///{tmp_path / 'crmhub.db'}")
        await migrate(database)
    else:
        url = request.getfixturevalue("pg_url")
        database = Database(url)
        if url not in _pg_migrated:
            await migrate(database)
            _pg_migrated.add(url)
        await _reset_pg(database)
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
def sqlite_db_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'crmhub.db'}"


@pytest.fixture(params=["sqlite", "pg"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A migrated, empty database URL for a whole app (``create_app``) under test."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
        yield url
        return
    url = request.getfixturevalue("pg_url")
    database = Database(url)
    try:
        if url not in _pg_migrated:
            await migrate(database)
            _pg_migrated.add(url)
        await _reset_pg(database)
    finally:
        await database.dispose()
    yield url


@pytest.fixture(scope="module")
def dovecot() -> Iterator[DovecotServer]:
    """A real Dovecot IMAP server from a temp dir on loopback, one per test module
    (installed with apt when missing; skipped where impossible, failed under CI)."""
    server = start_or_skip()
    yield server
    server.stop()
