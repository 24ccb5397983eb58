"""The hub: the one ingest pipeline every channel feeds (persist -> match -> assign ->
log -> notify), as an object the gateway starts and stops.  It implements the
``crm_core.ports.Ingest`` port that connectors are given."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import structlog

from crm_core.db import Database
from crm_core.events import Attachment, InboundEvent
from crm_core.files import write_durable
from crm_core.live import LiveHub
from crm_core.pipeline.assign import Assigner, RoundRobinAssigner
from crm_core.pipeline.inbox import InboxWriter, Persisted
from crm_core.pipeline.process import PipelineConfig
from crm_core.pipeline.worker import InboxProcessor
from crm_core.ports import IngestReceipt, IngestUnavailable

__all__ = ["Hub"]

log = structlog.get_logger("crmhub.hub")


def _store_attachment(root: Path, content: bytes) -> str:
    """Content-addressed and durable (fsynced with its directory) before the inbox row
    that names it commits."""
    digest = hashlib.sha256(content).hexdigest()
    write_durable(root / digest[:2] / digest, content)
    return digest


class Hub:
    def __init__(
        self,
        db: Database,
        *,
        cfg: PipelineConfig | None = None,
        assigner: Assigner | None = None,
        live: LiveHub | None = None,
        wait_timeout: float = 5.0,
        wait_backlog_limit: int = 16,
        on_received: Callable[[str], None] | None = None,
        on_result: Callable[[str, str], None] | None = None,
        poll_interval: float = 1.0,
    ) -> None:
        self.db = db
        self.cfg = cfg or PipelineConfig()
        self.live = live or LiveHub()
        self.assigner: Assigner = assigner or RoundRobinAssigner(postgres=db.is_postgres)
        self.wait_timeout = wait_timeout
        self.wait_backlog_limit = wait_backlog_limit
        self.on_received = on_received
        # Short processing transactions: SQLite has one writer (webhook acks wait for it),
        # and a session holding many objects makes every flush slower.
        batch_size = 2 if db.is_sqlite else 16
        self.processor = InboxProcessor(
            db,
            self.assigner,
            self.live,
            self.cfg,
            on_result=on_result,
            poll_interval=poll_interval,
            batch_size=batch_size,
        )
        self.writer = InboxWriter(db, on_persisted=self.processor.persisted)
        # Events per transaction on the lean batch path (ingest_batch): SQLite has one
        # writer, so a slice holds it for a bounded time (a fraction of a second).
        self.lean_batch = 50 if db.is_sqlite else 100
        self._durable: set[str] = set()  # attachment digests this process wrote and fsynced
        self.processor.intake_idle = self.writer.idle
        self._started = False
        self._processing = False

    async def start(self, *, process: bool = True) -> None:
        self.writer.start()
        if process:
            self.processor.start()
        self._processing = process
        self._started = True

    async def stop(self) -> None:
        await self.writer.stop()
        await self.processor.stop()
        self._started = False
        self._processing = False

    def _store_all(self, events: Sequence[InboundEvent]) -> list[InboundEvent]:
        """:meth:`_externalize` of a whole batch in one worker thread; the same content
        (a logo in every signature) is written and made durable once per batch."""
        root = Path(self.cfg.attachments_dir)
        stored: dict[bytes, str] = {}
        out: list[InboundEvent] = []
        for event in events:
            if not any(a.content is not None for a in event.attachments):
                out.append(event)
                continue
            atts: list[Attachment] = []
            for a in event.attachments:
                if a.content is None:
                    atts.append(a)
                    continue
                key = hashlib.sha256(a.content).digest()
                if key not in stored:
                    digest = key.hex()
                    if digest not in self._durable:  # made durable by this process before
                        _store_attachment(root, a.content)
                        if len(self._durable) > 100_000:
                            self._durable.clear()
                        self._durable.add(digest)
                    stored[key] = digest
                # durable in the store now: the pipeline finds it there by its digest
                atts.append(
                    dataclasses.replace(
                        a, sha256=stored[key], size=a.size or len(a.content), content=None
                    )
                )
            out.append(dataclasses.replace(event, attachments=tuple(atts)))
        return out

    async def _externalize(self, event: InboundEvent) -> InboundEvent:
        """Attachment bytes go to the content-addressed store before the inbox row, so
        the durable row refers to them by SHA-256 and a retry finds them again."""
        if not any(a.content is not None for a in event.attachments):
            return event
        root = Path(self.cfg.attachments_dir)
        atts: list[Attachment] = []
        for a in event.attachments:
            if a.content is None:
                atts.append(a)
                continue
            digest = await asyncio.to_thread(_store_attachment, root, a.content)
            atts.append(dataclasses.replace(a, sha256=digest, size=a.size or len(a.content)))
        return dataclasses.replace(event, attachments=tuple(atts))

    def _alone(self) -> bool:
        """Nothing else is being written or waits for processing in this hub."""
        return (
            self._processing
            and self.processor.running
            and self.processor.backlog == 0
            and self.writer.idle.is_set()
        )

    async def __call__(self, event: InboundEvent, *, wait: bool = False) -> IngestReceipt:
        """Persist (group commit) and, with ``wait``, wait for processing (bounded).

        A lone waiting submission is persisted and processed in one transaction
        (``InboxProcessor.process_now``); when that does not work, nothing was written
        and it takes the usual path."""
        try:
            event = await self._externalize(event)
            if wait and self._alone():
                done = await self.processor.process_now(event)
                if done is not None:
                    if self.on_received is not None:
                        self.on_received(event.channel.value)
                    return IngestReceipt(
                        event_id=done.event_id,
                        duplicate=False,
                        status=done.status,
                        lead_id=done.lead_id,
                        client_id=done.client_id,
                        interaction_id=done.interaction_id,
                        error=done.error,
                    )
            persisted = await self.writer.submit(event)
        except IngestUnavailable:
            raise
        except Exception as exc:
            log.error("ingest_unavailable", error=str(exc), channel=event.channel.value)
            raise IngestUnavailable(str(exc)) from exc
        if self.on_received is not None and not persisted.duplicate:
            self.on_received(event.channel.value)
        if not persisted.duplicate:
            self.processor._events[persisted.event_id] = event
        result: Persisted | None = persisted
        # Waiting for the lead is a courtesy to the sender (an answer with its id); under a
        # burst the event is already durable, so answer at once and let the worker catch up.
        busy = self.processor.backlog > self.wait_backlog_limit
        if wait and not busy and persisted.status in ("pending", "processing"):
            done = await self.processor.wait_for(persisted.event_id, self.wait_timeout)
            result = done or persisted
        assert result is not None
        return IngestReceipt(
            event_id=result.event_id,
            duplicate=persisted.duplicate,
            status=result.status,
            lead_id=result.lead_id,
            client_id=result.client_id,
            interaction_id=result.interaction_id,
            error=result.error,
        )

    ingest = __call__

    async def ingest_batch(self, events: Sequence[InboundEvent]) -> list[IngestReceipt]:
        """Persist a connector's batch (an initial mailbox sync) and process it.

        Returns once every event is committed, one receipt per event in order.  In
        slices of ``lean_batch`` events, each persisted and processed in one transaction
        (:meth:`InboxProcessor.persist_and_process`); a slice that does not commit that
        way is written to the inbox as usual (one transaction) and processed by the
        worker.  Raises :class:`IngestUnavailable` when a slice could not be made durable:
        the slices before it are, and a retry of the batch finds them as duplicates."""
        out: list[IngestReceipt] = []
        try:
            stored = await asyncio.to_thread(self._store_all, events)
            step = self.lean_batch
            for i in range(0, len(stored), step):
                part = stored[i : i + step]
                done = None
                if self._processing and self.processor.running:
                    done = await self.processor.persist_and_process(part)
                if done is None:
                    done = await self.writer.write_batch(part)
                    for ev, p in zip(part, done, strict=True):
                        if not p.duplicate:
                            self.processor._events[p.event_id] = ev
                for ev, p in zip(part, done, strict=True):
                    if self.on_received is not None and not p.duplicate:
                        self.on_received(ev.channel.value)
                    out.append(
                        IngestReceipt(
                            event_id=p.event_id,
                            duplicate=p.duplicate,
                            status=p.status,
                            lead_id=p.lead_id,
                            client_id=p.client_id,
                            interaction_id=p.interaction_id,
                            error=p.error,
                        )
                    )
        except IngestUnavailable:
            raise
        except Exception as exc:
            log.error("ingest_unavailable", error=str(exc), batch=len(events))
            raise IngestUnavailable(str(exc)) from exc
        return out

    async def drain(self, wait_s: float = 30.0) -> bool:
        """Wait until every event this hub persisted went through steps 3-6."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while self.processor.backlog and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        return self.processor.backlog == 0
