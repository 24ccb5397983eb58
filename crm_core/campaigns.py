"""Sending campaigns: ``CampaignRunner`` (a job per campaign) and ``test_send``.

A campaign in ``sending`` (or ``scheduled`` whose time came) is claimed like a job:
a lease on the campaign row (``locked_by`` / ``locked_until``, ``FOR UPDATE SKIP
LOCKED`` on PostgreSQL), renewed by a heartbeat that also notices pause and cancel.
The first claim writes the recipient list and one outbox command per recipient
(``crm_core.services.campaigns.materialize``).

Exactly once.  Each recipient goes ``pending -> sending -> sent`` (or ``failed``, or
back to ``pending`` after a 4xx with a backoff).  ``sending`` is committed BEFORE the
SMTP transaction starts and the outcome right after it ends; a committer groups the
marks of all connections into one transaction (group commit) and keeps their order,
so each connection has at most one recipient in ``sending`` at any committed moment.
After a crash the next claim turns every ``sending`` recipient into ``unknown``: the
message may or may not have reached the server, a person decides; nothing is resent
blindly.  At most ``concurrency`` recipients can be ``unknown`` per crash.

Limits.  Per SMTP account: ``concurrency`` connections (one worker per connection,
kept open), and messages per minute / hour / day (counted from what this account sent,
including before a restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog
from sqlalchemy import bindparam, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.access import Actor, visible_clients
from crm_core.background import BackgroundTask, poll_claims, poll_forever
from crm_core.db import Database
from crm_core.models import (
    Campaign,
    CampaignRecipient,
    Client,
    ContactPerson,
    Interaction,
    OutboxCommand,
    User,
    utcnow,
)
from crm_core.ports import OutboundResult, OutboundStatus
from crm_core.services import campaigns as svc
from crm_core.services.common import Invalid, NotFound

__all__ = ["CampaignRunner", "CampaignTransport", "RateLimiter", "test_send"]

log = structlog.get_logger("crmhub.campaigns")
MAX_ATTEMPTS = 8  # 4xx replies for one recipient before it is failed
FEED_BATCH = 200


class CampaignTransport(Protocol):
    """The SMTP side (``connectors.email.CampaignSmtp``)."""

    def accounts(self) -> list[str]: ...

    def limits(self, account: str) -> dict[str, int]: ...

    def sender(self, account: str) -> tuple[str, str]: ...

    async def check(self, account: str) -> str | None: ...

    async def send(
        self, account: str, payload: Mapping[str, Any], slot: int | None = None
    ) -> OutboundResult: ...

    async def close(self) -> None: ...


class RateLimiter:
    """Messages per minute, hour and day (0: no limit) over a sliding window."""

    WINDOWS = (("per_minute", 60.0), ("per_hour", 3600.0), ("per_day", 86400.0))

    def __init__(self, limits: Mapping[str, int], history: list[float] | None = None) -> None:
        self.windows = [
            (span, int(limits.get(name) or 0), deque[float]())
            for name, span in self.WINDOWS
            if limits.get(name)
        ]
        for t in sorted(history or []):
            for _span, _limit, dq in self.windows:
                dq.append(t)
        self._lock = asyncio.Lock()

    @property
    def longest(self) -> float:
        return max((span for span, _l, _d in self.windows), default=0.0)

    async def acquire(self, stopped: Callable[[], bool] = lambda: False) -> bool:
        """Wait for a free place; False when ``stopped()`` became true meanwhile."""
        if not self.windows:
            return not stopped()
        async with self._lock:
            while True:
                if stopped():
                    return False
                now = time.time()
                wait = 0.0
                for span, limit, dq in self.windows:
                    while dq and dq[0] <= now - span:
                        dq.popleft()
                    if len(dq) >= limit:
                        wait = max(wait, dq[0] + span - now)
                if wait <= 0:
                    for _span, _limit, dq in self.windows:
                        dq.append(now)
                    return True
                await asyncio.sleep(min(wait, 0.5))


# -- group commit ---------------------------------------------------------------------


@dataclass(slots=True)
class _Op:
    kind: str  # sending | sent | retry | failed | unknown | noop
    recipient_id: int = 0
    outbox_id: int | None = None
    message_id: str | None = None
    error: str | None = None
    retry_at: datetime | None = None
    log: dict[str, Any] = field(default_factory=dict)  # sent: the timeline entry


class LeaseLost(RuntimeError):
    """Another process holds the campaign now: send nothing more here."""


class _Committer:
    """Applies the marks of all connections in order, many per transaction.

    ``sending`` marks are written only while this process still holds the campaign's
    lease, checked in the same transaction (on PostgreSQL with the campaign row locked,
    so a claim by another process cannot slip in between): a process that lost its
    lease (stalled past it) starts no SMTP transaction another process may also start."""

    def __init__(self, db: Database, campaign_id: int = 0, holder: str = "") -> None:
        self.db = db
        self.campaign_id = campaign_id
        self.holder = holder
        self._ops: list[tuple[_Op, asyncio.Future[None] | None]] = []
        self._event = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.failed: BaseException | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="campaign-committer")

    async def stop(self) -> None:
        await self.flush()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def submit(self, op: _Op) -> None:
        self._ops.append((op, None))
        self._event.set()

    async def submit_wait(self, op: _Op) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._ops.append((op, fut))
        self._event.set()
        await fut

    async def flush(self) -> None:
        if self.failed is None:
            with contextlib.suppress(Exception):
                await self.submit_wait(_Op("noop"))

    async def _run(self) -> None:
        while True:
            await self._event.wait()
            self._event.clear()
            batch, self._ops = self._ops, []
            if not batch:
                continue
            error: BaseException | None = None
            refused: set[int] = set()
            for attempt in range(8):
                try:
                    async with self.db.transaction() as s:
                        ops = [op for op, _ in batch]
                        if self.holder and any(op.kind == "sending" for op in ops):
                            q = select(Campaign.locked_by).where(Campaign.id == self.campaign_id)
                            if self.db.is_postgres:
                                q = q.with_for_update()
                            if await s.scalar(q) != self.holder:
                                refused = {id(op) for op in ops if op.kind == "sending"}
                                ops = [op for op in ops if op.kind != "sending"]
                        await _apply(s, ops)
                    error = None
                    break
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the database is busy or away: try again
                    error = exc
                    log.warning("campaign_commit_retry", error=str(exc)[:300], attempt=attempt)
                    await asyncio.sleep(min(0.1 * 2**attempt, 5.0))
            if error is not None:
                self.failed = error
            for op, fut in batch:
                if fut is not None and not fut.done():
                    if id(op) in refused:
                        fut.set_exception(LeaseLost("the campaign's lease went to another process"))
                    elif error is None:
                        fut.set_result(None)
                    else:
                        fut.set_exception(error)


_RT: Any = CampaignRecipient.__table__
_OT: Any = OutboxCommand.__table__
_IT: Any = Interaction.__table__


def _r(**values: Any) -> Any:
    return (
        update(_RT)
        .where(_RT.c.id == bindparam("b_rid"))
        .values(updated_at=bindparam("b_now"), **values)
    )


def _o(**values: Any) -> Any:
    return update(_OT).where(_OT.c.id == bindparam("b_oid")).values(**values)


# One statement per kind of mark, run as executemany (Core: no ORM bookkeeping).
_MARKS: dict[str, tuple[Any, Any]] = {
    "sending": (  # the outbox row keeps "pending" until the outcome (one write less)
        _r(
            status="sending", message_id=bindparam("b_mid"), error=None, attempts=_RT.c.attempts + 1
        ),
        None,
    ),
    "sent": (
        _r(status="sent", sent_at=bindparam("b_now"), error=None),
        _o(
            status="sent",
            sent_at=bindparam("b_now"),
            external_id=bindparam("b_mid"),
            last_error=None,
            attempts=_OT.c.attempts + 1,
        ),
    ),
    "retry": (
        _r(status="pending", next_attempt_at=bindparam("b_at"), error=bindparam("b_err")),
        _o(
            status="pending",
            next_attempt_at=bindparam("b_at"),
            last_error=bindparam("b_err"),
            attempts=_OT.c.attempts + 1,
        ),
    ),
    "failed": (
        _r(status=bindparam("b_st"), error=bindparam("b_err")),
        _o(status=bindparam("b_st"), last_error=bindparam("b_err"), attempts=_OT.c.attempts + 1),
    ),
}


async def _apply(s: AsyncSession, ops: list[_Op]) -> None:
    """Write one group of marks (in submission order within each kind; a recipient's
    own marks never share a group: its worker waits for ``sending`` to commit)."""
    now = utcnow()
    groups: dict[str, list[_Op]] = {}
    for op in ops:
        if op.kind != "noop":
            kind = "failed" if op.kind in ("unknown", "suppressed") else op.kind
            groups.setdefault(kind, []).append(op)
    sent = groups.get("sent") or []
    if sent:
        await s.execute(
            insert(_IT),
            [
                {
                    "client_id": op.log.get("client_id"),
                    "channel": "email",
                    "direction": "out",
                    "kind": "email_sent",
                    "classification": "regular",
                    "subject": (op.log.get("subject") or "")[:1000],
                    "body": op.log.get("text"),
                    "thread_id": op.message_id,
                    "message_key": op.message_id,
                    "outbox_id": op.outbox_id,
                    "meta": {
                        "campaign_id": op.log.get("campaign_id"),
                        "campaign": op.log.get("campaign"),
                        "recipient_id": op.recipient_id,
                        "to": [op.log.get("email")],
                        "from": [op.log.get("from")],
                        "references": [],
                    },
                    "occurred_at": now,
                    "created_at": now,
                }
                for op in sent
            ],
        )
    for kind, items in groups.items():
        rows = [
            {
                "b_rid": op.recipient_id,
                "b_oid": op.outbox_id,
                "b_now": now,
                "b_mid": op.message_id,
                "b_at": op.retry_at,
                "b_err": op.error,
                "b_st": op.kind,
            }
            for op in items
        ]
        r_stmt, o_stmt = _MARKS[kind]
        await s.execute(r_stmt, rows)
        boxed = [r for r in rows if r["b_oid"] is not None]
        if boxed and o_stmt is not None:
            await s.execute(o_stmt, boxed)


# -- the runner -----------------------------------------------------------------------


@dataclass(slots=True)
class _Run:
    """One claimed campaign while this process sends it."""

    id: int
    name: str
    account: str
    templates: svc.Templates
    custom_keys: list[str]
    from_header: str
    domain: str
    policy: svc.CampaignPolicy
    stop: bool = False
    owners: dict[int, dict[str, Any]] = field(default_factory=dict)


@dataclass(slots=True)
class _Item:
    recipient_id: int
    outbox_id: int | None
    email: str
    attempts: int
    client: dict[str, Any] | None
    contact: dict[str, Any] | None
    owner_id: int | None


class CampaignRunner:
    """``start()`` / ``stop()``; ``wake()`` after a start or resume; ``run_once()`` runs
    every claimable campaign to its end (tests and the bench drive it directly)."""

    def __init__(
        self,
        db: Database,
        transport: CampaignTransport,
        policy: svc.CampaignPolicy,
        *,
        lease_seconds: float = 30.0,
        poll_interval: float = 2.0,
        retry_base: float = 60.0,
        name: str | None = None,
    ) -> None:
        self.db = db
        self.transport = transport
        self.policy = policy
        self.lease = timedelta(seconds=lease_seconds)
        self.poll_interval = poll_interval
        self.retry_base = retry_base
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._limiters: dict[str, RateLimiter] = {}
        self._wake = asyncio.Event()
        self._bg = BackgroundTask(self._loop, "campaign-runner")
        self.on_sent: Callable[[int], None] | None = None  # metrics: messages sent

    def start(self) -> None:
        self._bg.start()

    async def stop(self) -> None:
        await self._bg.stop()
        await self._release()
        await self.transport.close()

    def wake(self) -> None:
        self._wake.set()

    async def _loop(self) -> None:
        await poll_forever(
            self.run_once,
            self._wake,
            self.poll_interval,
            lambda exc: log.warning("campaign_runner_error", error=str(exc)[:500]),
        )

    async def run_once(self) -> int:
        return await poll_claims(self.claim, self.run_campaign)

    async def claim(self) -> int | None:
        now = utcnow()
        C = Campaign
        q = (
            select(C)
            .where(
                or_(C.status == "sending", (C.status == "scheduled") & (C.send_at <= now)),
                or_(C.locked_until.is_(None), C.locked_until < now),
            )
            .order_by(C.id)
            .limit(1)
        )
        if self.db.is_postgres:
            q = q.with_for_update(skip_locked=True)
        async with self.db.transaction() as s:
            row = await s.scalar(q)
            if row is None:
                return None
            row.status = "sending"
            row.locked_by = self.name
            row.locked_until = now + self.lease
            return row.id

    async def _release(self) -> None:
        with contextlib.suppress(Exception):
            async with self.db.transaction() as s:
                await s.execute(
                    update(Campaign)
                    .where(Campaign.locked_by == self.name)
                    .values(locked_until=None, locked_by=None)
                )

    async def _prepare(self, campaign_id: int) -> _Run | None:
        """Recover what a dead sender left in flight, write the recipient list once."""
        async with self.db.transaction() as s:
            c = await s.get(Campaign, campaign_id)
            if c is None or c.locked_by != self.name or c.status != "sending":
                return None
            R = CampaignRecipient
            lost = list(
                await s.scalars(
                    select(R.outbox_id).where(R.campaign_id == c.id, R.status == "sending")
                )
            )
            if lost:
                why = (
                    "the sending process stopped during the SMTP transaction: "
                    "check before resending"
                )
                await s.execute(
                    update(R)
                    .where(R.campaign_id == c.id, R.status == "sending")
                    .values(status="unknown", error=why, updated_at=utcnow())
                )
                ids = [i for i in lost if i is not None]
                if ids:
                    await s.execute(
                        update(OutboxCommand)
                        .where(OutboxCommand.id.in_(ids))
                        .values(status="unknown", last_error=why)
                    )
                log.warning("campaign_unknown_after_crash", campaign=c.id, recipients=len(lost))
            starter = await s.get(User, c.started_by) if c.started_by else None
            if starter is None or not starter.active:
                c.status, c.error = "paused", "the user who started the campaign is not active"
                return None
            if not c.materialized:
                try:
                    c.total = await svc.materialize(s, c, Actor.of(starter))
                except Invalid as exc:
                    # A segment vanished after start: back to draft, with the reason.
                    c.status, c.error, c.locked_by, c.locked_until = (
                        "draft",
                        exc.message,
                        None,
                        None,
                    )
                    return None
                c.materialized = True
            if c.smtp_account not in self.transport.accounts():
                c.status = "paused"
                c.error = f"SMTP account {c.smtp_account!r} is not configured"
                return None
            templates = svc.Templates(c.subject, c.html, c.text)
            keys = await svc._custom_keys(s)
            from_header, domain = self.transport.sender(c.smtp_account)
            policy = await svc.with_secret(s, self.policy)
            return _Run(c.id, c.name, c.smtp_account, templates, keys, from_header, domain, policy)

    async def _limiter(self, account: str) -> RateLimiter:
        limiter = self._limiters.get(account)
        if limiter is None:
            limits = self.transport.limits(account)
            limiter = RateLimiter(limits)
            if limiter.longest:
                since = utcnow() - timedelta(seconds=limiter.longest)
                async with self.db.sessions() as s:
                    sent = await s.scalars(
                        select(CampaignRecipient.sent_at)
                        .join(Campaign, Campaign.id == CampaignRecipient.campaign_id)
                        .where(Campaign.smtp_account == account, CampaignRecipient.sent_at >= since)
                    )
                    history = [t.timestamp() for t in sent if t is not None]
                limiter = RateLimiter(limits, history)
            self._limiters[account] = limiter
        return limiter

    async def run_campaign(self, campaign_id: int) -> None:
        try:
            run = await self._prepare(campaign_id)
        except Exception as exc:
            log.warning("campaign_prepare_failed", campaign=campaign_id, error=str(exc)[:500])
            await self._release_one(campaign_id)
            raise
        if run is None:
            await self._release_one(campaign_id)
            return
        log.info("campaign_sending", campaign=run.id, name=self.name)
        concurrency = max(1, int(self.transport.limits(run.account).get("concurrency") or 1))
        limiter = await self._limiter(run.account)
        committer = _Committer(self.db, run.id, self.name)
        committer.start()
        queue: asyncio.Queue[_Item | None] = asyncio.Queue(maxsize=concurrency * 4)
        workers = [
            asyncio.create_task(self._worker(run, slot, queue, limiter, committer))
            for slot in range(concurrency)
        ]
        heart = asyncio.create_task(self._heartbeat(run))
        try:
            await self._feed(run, queue, committer)
        finally:
            run.stop = True
            for _ in workers:
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(None)
            # Drain what was queued but not started (they stay pending).
            await asyncio.gather(*workers, return_exceptions=True)
            heart.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heart
            await committer.stop()
            await self._finish(run)

    async def _release_one(self, campaign_id: int) -> None:
        with contextlib.suppress(Exception):
            async with self.db.transaction() as s:
                await s.execute(
                    update(Campaign)
                    .where(Campaign.id == campaign_id, Campaign.locked_by == self.name)
                    .values(locked_until=None, locked_by=None)
                )

    async def _heartbeat(self, run: _Run) -> None:
        """Renew the lease; notice pause / cancel (and a lease lost to another process)."""
        interval = max(self.lease.total_seconds() / 3, 0.2)
        while not run.stop:
            await asyncio.sleep(min(interval, 1.0))
            try:
                async with self.db.transaction() as s:
                    c = await s.get(Campaign, run.id)
                    if c is None or c.locked_by != self.name or c.status != "sending":
                        run.stop = True
                        return
                    c.locked_until = utcnow() + self.lease
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("campaign_heartbeat_failed", campaign=run.id, error=str(exc)[:300])

    async def _batch(self, run: _Run, after: int) -> list[_Item]:
        R = CampaignRecipient
        now = utcnow()
        q = (
            select(R, Client, ContactPerson)
            .outerjoin(Client, Client.id == R.client_id)
            .outerjoin(ContactPerson, ContactPerson.id == R.contact_person_id)
            .where(
                R.campaign_id == run.id,
                R.status == "pending",
                R.id > after,
                or_(R.next_attempt_at.is_(None), R.next_attempt_at <= now),
            )
            .order_by(R.id)
            .limit(FEED_BATCH)
        )
        async with self.db.sessions() as s:
            rows = (await s.execute(q)).all()
            items = []
            for r, client, person in rows:
                items.append(
                    _Item(
                        recipient_id=r.id,
                        outbox_id=r.outbox_id,
                        email=r.email,
                        attempts=r.attempts,
                        client=svc.client_context(client, run.custom_keys) if client else None,
                        contact=(
                            {"name": person.name, "position": person.position or ""}
                            if person
                            else None
                        ),
                        owner_id=client.owner_id if client else None,
                    )
                )
            missing = {i.owner_id for i in items if i.owner_id and i.owner_id not in run.owners}
            if missing:
                for u in await s.scalars(select(User).where(User.id.in_(missing))):
                    run.owners[u.id] = svc.owner_context(u)
        return items

    async def _feed(
        self, run: _Run, queue: asyncio.Queue[_Item | None], committer: _Committer
    ) -> None:
        after = 0
        while not run.stop:
            items = await self._batch(run, after)
            if items:
                after = items[-1].recipient_id
                # Unsubscribed (or bounced) since the list was written: skip them now.
                async with self.db.sessions() as s:
                    gone = await svc.suppressed_among(s, [i.email for i in items])
                for item in items:
                    if run.stop:
                        return
                    if item.email in gone:
                        why = "the address is suppressed (unsubscribed or bounced)"
                        committer.submit(
                            _Op("suppressed", item.recipient_id, item.outbox_id, error=why)
                        )
                        continue
                    await queue.put(item)
                continue
            # Everything due was handed out: wait for it, then look again from the start
            # (retries whose time came), or finish.
            await queue.join()
            await committer.flush()
            if committer.failed is not None:
                run.stop = True
                return
            R = CampaignRecipient
            async with self.db.sessions() as s:
                left, next_at = (
                    await s.execute(
                        select(func.count(), func.min(R.next_attempt_at)).where(
                            R.campaign_id == run.id, R.status.in_(("pending", "sending"))
                        )
                    )
                ).one()
            if not left:
                async with self.db.transaction() as s:
                    c = await s.get(Campaign, run.id)
                    if c is not None and c.status == "sending" and c.locked_by == self.name:
                        c.status, c.finished_at = "done", utcnow()
                        log.info("campaign_done", campaign=run.id)
                run.stop = True
                return
            wait = 0.5
            if next_at is not None:
                wait = min(max((next_at - utcnow()).total_seconds(), 0.05), 1.0)
            await asyncio.sleep(wait)
            after = 0

    async def _finish(self, run: _Run) -> None:
        await self._release_one(run.id)

    def _payload(self, run: _Run, item: _Item) -> tuple[dict[str, Any], svc.Rendered]:
        url = svc.unsubscribe_link(run.policy, run.id, item.email)
        owner = run.owners.get(item.owner_id or 0) or svc.owner_context(None)
        ctx = {
            "client": item.client or {},
            "contact": item.contact,
            "owner": owner,
            "unsubscribe_url": url,
            "campaign": {"name": run.name},
        }
        out = run.templates.render(ctx)
        payload = {
            "from": run.from_header,
            "to": [item.email],
            "subject": out.subject,
            "text": out.text if out.text.strip() else None,
            "html": out.html if out.html.strip() else None,
            "headers": svc.unsubscribe_headers(url),
        }
        return payload, out

    async def _worker(
        self,
        run: _Run,
        slot: int,
        queue: asyncio.Queue[_Item | None],
        limiter: RateLimiter,
        committer: _Committer,
    ) -> None:
        while True:
            item = await queue.get()
            try:
                if item is None:
                    return
                if run.stop:
                    continue
                await self._one(run, slot, item, limiter, committer)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the committer gave up: stop this campaign here
                log.warning("campaign_worker_error", campaign=run.id, error=str(exc)[:300])
                run.stop = True
            finally:
                queue.task_done()

    async def _one(
        self, run: _Run, slot: int, item: _Item, limiter: RateLimiter, committer: _Committer
    ) -> None:
        base = _Op("failed", item.recipient_id, item.outbox_id)
        try:
            payload, rendered = self._payload(run, item)
        except svc.TemplateInvalid as exc:
            base.error = f"template: {exc.message}"
            committer.submit(base)
            return
        if not await limiter.acquire(lambda: run.stop):
            return
        message_id = f"crmhub.c{run.id}.r{item.recipient_id}.{secrets.token_hex(4)}@{run.domain}"
        payload["message_id"] = f"<{message_id}>"
        await committer.submit_wait(_Op("sending", item.recipient_id, item.outbox_id, message_id))
        result = await self.transport.send(run.account, payload, slot)
        op = _Op("failed", item.recipient_id, item.outbox_id, message_id, error=result.detail)
        if result.status is OutboundStatus.SENT:
            op.kind = "sent"
            op.log = {
                "client_id": item.client["id"] if item.client else None,
                "subject": rendered.subject,
                "text": rendered.text,
                "campaign_id": run.id,
                "campaign": run.name,
                "email": item.email,
                "from": run.from_header,
            }
            if self.on_sent is not None:
                self.on_sent(1)
        elif (result.meta or {}).get("unknown"):
            op.kind = "unknown"
        elif result.status is OutboundStatus.RETRY and item.attempts + 1 < MAX_ATTEMPTS:
            op.kind = "retry"
            wait = self.retry_base * 2**item.attempts
            op.retry_at = utcnow() + timedelta(seconds=min(wait, 6 * 3600))
        committer.submit(op)


# -- test send ------------------------------------------------------------------------


async def test_send(
    db: Database,
    transport: CampaignTransport,
    actor: Actor,
    policy: svc.CampaignPolicy,
    campaign_id: int,
    *,
    client_id: int | None = None,
    to: str | None = None,
) -> dict[str, Any]:
    """The campaign's message, filled for one client, to the actor's own address."""
    from crm_core.identity import IdentityError, normalize_email

    async with db.transaction() as s:
        svc._may_manage(actor, policy)
        policy = await svc.with_secret(s, policy)
        c = await svc.get_campaign(s, actor, campaign_id)
        user = await s.get(User, actor.user_id)
        address = to or (user.email if user else "")
        try:
            address = normalize_email(address)
        except IdentityError as exc:
            raise Invalid(str(exc), "to") from None
        if client_id is None:
            starter = actor
            clients = await svc._audience_clients(s, starter, c.audience)
            client_id = await s.scalar(clients.order_by(Client.id).limit(1))
        client = None
        if client_id is not None:
            client = await s.scalar(
                select(Client).where(Client.id == client_id, visible_clients(actor))
            )
            if client is None:
                raise NotFound(f"client {client_id} not found", "client_id")
        templates = svc.Templates(c.subject, c.html, c.text)
        keys = await svc._custom_keys(s)
        if client is not None:
            ctx = await svc.recipient_context(s, policy, c, client, None, address, keys)
        else:
            ctx = svc._sample(keys, c.audience.get("addresses") == "contacts")
            ctx["unsubscribe_url"] = svc.unsubscribe_link(policy, c.id, address)
        account = c.smtp_account
        name = c.name
    if account not in transport.accounts():
        raise Invalid(f"SMTP account {account!r} is not configured", "smtp_account")
    rendered = templates.render(ctx)
    from_header, domain = transport.sender(account)
    payload = {
        "from": from_header,
        "to": [address],
        "subject": f"[TEST] {rendered.subject}",
        "text": rendered.text if rendered.text.strip() else None,
        "html": rendered.html if rendered.html.strip() else None,
        "message_id": f"<crmhub.test.c{campaign_id}.{secrets.token_hex(6)}@{domain}>",
        "headers": svc.unsubscribe_headers(str(ctx["unsubscribe_url"])),
    }
    result = await transport.send(account, payload)
    if result.status is not OutboundStatus.SENT:
        raise Invalid(f"SMTP account {account!r}: {result.detail}", "smtp_account")
    log.info("campaign_test_sent", campaign=campaign_id, name=name, to=address)
    return {"sent_to": address, "message_id": result.external_id, "subject": payload["subject"]}
