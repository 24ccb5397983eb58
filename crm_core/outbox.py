"""The one outbox: click-to-call, email replies, Telegram and VK replies.

Commands are written in the caller's transaction with an idempotency key (a retried
API request finds the same row), executed by a worker that claims rows with
``FOR UPDATE SKIP LOCKED`` on PostgreSQL, retried with backoff, and logged as outbound
interactions when they succeed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.background import BackgroundTask
from crm_core.db import Database
from crm_core.live import LiveHub
from crm_core.models import ContactPoint, Interaction, OutboxCommand, utcnow
from crm_core.pipeline.replies import close_first_reply
from crm_core.pipeline.worker import backoff_seconds
from crm_core.ports import OutboundCommand, OutboundExecutor, OutboundResult, OutboundStatus

__all__ = ["CALL_MAX_AGE", "CALL_MAX_ATTEMPTS", "OutboxWorker", "enqueue"]

log = structlog.get_logger("crmhub.outbox")
LEASE = timedelta(seconds=120)
MAX_ATTEMPTS = 10
# What a successful command leaves on the timeline (calls are logged by call tracking).
LOGGED = {"send_email": ("email", "email_sent"), "send_message": (None, "message_sent")}
# Click-to-call is interactive: an operator waits by the phone, so a call that cannot be
# placed quickly fails at once ("PBX down") instead of ringing minutes later.
CALL_MAX_ATTEMPTS = 2
CALL_MAX_AGE = timedelta(seconds=60)
CALL_RETRY_SECONDS = 2.0


async def enqueue(
    s: AsyncSession,
    *,
    channel: str,
    kind: str,
    payload: Mapping[str, Any],
    idempotency_key: str,
    created_by: int | None = None,
    client_id: int | None = None,
    lead_id: int | None = None,
    deal_id: int | None = None,
    task_id: int | None = None,
) -> tuple[OutboxCommand, bool]:
    """Add a command (or find the one with the same key). Returns (row, created)."""
    existing = await s.scalar(
        select(OutboxCommand).where(OutboxCommand.idempotency_key == idempotency_key)
    )
    if existing is not None:
        return existing, False
    row = OutboxCommand(
        channel=channel,
        kind=kind,
        payload=dict(payload),
        idempotency_key=idempotency_key,
        created_by=created_by,
        client_id=client_id,
        lead_id=lead_id,
        deal_id=deal_id,
        task_id=task_id,
        status="pending",
        next_attempt_at=utcnow(),
    )
    s.add(row)
    await s.flush()
    return row, True


class OutboxWorker:
    def __init__(
        self,
        db: Database,
        executors: Mapping[str, OutboundExecutor],
        live: LiveHub | None = None,
        *,
        poll_interval: float = 1.0,
        on_result: Callable[[str, str], None] | None = None,
    ) -> None:
        self.db = db
        self.executors = dict(executors)
        self.live = live
        self.poll_interval = poll_interval
        self.on_result = on_result
        self._wake = asyncio.Event()
        self._bg = BackgroundTask(self._run, "outbox-worker")

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._bg.start()

    async def stop(self) -> None:
        await self._bg.stop()

    async def _run(self) -> None:
        while True:
            try:
                done = await self.run_once()
            except Exception as exc:
                log.error("outbox_loop_error", error=repr(exc))
                done = 0
            if not done:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_interval)
                self._wake.clear()

    async def _claim(self, limit: int = 20) -> list[OutboxCommand]:
        now = utcnow()
        T = OutboxCommand
        due = or_(
            and_(T.status == "pending", or_(T.next_attempt_at.is_(None), T.next_attempt_at <= now)),
            and_(T.status == "sending", T.locked_until < now),
        )
        q = select(T).where(due, T.channel.in_(list(self.executors))).order_by(T.id).limit(limit)
        if self.db.is_postgres:
            q = q.with_for_update(skip_locked=True)
        async with self.db.transaction() as s:
            rows = list(await s.scalars(q))
            for r in rows:
                r.status = "sending"
                r.attempts += 1
                r.locked_until = now + LEASE
        return rows

    async def run_once(self) -> int:
        rows = await self._claim()
        for row in rows:
            await self._execute(row)
        return len(rows)

    async def _execute(self, row: OutboxCommand) -> None:
        executor = self.executors[row.channel]
        if row.channel == "call" and utcnow() - row.created_at > CALL_MAX_AGE:
            detail = f"PBX down: the call was not placed within {CALL_MAX_AGE.seconds} s"
            await self._record(row.id, OutboundResult(OutboundStatus.FAILED, detail=detail))
            return
        cmd = OutboundCommand(
            id=row.id,
            channel=row.channel,
            kind=row.kind,
            idempotency_key=row.idempotency_key,
            payload=row.payload,
            attempt=row.attempts,
        )
        try:
            result = await executor.execute(cmd)
        except Exception as exc:  # an executor bug must not lose the command
            result = OutboundResult(OutboundStatus.RETRY, detail=f"{type(exc).__name__}: {exc}")
        await self._record(row.id, result)

    async def _record(self, row_id: int, result: OutboundResult) -> None:
        now = utcnow()
        interaction_id = None
        async with self.db.transaction() as s:
            row = await s.get(OutboxCommand, row_id)
            if row is None:
                return
            if result.status == OutboundStatus.SENT:
                row.status = "sent"
                row.sent_at = now
                row.external_id = result.external_id
                row.last_error = None
                interaction_id = await self._log_sent(s, row, result)
            elif result.status == OutboundStatus.RETRY and _may_retry(row, now):
                row.status = "pending"
                wait = (  # the channel said how long to wait (429 RetryAfter): do as told
                    result.retry_after
                    if result.retry_after is not None
                    else backoff_seconds(row.attempts)
                )
                if row.channel == "call":
                    wait = CALL_RETRY_SECONDS
                row.next_attempt_at = now + timedelta(seconds=wait)
                row.last_error = result.detail
            else:
                row.status = "failed"
                row.last_error = result.detail or "failed"
                if row.channel == "call":
                    if result.status == OutboundStatus.RETRY:
                        row.last_error = f"PBX down: {result.detail or 'unavailable'}"
                    interaction_id = await self._log_failed_call(s, row)
            unreachable = (result.meta or {}).get("unreachable")
            if unreachable and ":" in str(unreachable):
                kind, value = str(unreachable).split(":", 1)
                await s.execute(
                    update(ContactPoint)
                    .where(ContactPoint.kind == kind, ContactPoint.value == value)
                    .values(unreachable=True, unreachable_reason=(result.detail or "")[:300])
                )
            status, channel = row.status, row.channel
            payload = {
                "outbox_id": row.id,
                "channel": row.channel,
                "kind": row.kind,
                "status": row.status,
                "error": row.last_error,
                "interaction_id": interaction_id,
                "client_id": row.client_id,
                "lead_id": row.lead_id,
                "deal_id": row.deal_id,
            }
            creator = row.created_by
        log.info("outbox_result", outbox_id=row_id, channel=channel, status=status)
        if self.on_result is not None:
            self.on_result(channel, status)
        if self.live is not None and creator is not None:
            await self.live.publish("outbox_status", payload, user_ids=[creator])

    async def _log_failed_call(self, s: AsyncSession, row: OutboxCommand) -> int | None:
        """A click-to-call that never rang: an outbound ``call_ended`` with outcome
        ``failed`` on the client's, lead's or deal's timeline (once per command)."""
        exists = await s.scalar(select(Interaction.id).where(Interaction.outbox_id == row.id))
        if exists is not None:
            return exists
        p = row.payload
        inter = Interaction(
            client_id=row.client_id,
            lead_id=row.lead_id,
            deal_id=row.deal_id,
            channel="call",
            direction="out",
            kind="call_ended",
            outcome="failed",
            duration_s=0,
            ring_s=0,
            body=row.last_error,
            user_id=row.created_by,
            outbox_id=row.id,
            meta={
                "crm_call_id": p.get("crm_call_id") or row.idempotency_key,
                "caller": p.get("number"),
                "operator": p.get("extension"),
                "pbx": p.get("pbx"),
                "click_to_call": True,
                "outcome": "failed",
                "error": row.last_error,
                "outbox_id": row.id,
            },
            occurred_at=utcnow(),
        )
        s.add(inter)
        await s.flush()
        return inter.id

    async def _log_sent(
        self, s: AsyncSession, row: OutboxCommand, result: OutboundResult
    ) -> int | None:
        if row.kind not in LOGGED or row.payload.get("private"):
            return None  # private: a sign-in link, never shown on a timeline
        exists = await s.scalar(select(Interaction.id).where(Interaction.outbox_id == row.id))
        if exists is not None:  # sent again after a lost result: logged once
            return exists
        p = row.payload
        message_key = (result.external_id or "").strip("<>") or None
        if row.channel in ("telegram", "vk") and result.external_id:
            chat = p.get("chat_id") or p.get("peer_id")
            scope = p.get("bot") or p.get("group_id") or ""
            message_key = f"{scope}:{chat}:{result.external_id}"
        inter = Interaction(
            client_id=row.client_id,
            lead_id=row.lead_id,
            deal_id=row.deal_id,
            channel=row.channel,
            direction="out",
            kind=LOGGED[row.kind][1],
            subject=p.get("subject"),
            body=p.get("text"),
            html=p.get("html"),
            thread_id=p.get("thread_id"),
            message_key=message_key,
            user_id=row.created_by,
            outbox_id=row.id,
            meta={
                "to": p.get("to"),
                "cc": p.get("cc"),
                "from": [p.get("from")] if p.get("from") else [],
                "references": [r.strip("<>") for r in p.get("references") or []],
                "files": [Path(str(f)).name for f in p.get("files") or []],
                "outbox_id": row.id,
            },
            occurred_at=utcnow(),
        )
        s.add(inter)
        await s.flush()
        await close_first_reply(
            s, lead_id=row.lead_id, client_id=row.client_id, at=inter.occurred_at, how=row.channel
        )
        return inter.id


def _may_retry(row: OutboxCommand, now: Any) -> bool:
    if row.channel == "call":
        return row.attempts < CALL_MAX_ATTEMPTS and now - row.created_at < CALL_MAX_AGE
    return row.attempts < MAX_ATTEMPTS
