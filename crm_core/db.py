"""Engine, sessions and migrations for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

__all__ = [
    "Database",
    "StoreBusy",
    "default_sqlite_url",
    "downgrade_to",
    "is_busy_error",
    "migrate",
    "process_name",
    "run_migrations",
]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def process_name() -> str:
    """This process as PostgreSQL shows it (``application_name``, at most 63 bytes)."""
    return f"crmhub {socket.gethostname()[:40]} pid {os.getpid()}"[:63]


def default_sqlite_url(path: str | Path = "./var/crmhub.db") -> str:
    return f"sqlite+aiosqlite:///{path}"


# Seconds a write waits for the store (the writer lock, then SQLite's own lock) before
# it gives up with StoreBusy, which the gateway answers 503 + Retry-After.
DEFAULT_BUSY_TIMEOUT = 10.0

# The token of the writer-lock holder, in the holder's context (see Database._begin).
_writing: contextvars.ContextVar[object | None] = contextvars.ContextVar(
    "crmhub_writing", default=None
)

# PostgreSQL states worth a retry: lock timeout, serialization failure, deadlock, too many
# connections.
_PG_BUSY = frozenset({"55P03", "40001", "40P01", "53300"})


class StoreBusy(RuntimeError):
    """The store could not take the write in time (another writer held it too long);
    nothing was written, the caller should retry later (HTTP 503 + Retry-After)."""


def is_busy_error(exc: BaseException) -> bool:
    """True for "the database is busy, retry": StoreBusy, SQLite's ``database is locked``
    / ``busy``, PostgreSQL lock timeouts and serialization failures, pool exhaustion."""
    if isinstance(exc, (StoreBusy, PoolTimeout)):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    orig = exc.orig
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if state in _PG_BUSY:
        return True
    text_ = str(orig).lower()
    return "database is locked" in text_ or "database table is locked" in text_


def _casefold(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def _sqlite_pragmas(busy_ms: int) -> Any:
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" hook emit BEGIN (so SAVEPOINTs work), not the driver.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk (the WAL fsynced) before it returns, so what the hub
        # acknowledges survives a power cut; the inbox writer's group commit shares one
        # fsync between all the submissions of a batch.
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={busy_ms}")
        cur.close()
        # SQLite's lower() folds ASCII only: segments' "contains" needs Cyrillic too.
        dbapi_conn.create_function("crm_casefold", 1, _casefold, deterministic=True)

    return on_connect


class Database:
    """One engine and session factory.

    SQLite allows one writer at a time: writes in this process are serialized by
    ``write_lock`` so transactions never meet "database is locked" (several processes
    sharing one SQLite file are not supported: use PostgreSQL to scale out).  A write
    that cannot get the store within ``busy_timeout`` seconds raises :class:`StoreBusy`;
    readers (``sessions()`` outside a write) take no lock at all.
    """

    def __init__(
        self,
        url: str,
        *,
        echo: bool = False,
        pool_size: int = 10,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
    ) -> None:
        self.url = url
        self.busy_timeout = busy_timeout
        u = make_url(url)
        self.dialect = u.get_backend_name()
        kwargs: dict[str, Any] = {"echo": echo}
        if self.is_sqlite:
            db_path = u.database
            if db_path and db_path != ":memory:":
                Path(db_path).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": busy_timeout}
        else:
            kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
            # each session names its process, so `crmhub status` and /readyz can tell
            # which hub holds which connector's lock (pg_stat_activity.application_name)
            kwargs["connect_args"] = {"server_settings": {"application_name": process_name()}}
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            pragmas = _sqlite_pragmas(int(busy_timeout * 1000))
            event.listen(self.engine.sync_engine, "connect", pragmas)
            # A write takes SQLite's lock at BEGIN so it never has to upgrade and deadlock.
            event.listen(self.engine.sync_engine, "begin", self._begin)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self.write_lock: asyncio.Lock | None = asyncio.Lock() if self.is_sqlite else None
        self._holder: object | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @contextlib.asynccontextmanager
    async def writing(self) -> AsyncIterator[None]:
        """Hold the process-wide writer lock on SQLite (a no-op on PostgreSQL); raises
        :class:`StoreBusy` when it is not free within ``busy_timeout`` seconds."""
        if self.write_lock is None:
            yield
            return
        try:
            async with asyncio.timeout(self.busy_timeout):
                await self.write_lock.acquire()
        except TimeoutError:
            raise StoreBusy(
                f"the database is busy: no write slot within {self.busy_timeout:g} s"
            ) from None
        holder = object()
        self._holder = holder
        token = _writing.set(holder)
        try:
            yield
        finally:
            _writing.reset(token)
            self._holder = None
            self.write_lock.release()

    def _begin(self, conn: Connection) -> None:
        """BEGIN IMMEDIATE for the holder of the writer lock, a deferred BEGIN (a reader:
        in WAL it never waits for the writer nor blocks it) for everyone else."""
        holder = self._holder
        writer = holder is not None and _writing.get() is holder
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session in one write transaction, committed on success."""
        async with self._busy_as_store_busy(), self.writing():
            async with self.sessions() as session, session.begin():
                yield session

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A connection in one write transaction, committed on success."""
        async with self._busy_as_store_busy(), self.writing(), self.engine.begin() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def _busy_as_store_busy(self) -> AsyncIterator[None]:
        """SQLite's "database is locked" (another process kept the lock past the busy
        timeout) raised as StoreBusy: the write did not happen, retry later.  PostgreSQL's
        errors stay as they are (the worker retries deadlocks one event at a time)."""
        try:
            yield
        except DBAPIError as exc:
            if self.is_sqlite and is_busy_error(exc):
                raise StoreBusy(f"the database is busy: {exc.orig}") from exc
            raise

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


def _alembic_config(connection: Connection | None = None) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def run_migrations(connection: Connection, revision: str = "head") -> None:
    from alembic import command

    if connection.dialect.name == "sqlite" and not connection.in_transaction():
        # A migration that rebuilds a table (Alembic batch mode) drops the old one; with
        # foreign keys on, that DROP would cascade into every child row.  As SQLite's own
        # ALTER TABLE procedure says: foreign keys off before the transaction, and each
        # such migration runs ``PRAGMA foreign_key_check`` before it commits.  ``migrate``
        # discards this connection afterwards, so no pooled connection keeps them off.
        cur = connection.connection.cursor()
        cur.execute("PRAGMA foreign_keys=OFF")
        cur.close()
    command.upgrade(_alembic_config(connection), revision)


def _run_downgrade(connection: Connection, revision: str) -> None:
    from alembic import command

    if connection.dialect.name == "sqlite" and not connection.in_transaction():
        cur = connection.connection.cursor()
        cur.execute("PRAGMA foreign_keys=OFF")  # as in run_migrations
        cur.close()
    command.downgrade(_alembic_config(connection), revision)


async def migrate(db: Database, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (creating it on an empty database)."""
    async with db.writing(), db.engine.connect() as conn:
        if db.is_postgres:
            # One migrator at a time when several hub processes start together.
            await conn.execute(text("SELECT pg_advisory_lock(727001)"))
        try:
            await conn.run_sync(run_migrations, revision)
            await conn.commit()
        finally:
            if db.is_sqlite:
                await conn.invalidate()  # foreign keys were off on it (run_migrations)
            if db.is_postgres:
                await conn.execute(text("SELECT pg_advisory_unlock(727001)"))
                await conn.commit()


async def downgrade_to(db: Database, revision: str) -> None:
    """Take the schema back to ``revision`` (an operator's way back after an upgrade)."""
    async with db.writing(), db.engine.connect() as conn:
        try:
            await conn.run_sync(_run_downgrade, revision)
            await conn.commit()
        finally:
            if db.is_sqlite:
                await conn.invalidate()
