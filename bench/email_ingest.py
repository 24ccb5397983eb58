"""Email ingest benchmark: a local Dovecot mailbox of 2,000 real-world messages.

    .venv/bin/python bench/email_ingest.py [--messages 2000] [--rounds 3]
        [--ingest-factory module:callable]

Measures in one run (same server, same mailbox):

* ``bare``: a bare aioimaplib ``UID FETCH (UID BODY.PEEK[])`` of the whole mailbox in
  batches of 200 (the baseline);
* ``connector``: ``ImapMailbox``'s initial sync of the same mailbox through
  ``parse_message`` into the real pipeline (a ``Hub`` on a fresh temp SQLite database,
  timed until every message is matched, assigned and logged); ``--ingest-factory fake``
  uses a collecting fake, ``module:callable`` any ``Ingest`` (or awaitable of one);
* IDLE latency: 20 messages delivered one at a time with dovecot-lda while the
  connector IDLEs; the time from the delivery to the interaction committed on the
  timeline by the real pipeline.

The parser alone (``parse_message`` over the same messages, no IMAP, no database) is
timed in every round too, so ``parse_ratio`` = connector / parser compares figures
taken under the same load (target >= 0.5).  ``--db pg`` runs the hub on a fresh
PostgreSQL database, ``--per-message`` without the hub's batch entry.

Prints figures as ratios against the baseline; the last line is one JSON object:
``{"ratio", "messages_per_s", "bare_messages_per_s", "parse_only_messages_per_s",
"parse_ratio", "idle_latency_median_s", ...}``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import json
import logging
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aioimaplib  # noqa: E402
import structlog  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from connectors.email import ImapMailbox, ImapSettings  # noqa: E402
from connectors.email.imap_session import uid_set  # noqa: E402
from crm_core.db import Database, migrate  # noqa: E402
from crm_core.events import InboundEvent  # noqa: E402
from crm_core.hub import Hub  # noqa: E402
from crm_core.models import InboxEvent, Interaction  # noqa: E402
from crm_core.pipeline.process import PipelineConfig  # noqa: E402
from crm_core.ports import ConnectorHealth, Ingest, IngestReceipt  # noqa: E402
from tests.support.dovecot import DovecotServer, unique_messages  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "email"
USER, PASSWORD = "bench", "secret"
BATCH = 200


class CollectingIngest:
    def __init__(self) -> None:
        self.count = 0
        self.times: list[float] = []
        self.ids: list[str] = []

    async def __call__(self, event: InboundEvent, *, wait: bool = False) -> IngestReceipt:
        self.count += 1
        self.times.append(time.monotonic())
        self.ids.append(event.external_id)
        return IngestReceipt(event_id=self.count, duplicate=False)


class MemoryState:
    def __init__(self) -> None:
        self.data: dict[str, dict[str, Any]] = {}

    async def get(self, key: str) -> dict[str, Any] | None:
        return self.data.get(key)

    async def set(self, key: str, value: dict[str, Any]) -> None:
        self.data[key] = dict(value)


PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
DB_KIND = "sqlite"  # --db: sqlite | pg (a fresh database on PG_ADMIN's server per run)
PER_MESSAGE = False  # --per-message: the connector's path without ingest_batch


async def _pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


class HubIngest:
    """The real pipeline: a ``Hub`` (inbox, match, assign, log) on a fresh temp SQLite
    (or, with ``--db pg``, a fresh PostgreSQL database)."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="crmhub-bench-")
        self.pg_name: str | None = None
        if DB_KIND == "pg":
            self.pg_name = f"crmhub_bench_{Path(self.dir).name.replace('-', '_')}".lower()
            base = PG_ADMIN.rpartition("/")[0].replace("postgresql://", "postgresql+asyncpg://")
            self.db = Database(f"{base}/{self.pg_name}")
        else:
            self.db = Database(f"sqlite+aiosqlite:///{self.dir}/bench.db")
        self.hub = Hub(
            self.db,
            cfg=PipelineConfig(attachments_dir=f"{self.dir}/attachments"),
            poll_interval=0.1,
        )

    async def start(self) -> HubIngest:
        if self.pg_name is not None:
            await _pg_admin(f'CREATE DATABASE "{self.pg_name}"')
        await migrate(self.db)
        await self.hub.start()
        return self

    async def __call__(self, event: InboundEvent, *, wait: bool = False) -> IngestReceipt:
        return await self.hub(event, wait=wait)

    async def ingest_batch(self, events: Sequence[InboundEvent]) -> list[IngestReceipt]:
        """The batch path the gateway's ingest offers connectors (``BatchIngest``)."""
        return await self.hub.ingest_batch(events)

    async def drain(self) -> None:
        if not await self.hub.drain(600):
            raise RuntimeError("the hub did not drain")

    async def counts(self) -> tuple[int, int]:
        async with self.db.sessions() as s:
            events = await s.scalar(select(func.count()).select_from(InboxEvent))
            inters = await s.scalar(select(func.count()).select_from(Interaction))
        return int(events or 0), int(inters or 0)

    async def aclose(self) -> None:
        await self.hub.stop()
        await self.db.dispose()
        if self.pg_name is not None:
            await _pg_admin(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')
        shutil.rmtree(self.dir, ignore_errors=True)


class PerMessageHubIngest(HubIngest):
    """The hub without the batch entry: the connector hands it one message at a time."""

    ingest_batch = None  # type: ignore[assignment]


async def hub_ingest() -> HubIngest:
    """``--ingest-factory bench.email_ingest:hub_ingest`` (the default)."""
    return await (PerMessageHubIngest() if PER_MESSAGE else HubIngest()).start()


async def make_ingest(spec: str | None) -> Ingest:
    if not spec or spec == "hub":
        return await hub_ingest()
    if spec == "fake":
        return CollectingIngest()
    module, _, name = spec.partition(":")
    factory = getattr(importlib.import_module(module), name)
    made = factory()
    if inspect.isawaitable(made):
        made = await made
    ingest: Ingest = made
    return ingest


async def bare_fetch(port: int, total: int) -> float:
    """Seconds for a bare aioimaplib fetch of UIDs 1..total in batches."""
    t0 = time.perf_counter()
    client = aioimaplib.IMAP4(host="127.0.0.1", port=port, timeout=60)
    await client.wait_hello_from_server()
    await client.login(USER, PASSWORD)
    await client.select("INBOX")
    got = 0
    for start in range(1, total + 1, BATCH):
        uids = range(start, min(start + BATCH, total + 1))
        resp = await asyncio.wait_for(client.uid("fetch", uid_set(uids), "(UID BODY.PEEK[])"), 120)
        got += sum(1 for line in resp.lines if isinstance(line, bytearray))
    elapsed = time.perf_counter() - t0
    await client.logout()
    if got != total:
        raise RuntimeError(f"bare fetch got {got} of {total}")
    return elapsed


def settings(port: int, workers: int | None = None) -> ImapSettings:
    return ImapSettings(
        name="bench",
        port=port,
        tls="none",
        username=USER,
        password=PASSWORD,
        batch_size=BATCH,
        command_timeout=60,
        parse_workers=workers,
    )


async def connector_sync(port: int, total: int, spec: str | None, workers: int | None) -> float:
    ingest = await make_ingest(spec)
    mailbox = ImapMailbox(
        settings(port, workers),
        ingest,
        MemoryState(),
        ConnectorHealth(name="bench", channel="email"),
    )
    t0 = time.perf_counter()
    task = asyncio.create_task(mailbox.run())
    try:
        await asyncio.wait_for(mailbox.synced.wait(), 600)
        drain = getattr(ingest, "drain", None)
        if drain is not None:  # into the CRM: matched, assigned and logged, not just queued
            await drain()
        elapsed = time.perf_counter() - t0
        counts = getattr(ingest, "counts", None)
        if counts is not None:
            events, inters = await counts()
            if events != total or inters != total:
                raise RuntimeError(f"the CRM holds {events} events, {inters} interactions")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        close = getattr(ingest, "aclose", None)
        if close is not None:
            await close()
    if mailbox.stats.ingested != total:
        raise RuntimeError(f"connector ingested {mailbox.stats.ingested} of {total}")
    return elapsed


async def idle_latency(server: DovecotServer, count: int) -> list[float]:
    """Seconds from a delivery (dovecot-lda returned) to the message on the timeline:
    parsed, persisted, matched, assigned and its interaction committed by the real hub."""
    ingest = await hub_ingest()
    state = MemoryState()
    mailbox = ImapMailbox(
        settings(server.port),
        ingest,
        state,
        ConnectorHealth(name="bench", channel="email"),
    )
    task = asyncio.create_task(mailbox.run())
    out: list[float] = []
    stats = ingest.hub.processor.stats
    try:
        await asyncio.wait_for(mailbox.synced.wait(), 600)
        await ingest.drain()
        await asyncio.sleep(0.5)
        for i, (_mid, raw) in enumerate(unique_messages(FIXTURES, count, "idle")):
            base = stats.processed
            await asyncio.to_thread(server.deliver, USER, raw)
            t0 = time.monotonic()
            deadline = t0 + 10
            while stats.processed <= base:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"message {i} not on the timeline within 10 s")
                await asyncio.sleep(0.002)
            out.append(time.monotonic() - t0)
            await asyncio.sleep(0.1)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await ingest.aclose()
    return out


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--idle", type=int, default=20)
    ap.add_argument(
        "--parse-workers",
        type=int,
        default=None,
        help="ImapSettings.parse_workers (default: the setting's default, a worker "
        "process for a sync of several batches; 0: parse in the event loop's thread)",
    )
    ap.add_argument(
        "--db",
        choices=["sqlite", "pg"],
        default="sqlite",
        help="the hub's database: a temp SQLite file, or a fresh PostgreSQL database "
        "on 127.0.0.1:5432 (user postgres)",
    )
    ap.add_argument(
        "--per-message",
        action="store_true",
        help="hand messages to the hub one by one (the path without ingest_batch)",
    )
    ap.add_argument(
        "--ingest-factory",
        default="hub",
        help="hub (the real pipeline on a temp SQLite, default), fake (a collecting fake), "
        "or module:callable returning an Ingest",
    )
    args = ap.parse_args()
    global DB_KIND, PER_MESSAGE
    DB_KIND, PER_MESSAGE = args.db, args.per_message
    # the pipeline logs every event at info: keep the figures about ingest, not printing
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

    server = DovecotServer.start()
    try:
        server.add_user(USER, PASSWORD)
        msgs = unique_messages(FIXTURES, args.messages, "bench")
        t0 = time.perf_counter()
        await asyncio.to_thread(server.append_many, USER, [raw for _, raw in msgs])
        size = sum(len(raw) for _, raw in msgs)
        print(
            f"filled {args.messages} messages ({size / 1e6:.1f} MB) in "
            f"{time.perf_counter() - t0:.1f} s"
        )
        from connectors.email.connector import default_parse

        def parse_only() -> float:  # the parser alone, no IMAP and no database
            t0 = time.perf_counter()
            for _, raw in msgs:
                default_parse(raw, mailbox="bench")
            return time.perf_counter() - t0

        bare, conn, parse = [], [], []
        for r in range(args.rounds):  # alternate, so drift hits all three alike
            bare.append(await bare_fetch(server.port, args.messages))
            parse.append(parse_only())
            conn.append(
                await connector_sync(
                    server.port, args.messages, args.ingest_factory, args.parse_workers
                )
            )
            print(
                f"round {r + 1}: bare {bare[-1]:.2f} s, parse only {parse[-1]:.2f} s, "
                f"connector {conn[-1]:.2f} s"
            )
        parse_rate = args.messages / statistics.median(parse)
        bare_rate = args.messages / statistics.median(bare)
        rate = args.messages / statistics.median(conn)
        lat = await idle_latency(server, args.idle)
    finally:
        server.stop()
    ratio = rate / bare_rate
    med = statistics.median(lat)
    print(f"bare aioimaplib fetch:   {bare_rate:8.0f} messages/s (baseline 1.00)")
    print(f"connector initial sync:  {rate:8.0f} messages/s (ratio {ratio:.2f}, target >= 0.3)")
    print(
        f"parse_message alone:     {parse_rate:8.0f} messages/s "
        f"(ratio {parse_rate / bare_rate:.2f}: the ceiling for a serial sync)"
    )
    parse_ratio = rate / parse_rate
    print(
        f"connector / parse alone: {parse_ratio:8.2f} (parse_ratio, target >= 0.5; "
        f"{DB_KIND}, {'per message' if PER_MESSAGE else 'batches'})"
    )
    print(
        f"IDLE latency: median {med:.3f} s, max {max(lat):.3f} s over {len(lat)} "
        f"(target median <= 1.5 s)"
    )
    print(
        json.dumps(
            {
                "ratio": round(ratio, 3),
                "messages_per_s": round(rate, 1),
                "bare_messages_per_s": round(bare_rate, 1),
                "idle_latency_median_s": round(med, 3),
                "idle_latency_max_s": round(max(lat), 3),
                "parse_only_messages_per_s": round(parse_rate, 1),
                "parse_ratio": round(parse_ratio, 3),
                # the same, round by round (each round's parse and sync minutes apart)
                "parse_ratio_rounds": [round(p / c, 3) for p, c in zip(parse, conn, strict=True)],
                "db": DB_KIND,
                "path": "per_message" if PER_MESSAGE else "batch",
                "messages": args.messages,
                "ingest": args.ingest_factory,
                "parse_workers": args.parse_workers,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
