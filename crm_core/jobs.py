"""The background job runner: claims queued (or abandoned) ``jobs`` rows and runs them
in batches (today: the mass operations of ``crm_core.services.bulk``).

- Claim: ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL (any number of hub
  processes, each job taken by one), then a lease (``locked_by``, ``locked_until``)
  renewed by every batch.  A job whose lease ran out (its process died) is claimed
  again and resumes after its last committed batch (``cursor``).
- Batches: each one short transaction (on SQLite through ``Database.transaction()``,
  i.e. the process-wide writer lock, released between batches) holding the changes, the
  audit rows and the job's cursor and counters together.
- A batch that fails is retried (``MAX_ATTEMPTS``); then the job is ``failed`` with the
  error kept in ``errors``.  Stopping releases the lease so a restart resumes at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from datetime import datetime, timedelta

import structlog
from sqlalchemy import or_, select, update

from crm_core.access import Actor
from crm_core.background import BackgroundTask, poll_claims, poll_forever
from crm_core.db import Database
from crm_core.models import Job, User
from crm_core.models import utcnow as _now
from crm_core.services import bulk

__all__ = ["MAX_ATTEMPTS", "JobRunner"]

log = structlog.get_logger("crmhub.jobs")
MAX_ATTEMPTS = 3


class JobRunner:
    """``start()`` / ``stop()`` the loop; ``wake()`` after queueing a job; ``run_once()``
    runs every claimable job to the end (tests and the bench drive it directly)."""

    def __init__(
        self,
        db: Database,
        *,
        batch: int = 500,
        lease_seconds: float = 60.0,
        poll_interval: float = 2.0,
        name: str | None = None,
    ) -> None:
        self.db = db
        self.batch = batch
        self.lease = timedelta(seconds=lease_seconds)
        self.poll_interval = poll_interval
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._wake = asyncio.Event()
        self._bg = BackgroundTask(self._loop, "job-runner")

    def start(self) -> None:
        self._bg.start()

    async def stop(self) -> None:
        """Stop between batches and hand back the lease of whatever this runner held, so
        the next start (here or in another process) resumes it at once."""
        await self._bg.stop()
        await self._release()

    def wake(self) -> None:
        self._wake.set()

    async def _loop(self) -> None:
        await poll_forever(
            self.run_once,
            self._wake,
            self.poll_interval,
            lambda exc: log.warning("job_runner_error", error=str(exc)),
        )

    async def run_once(self) -> int:
        """Claim and run jobs until none is left; returns how many were run."""
        return await poll_claims(self.claim, self.run_job)

    async def claim(self) -> int | None:
        now = _now()
        async with self.db.transaction() as s:
            q = (
                select(Job)
                .where(
                    Job.status.in_(("queued", "running")),
                    or_(Job.locked_until.is_(None), Job.locked_until < now),
                )
                .order_by(Job.id)
                .limit(1)
            )
            if self.db.is_postgres:
                q = q.with_for_update(skip_locked=True)
            job = await s.scalar(q)
            if job is None:
                return None
            job.status = "running"
            job.locked_by = self.name
            job.locked_until = now + self.lease
            job.started_at = job.started_at or now
            return job.id

    async def _release(self) -> None:
        with contextlib.suppress(Exception):
            async with self.db.transaction() as s:
                await s.execute(
                    update(Job)
                    .where(Job.locked_by == self.name, Job.status == "running")
                    .values(locked_until=None, locked_by=None)
                )

    async def run_job(self, job_id: int) -> None:
        """Run one claimed job batch after batch until it is done, failed, or its lease
        went to another runner."""
        while True:
            try:
                more = await self._step(job_id)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("job_batch_failed", job=job_id, error=str(exc))
                more = await self._failed_attempt(job_id, exc)
            if not more:
                return
            await asyncio.sleep(0)  # let requests in between batches

    async def _step(self, job_id: int) -> bool:
        now = _now()
        async with self.db.transaction() as s:
            job = await s.get(Job, job_id, with_for_update=self.db.is_postgres)
            if job is None or job.status != "running" or job.locked_by != self.name:
                return False
            user = await s.get(User, job.user_id) if job.user_id is not None else None
            if user is None or not user.active:
                self._finish(job, "failed", now, "the user who started the job is not active")
                return False
            actor = Actor.of(user)
            if job.total is None:
                total, max_id, missing = await bulk.job_total(s, actor, job.selection)
                job.total = total + missing
                job.max_id = max_id
                job.processed = job.skipped = missing
                if missing:
                    job.state = {**job.state, "skipped_by_reason": {"not_found": missing}}
            res = await bulk.run_batch(s, job, actor, self.batch)
            if res.last_id is None:
                self._finish(job, "done", now)
                return False
            job.cursor = res.last_id
            job.processed += res.seen
            skipped = sum(res.skipped.values())
            job.skipped += skipped
            if res.skipped:
                reasons = dict(job.state.get("skipped_by_reason", {}))
                for k, v in res.skipped.items():
                    reasons[k] = reasons.get(k, 0) + v
                job.state = {**job.state, "skipped_by_reason": reasons}
            if res.errors and len(job.errors) < bulk.ERRORS_KEPT:
                job.errors = [*job.errors, *res.errors][: bulk.ERRORS_KEPT]
            job.attempts = 0
            job.locked_until = _now() + self.lease
            return True

    def _finish(self, job: Job, status: str, now: datetime, error: str | None = None) -> None:
        job.status = status
        job.finished_at = now
        job.locked_until = None
        if error is not None:
            job.errors = [*job.errors, {"error": error}][-bulk.ERRORS_KEPT :]
        log.info("job_finished", job=job.id, status=status, processed=job.processed)

    async def _failed_attempt(self, job_id: int, exc: Exception) -> bool:
        """Count a failed batch; after MAX_ATTEMPTS the job fails.  True: try again."""
        async with self.db.transaction() as s:
            job = await s.get(Job, job_id)
            if job is None or job.locked_by != self.name:
                return False
            job.attempts += 1
            if job.attempts >= MAX_ATTEMPTS:
                self._finish(job, "failed", _now(), f"{type(exc).__name__}: {exc}"[:500])
                return False
        await asyncio.sleep(min(0.2 * 2**job.attempts, 5.0))
        return True
