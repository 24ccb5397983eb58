"""Runs steps 3-6 for persisted events: claims inbox rows, processes them in batches
(one transaction, a savepoint per event), retries failures with backoff, and
publishes live events after commit."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

import structlog
from sqlalchemy import Table, and_, bindparam, insert, or_, select, text, tuple_, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.background import BackgroundTask
from crm_core.db import Database
from crm_core.events import InboundEvent
from crm_core.live import LiveHub
from crm_core.models import AttachmentRow, InboxEvent, utcnow
from crm_core.pipeline.assign import Assigner
from crm_core.pipeline.inbox import Persisted, inbox_insert, inbox_row
from crm_core.pipeline.match import prefetch_points
from crm_core.pipeline.process import (
    BATCH_INTERACTION_IDS,
    Outcome,
    PipelineConfig,
    process_event,
)
from crm_core.pipeline.record import BATCH_ATTACHMENTS

__all__ = ["InboxProcessor", "ProcessorStats", "backoff_seconds"]

log = structlog.get_logger("crmhub.pipeline")
LEASE = timedelta(seconds=120)
MAX_ATTEMPTS = 12


def backoff_seconds(attempts: int) -> float:
    """5 s, 10 s, 20 s ... capped at one hour."""
    return float(min(3600, 5 * 2 ** max(0, attempts - 1)))


@dataclass(slots=True)
class ProcessorStats:
    processed: int = 0
    failed: int = 0
    batches: int = 0


class InboxProcessor:
    def __init__(
        self,
        db: Database,
        assigner: Assigner,
        live: LiveHub,
        cfg: PipelineConfig,
        *,
        batch_size: int = 100,
        poll_interval: float = 1.0,
        on_result: Callable[[str, str], None] | None = None,  # (channel, processed|failed)
        intake_idle: asyncio.Event | None = None,
        yield_seconds: float = 0.05,
    ) -> None:
        self.db = db
        self.assigner = assigner
        self.live = live
        self.cfg = cfg
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.on_result = on_result
        # Intake first: while submissions wait for their commit, the next batch waits
        # (at most yield_seconds), so a burst is acknowledged fast and processed after.
        self.intake_idle = intake_idle
        self.yield_seconds = yield_seconds
        self.stats = ProcessorStats()
        self._wake: asyncio.Queue[list[int]] = asyncio.Queue()
        self._events: dict[int, InboundEvent] = {}  # fast path: the objects just persisted
        self._waiters: dict[int, list[asyncio.Future[Persisted]]] = {}
        self._done: OrderedDict[int, Persisted] = OrderedDict()
        self._pending: set[int] = set()  # persisted here, not processed yet
        self._bg = BackgroundTask(self._run, "inbox-processor")
        self._insert = inbox_insert(postgres=db.is_postgres)

    # -- wiring ---------------------------------------------------------------
    def persisted(self, ids: list[int], events: dict[int, InboundEvent] | None = None) -> None:
        if events:
            self._events.update(events)
        self._pending.update(ids)
        self._wake.put_nowait(ids)

    @property
    def backlog(self) -> int:
        """Events this process persisted that are still waiting for steps 3-6."""
        return len(self._pending)

    async def wait_for(self, event_id: int, wait_seconds: float) -> Persisted | None:
        if event_id in self._done:
            return self._done[event_id]
        fut: asyncio.Future[Persisted] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(event_id, []).append(fut)
        try:
            return await asyncio.wait_for(fut, wait_seconds)
        except TimeoutError:
            return None
        finally:
            waiters = self._waiters.get(event_id)
            if waiters and fut in waiters:
                waiters.remove(fut)
                if not waiters:
                    self._waiters.pop(event_id, None)

    def start(self) -> None:
        self._bg.start()

    async def stop(self) -> None:
        await self._bg.stop()

    # -- loop -----------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            ids: list[int] = []
            try:
                ids = await asyncio.wait_for(self._wake.get(), self.poll_interval)
                while not self._wake.empty() and len(ids) < self.batch_size * 4:
                    ids.extend(self._wake.get_nowait())
            except TimeoutError:
                pass
            try:
                if ids:
                    for i in range(0, len(ids), self.batch_size):
                        await self._yield_to_intake()
                        await self.process_ids(ids[i : i + self.batch_size], fresh=True)
                else:
                    await self.process_due()
            except Exception as exc:  # keep the worker alive; rows stay due for a retry
                log.error("processor_loop_error", error=repr(exc))
                await asyncio.sleep(min(self.poll_interval, 1.0))

    async def _yield_to_intake(self) -> None:
        idle = self.intake_idle
        if idle is not None and not idle.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(idle.wait(), self.yield_seconds)

    async def process_due(self) -> int:
        """Claim and process rows that are due: left pending, failed and due, or stale."""
        now = utcnow()
        T = InboxEvent
        cond = or_(
            and_(T.status == "pending", T.received_at < now - timedelta(seconds=5)),
            and_(T.status == "failed", T.next_attempt_at <= now, T.attempts < MAX_ATTEMPTS),
            and_(T.status == "processing", T.next_attempt_at < now),
        )
        q = select(T.id).where(cond).order_by(T.id).limit(self.batch_size)
        if self.db.is_postgres:
            q = q.with_for_update(skip_locked=True)
        async with self.db.transaction() as s:
            ids = list(await s.scalars(q))
            if not ids:
                return 0
            await s.execute(
                update(T)
                .where(T.id.in_(ids))
                .values(status="processing", next_attempt_at=now + LEASE)
            )
        await self.process_ids(ids, fresh=False, claimed=True)
        return len(ids)

    async def process_ids(self, ids: list[int], *, fresh: bool, claimed: bool = False) -> None:
        """Process ``ids``.  Not ``claimed`` (just persisted here): the batch transaction
        itself takes the rows still pending (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the
        writer lock on SQLite), so no separate claiming transaction is needed: a crash
        mid-batch rolls back to ``pending`` and :meth:`process_due` takes them later."""
        ids = sorted(ids)
        if not ids:
            return
        pending_only = not claimed
        try:
            results = await self._batch(ids, pending_only=pending_only)
        except DBAPIError as exc:  # a deadlock or a lost connection: one by one
            log.warning("batch_failed_retrying_singly", error=str(exc)[:300], size=len(ids))
            results = {}
            for i in ids:
                try:
                    results.update(await self._batch([i], careful=True, pending_only=pending_only))
                except DBAPIError as exc2:
                    await self._mark_failed_alone(i, exc2)
        for event_id, (persisted, outcome) in results.items():
            self._finish(event_id, persisted)
            if outcome is not None and outcome.follow_up:
                self.persisted(outcome.follow_up)  # committed with it: process them next
            if outcome is not None:
                for kind, payload, user_ids, owner in outcome.live:
                    await self.live.publish(kind, payload, user_ids=user_ids, owner_id=owner)

    @property
    def running(self) -> bool:
        return self._bg.running

    async def process_now(self, event: InboundEvent) -> Persisted | None:
        """Persist and process one event in a single transaction (the inbox row is
        written already processed): the path of a lone submission that waits for its
        lead while nothing else is queued.  One commit instead of two, and no hand-over
        between the inbox writer and this worker.  None when that did not work (a
        duplicate delivery, an event that fails, a busy store): nothing was written, and
        the caller takes the usual path (inbox first, then processing with retries)."""
        started = time.perf_counter()
        row_id: int | None = None
        try:
            async with self.db.transaction() as s:
                row = InboxEvent(**inbox_row(event))
                s.add(row)
                await s.flush()
                row_id = row.id
                self._events[row_id] = event
                persisted, outcome = await self._one(s, row, careful=False)
        except Exception as exc:
            self._invalidate()
            log.debug("process_now_fell_back", error=str(exc)[:200])
            return None
        finally:
            if row_id is not None:
                self._events.pop(row_id, None)
        self.stats.batches += 1
        self._after_commit(persisted)
        self._finish(persisted.event_id, persisted)
        if outcome is not None:
            if outcome.follow_up:
                self.persisted(outcome.follow_up)
            for kind, payload, user_ids, owner in outcome.live:
                await self.live.publish(kind, payload, user_ids=user_ids, owner_id=owner)
        log.debug("process_now_done", ms=round((time.perf_counter() - started) * 1000, 1))
        return persisted

    async def persist_and_process(self, events: Sequence[InboundEvent]) -> list[Persisted] | None:
        """The lean path of a connector's batch (an initial mailbox sync): the inbox rows
        and steps 3-5 of every new event in ONE transaction, then step 6 after commit.

        The rows go in with one multi-row ``INSERT .. ON CONFLICT DO NOTHING`` (a
        duplicate delivery is answered with the first delivery's row), each new event
        runs through the same :func:`process_event` as on the per-event path (so the
        same matching, threading, classification and assignment), and the rows are
        marked processed with one executemany ``UPDATE``; nothing is read back from the
        inbox.  Events that cannot be processed inline (an unparsable message) are
        written pending and handed to the worker.  Returns one result per event, in
        order; None when the transaction did not commit (a failing event, a race with
        another process, a busy store): then nothing was written and the caller takes
        the per-event path (inbox first, worker after), where failures are recorded.
        """
        if not events:
            return []
        started = time.perf_counter()
        rows: dict[tuple[str, str, str], tuple[dict[str, Any], InboundEvent]] = {}
        for ev in events:
            rows.setdefault(_key(ev), (inbox_row(ev), ev))
        created: dict[tuple[str, str, str], int] = {}
        existing: dict[tuple[str, str, str], Persisted] = {}
        done: list[tuple[Persisted, Outcome | None]] = []
        handed: list[int] = []
        try:
            async with self.db.transaction() as s:
                result = await s.execute(self._insert, [r for r, _ in rows.values()])
                for r in result:
                    created[(r.channel, r.kind, r.external_id)] = r.id
                missing = [k for k in rows if k not in created]
                if missing:
                    existing = await _existing(s, missing)
                finished: list[dict[str, Any]] = []
                attachments: list[dict[str, Any]] = []
                s.info[BATCH_ATTACHMENTS] = attachments
                await prefetch_points(s, [rows[k][1] for k in created])
                s.info[BATCH_INTERACTION_IDS] = await _reserve_ids(
                    s, "interactions", len(created), postgres=self.db.is_postgres
                )
                for key, event_id in sorted(created.items(), key=lambda kv: kv[1]):
                    event = rows[key][1]
                    if event.meta.get("parse_error"):
                        handed.append(event_id)  # the worker records the failure
                        self._events[event_id] = event
                        continue
                    outcome = await process_event(s, event, event_id, self.assigner, self.cfg)
                    now = utcnow()
                    finished.append(
                        {
                            "b_id": event_id,
                            "b_at": now,
                            "b_lead": outcome.lead_id,
                            "b_client": outcome.client_id,
                            "b_inter": outcome.interaction_id,
                        }
                    )
                    done.append(
                        (
                            Persisted(
                                event_id=event_id,
                                duplicate=False,
                                status="processed",
                                lead_id=outcome.lead_id,
                                client_id=outcome.client_id,
                                interaction_id=outcome.interaction_id,
                                channel=event.channel.value,
                            ),
                            outcome,
                        )
                    )
                if finished:
                    await s.flush()
                    if attachments:
                        await s.execute(insert(_ATTACHMENTS), attachments)
                    await s.execute(_MARK_PROCESSED, finished)
        except Exception as exc:
            self._invalidate()
            for event_id in handed:
                self._events.pop(event_id, None)
            log.info("lean_batch_fell_back", size=len(events), error=str(exc)[:200])
            return None
        self.stats.batches += 1
        by_id: dict[int, Persisted] = {}
        for persisted, _ in done:
            by_id[persisted.event_id] = persisted
            self._after_commit(persisted)
            self._finish(persisted.event_id, persisted)
        if handed:
            self.persisted(handed)
        for _, after in done:
            if after is not None:
                if after.follow_up:
                    self.persisted(after.follow_up)
                for kind, payload, user_ids, owner in after.live:
                    await self.live.publish(kind, payload, user_ids=user_ids, owner_id=owner)
        out: list[Persisted] = []
        seen: set[tuple[str, str, str]] = set()
        for ev in events:
            k = _key(ev)
            if k in created:
                event_id = created[k]
                p = by_id.get(event_id) or Persisted(
                    event_id=event_id, duplicate=False, status="pending"
                )
                out.append(dataclasses.replace(p, duplicate=k in seen))
            else:
                out.append(existing[k])
            seen.add(k)
        log.debug(
            "lean_batch_done",
            size=len(events),
            ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return out

    async def _batch(
        self, ids: list[int], *, careful: bool = False, pending_only: bool = False
    ) -> dict[int, tuple[Persisted, Outcome | None]]:
        """Process ``ids`` in one transaction (``pending_only``: those still pending).

        First optimistically, without a savepoint per event (two round trips less each);
        if any event fails, the whole transaction rolls back and each event is processed
        again ``careful``ly in its own transaction, where a failure is recorded on its row.
        """
        results: dict[int, tuple[Persisted, Outcome | None]] = {}
        started = time.perf_counter()
        q = select(InboxEvent).where(InboxEvent.id.in_(ids)).order_by(InboxEvent.id)
        if pending_only:
            q = q.where(InboxEvent.status == "pending")
            if self.db.is_postgres:
                q = q.with_for_update(skip_locked=True)
        try:
            async with self.db.transaction() as s:
                rows = list(await s.scalars(q))
                for row in rows:
                    results[row.id] = await self._one(s, row, careful=careful)
        except Exception as exc:
            self._invalidate()
            if careful:
                raise
            log.info("batch_retried_one_by_one", size=len(ids), error=str(exc)[:200])
            results = {}
            for i in ids:
                results.update(await self._batch([i], careful=True, pending_only=pending_only))
            return results
        self.stats.batches += 1
        for event_id, (persisted, _) in results.items():
            self._events.pop(event_id, None)
            self._after_commit(persisted)
        log.debug("batch_done", size=len(ids), ms=round((time.perf_counter() - started) * 1000, 1))
        return results

    def _invalidate(self) -> None:
        invalidate = getattr(self.assigner, "invalidate", None)
        if invalidate is not None:
            invalidate()

    def _after_commit(self, p: Persisted) -> None:
        if p.status == "processed":
            self.stats.processed += 1
        else:
            self.stats.failed += 1
        log.info(
            "event_processed" if p.status == "processed" else "event_failed",
            event_id=p.event_id,
            lead_id=p.lead_id,
            client_id=p.client_id,
            interaction_id=p.interaction_id,
            error=p.error,
        )
        if self.on_result is not None:
            self.on_result(p.channel, p.status)

    async def _one(
        self, s: AsyncSession, row: InboxEvent, *, careful: bool
    ) -> tuple[Persisted, Outcome | None]:
        event = self._events.get(row.id)
        error: str | None = None
        outcome: Outcome | None = None
        if event is None:
            try:
                event = InboundEvent.from_json(row.payload)
            except Exception as exc:
                if not careful:
                    raise
                error = f"{type(exc).__name__}: {exc}"[:2000]
        if event is not None and not careful:
            outcome = await process_event(s, event, row.id, self.assigner, self.cfg)
        elif event is not None:
            try:
                for attempt in range(3):
                    try:
                        async with s.begin_nested():
                            outcome = await process_event(s, event, row.id, self.assigner, self.cfg)
                        break
                    except IntegrityError as exc:
                        # Another transaction created the same contact point or lead first:
                        # match again, now against what it committed.
                        self._invalidate()
                        if attempt == 2:
                            raise
                        log.info("race_retry", event_id=row.id, error=str(exc.orig)[:200])
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"[:2000]
                self._invalidate()
        now = utcnow()
        if error is None and outcome is not None:
            row.status = "processed"
            row.processed_at = now
            row.last_error = None
            row.next_attempt_at = None
            row.lead_id, row.client_id = outcome.lead_id, outcome.client_id
            row.interaction_id = outcome.interaction_id
        else:
            row.attempts += 1
            row.status = "failed"
            row.last_error = error
            row.next_attempt_at = now + timedelta(seconds=backoff_seconds(row.attempts))
        return (
            Persisted(
                event_id=row.id,
                duplicate=False,
                status=row.status,
                lead_id=row.lead_id,
                client_id=row.client_id,
                interaction_id=row.interaction_id,
                error=row.last_error,
                channel=row.channel,
            ),
            outcome if error is None else None,
        )

    async def _mark_failed_alone(self, event_id: int, exc: Exception) -> None:
        with contextlib.suppress(Exception):
            async with self.db.transaction() as s:
                row = await s.get(InboxEvent, event_id)
                if row is not None:
                    row.attempts += 1
                    row.status = "failed"
                    row.last_error = f"{type(exc).__name__}: {exc}"[:2000]
                    row.next_attempt_at = utcnow() + timedelta(
                        seconds=backoff_seconds(row.attempts)
                    )

    def _finish(self, event_id: int, result: Persisted) -> None:
        self._pending.discard(event_id)
        self._done[event_id] = result
        while len(self._done) > 10_000:
            self._done.popitem(last=False)
        for fut in self._waiters.pop(event_id, []):
            if not fut.done():
                fut.set_result(result)

    async def replay(self, event_id: int) -> Persisted | None:
        """Operator replay of one event (failed or not): process it again now."""
        async with self.db.transaction() as s:
            row = await s.get(InboxEvent, event_id)
            if row is None:
                return None
            row.status = "processing"
            row.next_attempt_at = utcnow() + LEASE
        await self.process_ids([event_id], fresh=False, claimed=True)
        return self._done.get(event_id)

    def describe(self) -> dict[str, Any]:
        return {
            "processed": self.stats.processed,
            "failed": self.stats.failed,
            "batches": self.stats.batches,
            "waiting": len(self._waiters),
            "backlog": self.backlog,
        }


def _key(event: InboundEvent) -> tuple[str, str, str]:
    return (event.channel.value, event.kind.value, event.external_id[:500])


_T = cast(Table, InboxEvent.__table__)
_ATTACHMENTS = cast(Table, AttachmentRow.__table__)
_MARK_PROCESSED = (
    update(_T)
    .where(_T.c.id == bindparam("b_id"))
    .values(
        status="processed",
        processed_at=bindparam("b_at"),
        last_error=None,
        next_attempt_at=None,
        lead_id=bindparam("b_lead"),
        client_id=bindparam("b_client"),
        interaction_id=bindparam("b_inter"),
    )
)


async def _existing(
    s: AsyncSession, keys: list[tuple[str, str, str]]
) -> dict[tuple[str, str, str], Persisted]:
    """The rows of earlier deliveries (a duplicate is answered with the first one)."""
    q = select(
        _T.c.id,
        _T.c.channel,
        _T.c.kind,
        _T.c.external_id,
        _T.c.status,
        _T.c.lead_id,
        _T.c.client_id,
        _T.c.interaction_id,
        _T.c.last_error,
    ).where(tuple_(_T.c.channel, _T.c.kind, _T.c.external_id).in_(keys))
    out: dict[tuple[str, str, str], Persisted] = {}
    for r in await s.execute(q):
        out[(r.channel, r.kind, r.external_id)] = Persisted(
            event_id=r.id,
            duplicate=True,
            status=r.status,
            lead_id=r.lead_id,
            client_id=r.client_id,
            interaction_id=r.interaction_id,
            error=r.last_error,
        )
    return out


async def _reserve_ids(s: AsyncSession, table: str, n: int, *, postgres: bool) -> deque[int]:
    """``n`` primary keys of ``table`` for rows this transaction will insert, in order.

    PostgreSQL: taken from the table's sequence (a rolled-back batch leaves a gap, as any
    rolled-back insert does).  SQLite: the batch holds the single writer lock (``BEGIN
    IMMEDIATE``) from its first statement, so nobody else inserts until it commits and
    the ids after the current maximum are free."""
    if n <= 0:
        return deque()
    if postgres:
        rows = await s.execute(
            text("SELECT nextval(pg_get_serial_sequence(:t, 'id')) FROM generate_series(1, :n)"),
            {"t": table, "n": n},
        )
        return deque(sorted(int(r[0]) for r in rows))
    top = await s.scalar(text(f"SELECT coalesce(max(id), 0) FROM {table}"))
    return deque(range(int(top or 0) + 1, int(top or 0) + 1 + n))
