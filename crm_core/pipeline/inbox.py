"""Step 2, ``persist``: the durable inbox with group commit.

Concurrent submissions are queued and written by one task in a single transaction
(``INSERT .. ON CONFLICT DO NOTHING``), so a burst of 50 webhooks costs one commit,
not 50.  Every caller is answered only after that commit: nothing is acknowledged
before it is durable.  A duplicate (same channel, kind and external id) is answered
with the first delivery's row and changes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import select, tuple_
from sqlalchemy.dialects import postgresql, sqlite

from crm_core.background import BackgroundTask
from crm_core.db import Database
from crm_core.events import InboundEvent
from crm_core.models import InboxEvent, utcnow
from crm_core.ports import IngestUnavailable

__all__ = ["InboxWriter", "Persisted", "inbox_insert", "inbox_row"]

log = structlog.get_logger("crmhub.inbox")
T = InboxEvent.__table__


@dataclass(frozen=True, slots=True)
class Persisted:
    event_id: int
    duplicate: bool
    status: str
    lead_id: int | None = None
    client_id: int | None = None
    interaction_id: int | None = None
    error: str | None = None
    channel: str = ""


Key = tuple[str, str, str]


def _key(event: InboundEvent) -> Key:
    return (event.channel.value, event.kind.value, event.external_id)


def inbox_row(event: InboundEvent) -> dict[str, Any]:
    """The inbox row (pending) of an event, as the group-commit writer inserts it."""
    now = utcnow()
    return {
        "channel": event.channel.value,
        "kind": event.kind.value,
        "external_id": event.external_id[:500],
        "source": event.source,
        "status": "pending",
        "attempts": 0,
        "payload": event.to_json(with_raw=True),
        "received_at": now,
    }


def inbox_insert(*, postgres: bool) -> Any:
    """INSERT of inbox rows that skips a row whose (channel, kind, external id) is there
    already (a duplicate delivery); returns id, channel, kind and external id of the new."""
    dialect = postgresql if postgres else sqlite
    return (
        dialect.insert(T)
        .on_conflict_do_nothing(index_elements=["channel", "kind", "external_id"])
        .returning(T.c.id, T.c.channel, T.c.kind, T.c.external_id)
    )


class InboxWriter:
    """Group-commit writer.  ``await submit(event)`` returns once the row is committed."""

    def __init__(
        self,
        db: Database,
        *,
        max_batch: int = 256,
        on_persisted: Callable[[list[int]], None] | None = None,
    ) -> None:
        self.db = db
        self.max_batch = max_batch
        self.on_persisted = on_persisted
        self._queue: asyncio.Queue[tuple[InboundEvent, asyncio.Future[Persisted]]] = asyncio.Queue()
        self._bg = BackgroundTask(self._run, "inbox-writer")
        self._insert = inbox_insert(postgres=db.is_postgres)
        self.batches = 0
        self.events = 0
        self.idle = asyncio.Event()  # set while no submission waits for its commit
        self.idle.set()

    def start(self) -> None:
        self._bg.start()

    async def stop(self) -> None:
        await self._bg.stop()
        while not self._queue.empty():  # nobody will write these: tell the senders
            _, fut = self._queue.get_nowait()
            if not fut.done():
                fut.set_exception(IngestUnavailable("the hub is shutting down"))

    async def submit(self, event: InboundEvent) -> Persisted:
        if not self._bg.running:
            return (await self.write_batch([event]))[0]
        fut: asyncio.Future[Persisted] = asyncio.get_running_loop().create_future()
        self.idle.clear()
        self._queue.put_nowait((event, fut))
        return await fut

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            batch = [first]
            # Let the other handlers that are ready run once, then take all they queued.
            await asyncio.sleep(0)
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            events = [e for e, _ in batch]
            try:
                results = await self.write_batch(events)
            except Exception as exc:  # the database is down: every sender must retry
                log.error("inbox_write_failed", error=str(exc), batch=len(batch))
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(IngestUnavailable(f"inbox write failed: {exc}"))
                continue
            finally:
                if self._queue.empty():
                    self.idle.set()
            for (_, fut), res in zip(batch, results, strict=True):
                if not fut.done():
                    fut.set_result(res)

    async def write_batch(self, events: Sequence[InboundEvent]) -> list[Persisted]:
        """Write events in one transaction; returns one result per event, in order."""
        rows: dict[Key, dict[str, Any]] = {}
        for ev in events:
            rows.setdefault(_key(ev), inbox_row(ev))
        created: dict[Key, int] = {}
        existing: dict[Key, Persisted] = {}
        async with self.db.connect() as conn:
            result = await conn.execute(self._insert, list(rows.values()))
            for r in result:
                created[(r.channel, r.kind, r.external_id)] = r.id
            missing = [k for k in rows if k not in created]
            if missing:
                q = select(
                    T.c.id,
                    T.c.channel,
                    T.c.kind,
                    T.c.external_id,
                    T.c.status,
                    T.c.lead_id,
                    T.c.client_id,
                    T.c.interaction_id,
                    T.c.last_error,
                ).where(tuple_(T.c.channel, T.c.kind, T.c.external_id).in_(missing))
                for r in await conn.execute(q):
                    existing[(r.channel, r.kind, r.external_id)] = Persisted(
                        event_id=r.id,
                        duplicate=True,
                        status=r.status,
                        lead_id=r.lead_id,
                        client_id=r.client_id,
                        interaction_id=r.interaction_id,
                        error=r.last_error,
                    )
        self.batches += 1
        self.events += len(events)
        out: list[Persisted] = []
        seen: set[Key] = set()
        for ev in events:
            k = _key(ev)
            if k in created and k not in seen:
                out.append(Persisted(event_id=created[k], duplicate=False, status="pending"))
            elif k in created:
                out.append(Persisted(event_id=created[k], duplicate=True, status="pending"))
            else:
                out.append(existing[k])
            seen.add(k)
        if created and self.on_persisted is not None:
            self.on_persisted(sorted(created.values()))
        return out
