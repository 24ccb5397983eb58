"""SLA timers, task reminders and queued leads in the service: one periodic worker.

Every ``sla_poll_seconds`` the worker (in each hub process; claims are atomic, see
``crm_core.reminders``) fires due reminders, escalates breached SLAs, warns about SLAs
about to be breached and assigns queued leads; live events are published after each
commit.  ``app[SLA].tick(now=...)`` runs one round by hand (tests inject the clock).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import structlog
from aiohttp import web

from crm_core.db import Database
from crm_core.live import LiveHub
from crm_core.models import utcnow
from crm_core.outbox import enqueue
from crm_core.pipeline.queued import assign_queued
from crm_core.pipeline.rules_assigner import RulesAssigner
from crm_core.reminders import (
    Notice,
    SlaConfig,
    claim_reminders,
    claim_sla_breaches,
    claim_sla_warnings,
)
from gateway.api.keys import DB
from gateway.keys import LIVE, METRICS, SETTINGS
from gateway.observability import Metrics

__all__ = ["SLA", "SlaWorker", "setup_sla"]

log = structlog.get_logger("crmhub.sla")


class SlaWorker:
    """One round = reminders, breaches, warnings, queued leads, each in its own transaction."""

    def __init__(
        self,
        db: Database,
        live: LiveHub,
        assigner: RulesAssigner,
        *,
        cfg: SlaConfig,
        metrics: Metrics | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.live = live
        self.assigner = assigner
        self.cfg = cfg
        self.metrics = metrics
        self.clock = clock
        self._lock = asyncio.Lock()

    async def _email(self, s: Any, n: Notice) -> None:
        if n.email is None or not self.cfg.mail_from:
            return
        await enqueue(
            s,
            channel="email",
            kind="send_email",
            payload={
                "from": self.cfg.mail_from,
                "to": n.email["to"],
                "subject": n.email["subject"],
                "text": n.email["text"],
            },
            idempotency_key=n.email["key"],
        )

    async def tick(self, now: datetime | None = None) -> dict[str, int]:
        """One round at ``now`` (default: the clock); returns how many of each were sent."""
        async with self._lock:
            return await self._tick(now or self.clock())

    async def _tick(self, now: datetime) -> dict[str, int]:
        pg = self.db.is_postgres
        counts: dict[str, int] = {}
        notices: list[Notice] = []
        async with self.db.transaction() as s:
            notices = await claim_reminders(s, now, postgres=pg, limit=self.cfg.batch)
        await self._publish(notices, counts)
        async with self.db.transaction() as s:
            notices = await claim_sla_breaches(s, now, postgres=pg, limit=self.cfg.batch)
        await self._publish(notices, counts)
        async with self.db.transaction() as s:
            notices = await claim_sla_warnings(s, now, self.cfg, postgres=pg)
            for n in notices:
                await self._email(s, n)
        await self._publish(notices, counts)
        self.assigner.clock = lambda: now
        try:
            async with self.db.transaction() as s:
                notices = await assign_queued(s, self.assigner, postgres=pg, limit=self.cfg.batch)
        finally:
            self.assigner.invalidate()
        await self._publish(notices, counts)
        return counts

    async def _publish(self, notices: list[Notice], counts: dict[str, int]) -> None:
        for n in notices:
            counts[n.kind] = counts.get(n.kind, 0) + 1
            if self.metrics is not None:
                if n.kind == "sla_breached":
                    self.metrics.sla_breaches.inc()
                elif n.kind == "task_reminder":
                    self.metrics.reminders.inc()
            log.info(n.kind, **{k: v for k, v in n.payload.items() if k.endswith("_id")})
            with contextlib.suppress(Exception):
                await self.live.publish(n.kind, n.payload, user_ids=n.user_ids, owner_id=n.owner_id)

    async def run(self, interval: float) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # never let the worker die; the next round retries
                log.exception("sla_round_failed")
            await asyncio.sleep(interval)


SLA = web.AppKey("sla_worker", SlaWorker)


async def _sla_ctx(app: web.Application) -> AsyncIterator[None]:
    from gateway.routing import RULES, make_assigner

    settings = app[SETTINGS]
    db = app[DB]
    if RULES not in app:
        make_assigner(app, db)
    watcher = app[RULES]
    cfg = SlaConfig(
        warning_minutes=settings.sla_warning_minutes,
        warning_fraction=settings.sla_warning_fraction,
        mail_from=(settings.smtp.from_address if settings.smtp and settings.sla_email else None),
    )
    worker = SlaWorker(
        db,
        app[LIVE],
        RulesAssigner(lambda: watcher.current, postgres=db.is_postgres),
        cfg=cfg,
        metrics=app[METRICS],
    )
    app[SLA] = worker
    task = None
    if settings.run_workers and settings.sla_poll_seconds > 0:
        task = asyncio.create_task(worker.run(settings.sla_poll_seconds), name="sla-worker")
    yield
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def setup_sla(app: web.Application) -> None:
    """Append the reminders/SLA worker to ``app.cleanup_ctx``."""
    app.cleanup_ctx.append(_sla_ctx)
