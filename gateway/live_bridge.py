"""Live events between hub processes on one PostgreSQL.

Several ``crmhub serve`` processes share one database; an operator's browser holds its
live stream on any of them, while the call, the reminder or the SLA notice is raised by
another (the leader holds the AMI link).  Each published event is queued (the publisher
never waits for the database) and a writer task inserts what has queued up as rows of
``live_events`` in one short transaction, then ``NOTIFY crmhub_live``.  Every process
LISTENs on a dedicated connection and fetches the rows it has not seen:

- on each notification, and every ``poll_seconds`` anyway (a notification is lost while a
  listener reconnects: the next fetch catches up from the database);
- ids are taken from a sequence, so a row can commit after a higher id was already read:
  each fetch re-reads a short window below the highest id seen and skips the ids it
  delivered (a bounded memory), so every event reaches every process exactly once;
- a process starts from the newest row (it does not replay the past) and rows older than
  ``keep_seconds`` are deleted.

SQLite is one process: no bridge.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import structlog
from aiohttp import web
from sqlalchemy import delete, func, insert, select, text

from crm_core.db import Database
from crm_core.live import CHANNEL, LiveEvent, LiveHub
from crm_core.models import LiveEventRow, utcnow
from gateway.api.keys import DB
from gateway.keys import LIVE

__all__ = ["LIVE_BRIDGE", "LiveBridge", "live_bridge_ctx"]

log = structlog.get_logger("crmhub.live_bridge")

WINDOW = 200  # ids below the highest seen that are read again (late commits)
SEEN_MAX = 5000  # delivered ids remembered to skip those re-reads


class LiveBridge:
    def __init__(
        self,
        db: Database,
        hub: LiveHub,
        *,
        poll_seconds: float = 2.0,
        keep_seconds: float = 3600.0,
    ) -> None:
        self.db = db
        self.hub = hub
        self.poll_seconds = poll_seconds
        self.keep_seconds = keep_seconds
        self.high = 0
        self.delivered = 0
        self._seen: collections.OrderedDict[int, None] = collections.OrderedDict()
        self.dropped = 0
        self._wake = asyncio.Event()
        self._fetch_lock = asyncio.Lock()
        self._out: asyncio.Queue[LiveEvent] = asyncio.Queue(10_000)

    async def publish(self, event: LiveEvent) -> None:
        """Share ``event`` (already delivered in this process) with the other processes:
        queued, so the publisher never waits for the database; the writer task inserts
        what has queued up in one transaction and NOTIFYs once."""
        try:
            self._out.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning("live_bridge_queue_full", dropped=self.dropped)

    async def write_pending(self, first: LiveEvent | None = None) -> int:
        """Insert ``first`` and the queued events, in order (one transaction, one NOTIFY)."""
        batch: list[LiveEvent] = [first] if first is not None else []
        while not self._out.empty() and len(batch) < 500:
            batch.append(self._out.get_nowait())
        if not batch:
            return 0
        now = utcnow()
        rows = [
            {
                "node": self.hub.node_id,
                "kind": e.kind[:40],
                "payload": dict(e.payload),
                "user_ids": list(e.user_ids) if e.user_ids is not None else None,
                "owner_id": e.owner_id,
                "created_at": now,
            }
            for e in batch
        ]
        async with self.db.engine.begin() as conn:
            await conn.execute(insert(LiveEventRow), rows)
            await conn.execute(text("SELECT pg_notify(:c, :p)"), {"c": CHANNEL, "p": "new"})
        return len(batch)

    async def writer(self) -> None:
        while True:
            event = await self._out.get()
            try:
                await self.write_pending(event)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is away: these events stay local
                log.warning("live_bridge_write_failed", error=str(exc)[:200])

    def _remember(self, row_id: int) -> None:
        self._seen[row_id] = None
        if len(self._seen) > SEEN_MAX:
            self._seen.popitem(last=False)

    async def start_position(self) -> None:
        """Start after the newest row: the past is not replayed to a new process."""
        async with self.db.engine.connect() as conn:
            top = await conn.scalar(select(func.coalesce(func.max(LiveEventRow.id), 0)))
            self.high = int(top or 0)
            recent = await conn.scalars(
                select(LiveEventRow.id).where(LiveEventRow.id > self.high - WINDOW)
            )
            for row_id in recent:
                self._remember(int(row_id))

    async def fetch(self) -> int:
        """Deliver the rows not seen yet; how many were delivered here."""
        async with self._fetch_lock:
            async with self.db.engine.connect() as conn:
                rows = (
                    await conn.execute(
                        select(LiveEventRow)
                        .where(LiveEventRow.id > self.high - WINDOW)
                        .order_by(LiveEventRow.id)
                        .limit(1000)
                    )
                ).all()
            n = 0
            for row in rows:
                if row.id in self._seen:
                    continue
                self._remember(row.id)
                self.high = max(self.high, row.id)
                if self.hub.deliver_remote(
                    row.node, row.kind, row.payload, row.user_ids, row.owner_id
                ):
                    n += 1
            self.delivered += n
            return n

    async def prune(self) -> None:
        cutoff = utcnow() - timedelta(seconds=self.keep_seconds)
        async with self.db.engine.begin() as conn:
            await conn.execute(delete(LiveEventRow).where(LiveEventRow.created_at < cutoff))

    def _notified(self, *_args: Any) -> None:
        self._wake.set()

    async def listen(self) -> None:
        """LISTEN on a dedicated connection; reconnect (and catch up) when it drops."""
        backoff = 0.5
        while True:
            try:
                async with self.db.engine.connect() as conn:
                    raw = await conn.get_raw_connection()
                    driver: Any = raw.driver_connection
                    await driver.add_listener(CHANNEL, self._notified)
                    log.info("live_bridge_listening", node=self.hub.node_id)
                    backoff = 0.5
                    self._wake.set()  # catch up on what was missed while away
                    try:
                        while True:
                            await asyncio.sleep(self.poll_seconds)
                            await conn.execute(text("SELECT 1"))  # is the session still there?
                            await conn.rollback()
                    finally:
                        with contextlib.suppress(Exception):
                            await driver.remove_listener(CHANNEL, self._notified)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database went away: retry, then catch up
                log.warning("live_bridge_reconnect", error=str(exc)[:200], in_seconds=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    async def pump(self) -> None:
        """Fetch on every notification and at least every ``poll_seconds``."""
        last_prune = 0.0
        loop = asyncio.get_running_loop()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
            self._wake.clear()
            try:
                await self.fetch()
                if loop.time() - last_prune > 60:
                    last_prune = loop.time()
                    await self.prune()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("live_bridge_fetch_failed", error=str(exc)[:200])


LIVE_BRIDGE: web.AppKey[LiveBridge] = web.AppKey("live_bridge", LiveBridge)


async def live_bridge_ctx(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx``: the bridge on PostgreSQL; nothing on SQLite."""
    db = app[DB]
    if not db.is_postgres:
        yield
        return
    hub = app[LIVE]
    bridge = LiveBridge(db, hub)
    await bridge.start_position()
    hub.forward = bridge.publish
    tasks = [
        asyncio.create_task(bridge.listen(), name="live-bridge-listen"),
        asyncio.create_task(bridge.pump(), name="live-bridge-pump"),
        asyncio.create_task(bridge.writer(), name="live-bridge-writer"),
    ]
    app[LIVE_BRIDGE] = bridge
    try:
        yield
    finally:
        hub.forward = None
        with contextlib.suppress(Exception):  # what is still queued reaches the others
            await asyncio.wait_for(bridge.write_pending(), 5)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
