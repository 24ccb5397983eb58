"""Exactly one process runs each push connector (one AMI link per PBX, one IMAP session per
mailbox, one poller per bot): elected with a PostgreSQL advisory lock, with fail-over when
the holder dies (its session ends, the lock is released, a standby takes it)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from sqlalchemy import text

from crm_core.db import Database
from crm_core.ports import ConnectorHealth, ConnectorState

__all__ = ["holders", "lock_id", "lock_names", "run_as_leader"]

log = structlog.get_logger("crmhub.leader")


def lock_id(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def lock_names(settings: Any) -> dict[str, str]:
    """Each push connector's health name -> its leader lock name (as ``gateway.wiring``)."""
    out = {p.name: f"asterisk:{p.name}" for p in settings.asterisk}
    out.update({b.name: f"imap:{b.name}" for b in settings.imap})
    out.update({b.name: f"telegram:{b.name}" for b in settings.telegram if b.polling})
    return out


async def holders(db: Database, names: list[str]) -> dict[str, str | None]:
    """Which process holds each connector's lock (its ``application_name``, e.g. ``crmhub
    host pid 123``), or None; SQLite: this process runs them all."""
    if not db.is_postgres:
        from crm_core.db import process_name

        return dict.fromkeys(names, process_name())
    # A bigint advisory key shows in pg_locks as classid (high 32 bits) and objid (low).
    keys = {}
    for name in names:
        k = lock_id(name) & 0xFFFFFFFFFFFFFFFF
        keys[(k >> 32, k & 0xFFFFFFFF)] = name
    out: dict[str, str | None] = dict.fromkeys(names)
    async with db.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT l.classid::bigint AS hi, l.objid::bigint AS lo, a.application_name "
                "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
                "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
        )
        for hi, lo, app_name in rows:
            held = keys.get((int(hi), int(lo)))
            if held is not None:
                out[held] = app_name or "?"
    return out


async def run_as_leader(
    db: Database,
    name: str,
    run: Callable[[], Awaitable[None]],
    health: ConnectorHealth | None = None,
    *,
    retry_seconds: float = 5.0,
) -> None:
    """Run ``run()`` while this process holds the lock ``name``; SQLite: just run it."""
    if not db.is_postgres:
        await run()
        return
    key = lock_id(name)
    while True:
        try:
            async with db.engine.connect() as conn:
                got = await conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": key})
                await conn.commit()
                if not got:
                    if health is not None:
                        health.set(ConnectorState.STANDBY, "another hub process runs it")
                    await asyncio.sleep(retry_seconds)
                    continue
                log.info("leader_acquired", connector=name)
                task: asyncio.Future[None] = asyncio.ensure_future(run())
                try:
                    while not task.done():
                        await asyncio.wait({task}, timeout=retry_seconds)
                        if not task.done():
                            await conn.scalar(text("SELECT 1"))  # still holding the session?
                            await conn.commit()
                    task.result()
                    return
                finally:
                    if not task.done():
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError, Exception):
                            await task
                    with contextlib.suppress(Exception):
                        await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                        await conn.commit()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("leader_lost", connector=name, error=str(exc))
            if health is not None:
                health.set(ConnectorState.RECONNECTING, f"database session lost: {exc}")
            await asyncio.sleep(retry_seconds)
