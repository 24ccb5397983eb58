"""``ImapMailbox``: one watched mailbox, from IMAP to the ingest pipeline.

One aioimaplib session per mailbox.  Per folder it keeps ``{"uidvalidity", "last_uid",
"initial_done"}`` in the :class:`StateStore` (key ``imap:{name}:{folder}``):

* first run (or a changed UIDVALIDITY): ``UID SEARCH SINCE <window>``, fetch, ingest;
* afterwards: ``UID SEARCH UID <last+1>:*``, fetch, ingest;
* then IDLE on the first folder (re-issued every ``idle_timeout``), or poll every
  ``poll_interval`` when the server has no IDLE or several folders are watched.

The stored last UID only moves after ``ingest`` returned for that message, so a crash
re-fetches at most what was not yet acknowledged; the inbox dedupes on
(channel, kind, Message-ID).  Connection loss, timeouts and auth failures reconnect
with capped, jittered backoff and show in :class:`ConnectorHealth`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import pickle
import random
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing import get_context
from typing import Any

from connectors.email.config import MAX_BATCH, ImapSettings
from connectors.email.imap_session import (
    AuthFailed,
    Fetched,
    ImapError,
    ImapSession,
    imap_date,
)
from crm_core.events import Channel, EventKind, InboundEvent
from crm_core.ports import ConnectorHealth, ConnectorState, Ingest, IngestUnavailable, StateStore

__all__ = [
    "ImapMailbox",
    "MailboxStats",
    "ParseFn",
    "default_parse",
    "state_key",
    "unparsable_event",
]

log = logging.getLogger(__name__)

ParseFn = Callable[..., InboundEvent]


def default_parse(raw: bytes, **kwargs: Any) -> InboundEvent:
    """``connectors.email.normalize.parse_message``, imported on first use."""
    from connectors.email.normalize import parse_message

    return parse_message(raw, **kwargs)


def unparsable_event(
    raw: bytes | bytearray,
    error: BaseException,
    *,
    mailbox: str,
    received_at: datetime | None,
    kind: str | None = None,
) -> InboundEvent:
    """What the inbox keeps of a fetched message the parser refused: the raw bytes and
    the error (the pipeline records it as failed; an operator can look and replay).
    ``kind``: the error's type name when it was raised elsewhere (a worker process)."""
    from connectors.email.normalize import stable_digest

    data = bytes(raw)
    return InboundEvent(
        channel=Channel.EMAIL,
        kind=EventKind.EMAIL_RECEIVED,
        external_id="sha256:" + stable_digest(data),
        occurred_at=received_at or datetime.now(UTC),
        meta={
            "mailbox": mailbox,
            "parse_error": f"{kind or type(error).__name__}: {error}"[:300],
        },
        raw=data,
        source=mailbox,
    )


def _parse_call(parse: ParseFn, raw: bytes, kwargs: dict[str, Any]) -> InboundEvent:
    """Runs in a parse worker process; the event (with ``raw``) is pickled back."""
    return parse(raw, **kwargs)


AUTO_POOL_BATCHES = 3  # parse_workers=None: a worker process for syncs this long


def _picklable(fn: object) -> bool:
    try:
        pickle.dumps(fn)
    except Exception:
        return False
    return True


class ParseFailed(Exception):
    """A parser's exception as a worker process reports it (its type name and text)."""

    def __init__(self, kind: str, text: str) -> None:
        super().__init__(text)
        self.kind = kind

    def __str__(self) -> str:
        return str(self.args[0])


_Parsed = InboundEvent | ParseFailed


def _parse_many(parse: ParseFn, items: list[tuple[bytes, dict[str, Any]]]) -> list[_Parsed]:
    """A slice of a batch parsed in one worker call (one round trip, not one a message);
    a message the parser refuses comes back as :class:`ParseFailed`."""
    out: list[_Parsed] = []
    for raw, kwargs in items:
        try:
            out.append(parse(raw, **kwargs))
        except Exception as exc:
            out.append(ParseFailed(type(exc).__name__, str(exc)))
    return out


def state_key(mailbox: str, folder: str) -> str:
    return f"imap:{mailbox}:{folder}"


@dataclass(slots=True)
class MailboxStats:
    """Counters for ``/metrics`` (read them, never write)."""

    fetched: int = 0
    ingested: int = 0
    duplicates: int = 0
    parse_failures: int = 0
    ingest_retries: int = 0
    reconnects: int = 0
    auth_failures: int = 0
    resyncs: int = 0  # UIDVALIDITY changes
    last_sync_at: datetime | None = None
    last_error: str | None = None
    failed_uids: list[tuple[str, int]] = field(default_factory=list)  # (folder, uid), last 100


class _Backoff:
    def __init__(self, initial: float, cap: float) -> None:
        self.initial, self.cap, self.attempt = initial, cap, 0

    def next(self) -> float:
        delay = min(self.cap, self.initial * (2 ** min(self.attempt, 30)))
        self.attempt += 1
        return delay * random.uniform(0.5, 1.0)

    def reset(self) -> None:
        self.attempt = 0


class ImapMailbox:
    """Watch one mailbox forever: ``task = asyncio.create_task(mb.run())``; cancel to stop."""

    def __init__(
        self,
        settings: ImapSettings,
        ingest: Ingest,
        state: StateStore,
        health: ConnectorHealth,
        parse: ParseFn = default_parse,
        *,
        session_factory: Callable[[ImapSettings], ImapSession] = ImapSession,
    ) -> None:
        self.settings = settings
        self.ingest = ingest
        self.state = state
        self.health = health
        self.parse = parse
        self.stats = MailboxStats()
        self._session_factory = session_factory
        self._session: ImapSession | None = None
        self._pool: ProcessPoolExecutor | None = None
        self._pool_size = 0
        self.synced = asyncio.Event()  # set after each completed sync pass (tests, bench)

    # -- lifecycle ------------------------------------------------------------------

    async def run(self) -> None:
        workers = self.settings.parse_workers or 0
        self._pool_size = workers
        if workers > 0:
            self._pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"))
        try:
            await self._run()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None

    async def _run(self) -> None:
        backoff = _Backoff(self.settings.backoff_initial, self.settings.backoff_max)
        first = True
        while True:
            if not first:
                self.stats.reconnects += 1
            first = False
            session = self._session_factory(self.settings)
            self._session = session
            try:
                await session.connect()
                await self._serve(session, backoff)
            except AuthFailed as exc:
                self.stats.auth_failures += 1
                self._fail(ConnectorState.AUTH_FAILED, str(exc))
            except ImapError as exc:
                self._fail(ConnectorState.RECONNECTING, str(exc))
            except OSError as exc:
                self._fail(ConnectorState.RECONNECTING, f"network error: {exc!r}")
            except asyncio.CancelledError:
                self.health.set(ConnectorState.DOWN, "stopped")
                raise
            finally:
                self._session = None
                await session.close()
            await asyncio.sleep(backoff.next())

    def _fail(self, state: ConnectorState, reason: str) -> None:
        self.stats.last_error = reason
        log.warning("imap %s: %s: %s", self.settings.name, state.value, reason)
        self.health.set(state, reason)

    async def _serve(self, session: ImapSession, backoff: _Backoff) -> None:
        s = self.settings
        self.health.set(ConnectorState.CONNECTED)
        await self.sync_all(session)
        backoff.reset()  # only after a full pass: a link that dies mid-sync keeps backing off
        use_idle = session.has_idle
        while True:
            if use_idle:
                if session.selected != s.folders[0]:
                    await session.select(s.folders[0])
                wait = s.idle_timeout
                if len(s.folders) > 1:
                    wait = min(s.idle_timeout, s.poll_interval)
                # pushed or timed out: sync anyway (one SEARCH; also a keep-alive)
                await session.idle_wait(wait)
            else:
                await asyncio.sleep(s.poll_interval)
                await session.noop()
            await self.sync_all(session)

    # -- sync -----------------------------------------------------------------------

    async def sync_all(self, session: ImapSession) -> None:
        for folder in self.settings.folders:
            await self.sync_folder(session, folder)
        self.stats.last_sync_at = datetime.now(UTC)
        self.synced.set()

    async def sync_folder(self, session: ImapSession, folder: str) -> None:
        s = self.settings
        key = state_key(s.name, folder)
        status = await session.select(folder)
        saved = await self.state.get(key) or {}
        if saved.get("uidvalidity") != status.uidvalidity:
            if saved:
                self.stats.resyncs += 1
                log.warning(
                    "imap %s/%s: UIDVALIDITY changed %s -> %s: resyncing the window",
                    s.name,
                    folder,
                    saved.get("uidvalidity"),
                    status.uidvalidity,
                )
            saved = {"uidvalidity": status.uidvalidity, "last_uid": 0, "initial_done": False}
            await self.state.set(key, dict(saved))
        last_uid = int(saved.get("last_uid") or 0)
        initial = not saved.get("initial_done")
        criteria = [f"UID {last_uid + 1}:*"]
        if initial:
            since = (datetime.now(UTC) - timedelta(days=s.initial_sync_days)).date()
            criteria.append(f"SINCE {imap_date(since)}")
        uids = [u for u in await session.uid_search(*criteria) if u > last_uid]
        progress: dict[str, Any] = {
            "uidvalidity": status.uidvalidity,
            "last_uid": last_uid,
            "initial_done": not initial,
        }
        batch = max(1, min(s.batch_size, MAX_BATCH))
        chunks = [uids[i : i + batch] for i in range(0, len(uids), batch)]
        if callable(getattr(self.ingest, "ingest_batch", None)):
            await self._sync_batches(session, folder, key, status.uidvalidity, chunks, progress)
            chunks = []
        # the next batch is fetched while this one is parsed and ingested
        ahead: asyncio.Future[list[Fetched]] | None = None
        try:
            for n, chunk in enumerate(chunks):
                if ahead is None:
                    ahead = asyncio.ensure_future(session.fetch_bodies(chunk))
                messages = await ahead
                ahead = None
                if n + 1 < len(chunks):
                    ahead = asyncio.ensure_future(session.fetch_bodies(chunks[n + 1]))
                self.stats.fetched += len(messages)
                parsed = self._parse_all(messages)
                for msg, event in zip(messages, parsed, strict=True):
                    await self._deliver(folder, status.uidvalidity, msg, event)
                    progress["last_uid"] = msg.uid
                # UIDs that vanished meanwhile are passed over too
                progress["last_uid"] = max(int(progress["last_uid"]), chunk[-1])
                await self.state.set(key, dict(progress))
        finally:
            if ahead is not None:
                ahead.cancel()
                await asyncio.gather(ahead, return_exceptions=True)
            if progress["last_uid"] != last_uid:  # keep what was acknowledged, even on errors
                await asyncio.shield(self.state.set(key, dict(progress)))
        if initial:
            top = (status.uidnext - 1) if status.uidnext else 0
            # older mail outside the window is never fetched; newer mail has UID > top
            progress["last_uid"] = max(int(progress["last_uid"]), top)
            progress["initial_done"] = True
            await self.state.set(key, dict(progress))

    async def _sync_batches(
        self,
        session: ImapSession,
        folder: str,
        key: str,
        uidvalidity: int,
        chunks: list[list[int]],
        progress: dict[str, Any],
    ) -> None:
        """The batch path (the hub's ``ingest_batch``): each chunk is fetched and parsed
        while the one before it is ingested, handed over as one batch, and the stored
        last UID moves to the chunk's end only after the batch returned (committed)."""
        last_uid = int(progress["last_uid"])
        ahead: asyncio.Task[list[InboundEvent]] | None = None
        temporary = (
            self._pool is None
            and self.settings.parse_workers is None
            and len(chunks) >= AUTO_POOL_BATCHES
            and _picklable(self.parse)
        )
        if temporary:  # a long sync: parsing in a process of its own pays
            self._pool_size = 1
            self._pool = ProcessPoolExecutor(1, mp_context=get_context("spawn"))
        try:
            for n, chunk in enumerate(chunks):
                if ahead is None:
                    ahead = asyncio.create_task(
                        self._fetch_parse(session, folder, uidvalidity, chunk)
                    )
                events = await ahead
                ahead = None
                if n + 1 < len(chunks):
                    ahead = asyncio.create_task(
                        self._fetch_parse(session, folder, uidvalidity, chunks[n + 1])
                    )
                if events:
                    await self._deliver_batch(events)
                # UIDs that vanished meanwhile are passed over too
                progress["last_uid"] = max(int(progress["last_uid"]), chunk[-1])
                await self.state.set(key, dict(progress))
        finally:
            if ahead is not None:
                ahead.cancel()
                await asyncio.gather(ahead, return_exceptions=True)
            if progress["last_uid"] != last_uid:  # keep what was acknowledged, even on errors
                await asyncio.shield(self.state.set(key, dict(progress)))
            if temporary and self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool, self._pool_size = None, 0

    def _restart_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = ProcessPoolExecutor(self._pool_size, mp_context=get_context("spawn"))

    async def _fetch_parse(
        self, session: ImapSession, folder: str, uidvalidity: int, chunk: list[int]
    ) -> list[InboundEvent]:
        messages = await session.fetch_bodies(chunk)
        self.stats.fetched += len(messages)
        parsed: list[_Parsed] = []
        if self._pool is not None:
            loop = asyncio.get_running_loop()
            workers = max(1, self._pool_size)
            step = max(1, -(-len(messages) // workers))
            parts = [
                loop.run_in_executor(
                    self._pool,
                    _parse_many,
                    self.parse,
                    [(m.raw, self._parse_kwargs(m)) for m in messages[i : i + step]],
                )
                for i in range(0, len(messages), step)
            ]
            try:
                for part in await asyncio.gather(*parts):
                    parsed.extend(part)
            except (BrokenProcessPool, OSError) as exc:  # a worker died: parse here instead
                log.warning(
                    "imap %s: parse workers failed (%r): parsing inline", self.settings.name, exc
                )
                parsed = []
                await asyncio.gather(*parts, return_exceptions=True)
                self._restart_pool()
        if len(parsed) != len(messages):
            for msg in messages:
                try:
                    parsed.append(self.parse(msg.raw, **self._parse_kwargs(msg)))
                except Exception as exc:
                    parsed.append(ParseFailed(type(exc).__name__, str(exc)))
                await asyncio.sleep(0)  # let the batch before this one go on meanwhile
        return [
            self._with_imap(folder, uidvalidity, msg, ev)
            for msg, ev in zip(messages, parsed, strict=True)
        ]

    def _with_imap(
        self, folder: str, uidvalidity: int, msg: Fetched, parsed: _Parsed
    ) -> InboundEvent:
        s = self.settings
        if isinstance(parsed, ParseFailed):
            self.stats.parse_failures += 1
            self.stats.failed_uids = [*self.stats.failed_uids[-99:], (folder, msg.uid)]
            log.warning(
                "imap %s/%s: uid %s could not be parsed: %s", s.name, folder, msg.uid, parsed
            )
            failed = unparsable_event(
                msg.raw,
                parsed,
                mailbox=s.name,
                received_at=msg.internaldate,
                kind=parsed.kind,
            )
            meta = dict(failed.meta)
            meta["imap"] = {"folder": folder, "uid": msg.uid, "uidvalidity": uidvalidity}
            return dataclasses.replace(failed, meta=meta)
        meta = dict(parsed.meta)
        meta["imap"] = {"folder": folder, "uid": msg.uid, "uidvalidity": uidvalidity}
        return dataclasses.replace(parsed, meta=meta, source=parsed.source or s.name)

    async def _deliver_batch(self, events: list[InboundEvent]) -> None:
        """Hand a batch to ``ingest_batch``, retried (all of it) until it is taken: what
        an earlier attempt committed comes back as duplicates."""
        s = self.settings
        ingest_batch = self.ingest.ingest_batch  # type: ignore[attr-defined]
        backoff = _Backoff(s.backoff_initial, s.backoff_max)
        while True:
            try:
                receipts = await ingest_batch(events)
            except IngestUnavailable as exc:
                reason = f"ingest unavailable: {exc}"
            except Exception as exc:  # never skip a message the inbox did not take
                log.exception("imap %s: ingest raised on a batch", s.name)
                reason = f"ingest error: {exc!r}"
            else:
                self.stats.ingested += len(events)
                self.stats.duplicates += sum(1 for r in receipts if getattr(r, "duplicate", False))
                return
            self.stats.ingest_retries += 1
            self.stats.last_error = reason
            await asyncio.sleep(backoff.next())

    def _parse_kwargs(self, msg: Fetched) -> dict[str, Any]:
        s = self.settings
        return {
            "mailbox": s.name,
            "own_addresses": s.own_address_set,
            "region": s.region,
            "received_at": msg.internaldate,
        }

    def _parse_all(self, messages: list[Fetched]) -> list[asyncio.Future[InboundEvent]]:
        """Start parsing a batch: in worker processes when ``parse_workers`` > 0."""
        loop = asyncio.get_running_loop()
        out: list[asyncio.Future[InboundEvent]] = []
        for msg in messages:
            if self._pool is not None:
                out.append(
                    loop.run_in_executor(
                        self._pool, _parse_call, self.parse, msg.raw, self._parse_kwargs(msg)
                    )
                )
            else:
                fut: asyncio.Future[InboundEvent] = loop.create_future()
                out.append(fut)
        return out

    async def _deliver(
        self, folder: str, uidvalidity: int, msg: Fetched, pending: asyncio.Future[InboundEvent]
    ) -> None:
        s = self.settings
        uid = msg.uid
        try:
            if self._pool is not None:
                event = await pending
            else:
                pending.cancel()
                event = self.parse(msg.raw, **self._parse_kwargs(msg))
            meta = dict(event.meta)
            meta["imap"] = {"folder": folder, "uid": uid, "uidvalidity": uidvalidity}
            event = dataclasses.replace(event, meta=meta, source=event.source or s.name)
        except Exception as exc:  # not a message at all: kept raw, failed in the inbox
            self.stats.parse_failures += 1
            self.stats.failed_uids = [*self.stats.failed_uids[-99:], (folder, uid)]
            log.warning("imap %s/%s: uid %s could not be parsed: %s", s.name, folder, uid, exc)
            event = unparsable_event(msg.raw, exc, mailbox=s.name, received_at=msg.internaldate)
            meta = dict(event.meta)
            meta["imap"] = {"folder": folder, "uid": uid, "uidvalidity": uidvalidity}
            event = dataclasses.replace(event, meta=meta)
        backoff = _Backoff(s.backoff_initial, s.backoff_max)
        while True:
            try:
                receipt = await self.ingest(event)
            except IngestUnavailable as exc:
                reason = f"ingest unavailable: {exc}"
            except Exception as exc:  # never skip a message the inbox did not take
                log.exception("imap %s: ingest raised on uid %s", s.name, uid)
                reason = f"ingest error: {exc!r}"
            else:
                self.stats.ingested += 1
                if getattr(receipt, "duplicate", False):
                    self.stats.duplicates += 1
                return
            self.stats.ingest_retries += 1
            self.stats.last_error = reason
            await asyncio.sleep(backoff.next())
