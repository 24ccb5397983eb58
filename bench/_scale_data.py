"""Synthetic two-year CRM base for ``bench/api_scale.py``, bulk-loaded straight into the
schema (no API): asyncpg COPY on PostgreSQL, ``executemany`` on SQLite.

Sizes at ``scale=1``: 200,000 clients, 50,000 contact persons, 510,000 contact points,
1,000,000 interactions over two years, 100,000 leads, 50,000 deals with ~198,000 stage
changes, 100,000 tasks, 50 managers in 5 teams and one admin.  Client 1 (owned by the
first manager) has ~500 timeline entries.  Everything is deterministic (seeded).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import operator
import os
import random
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, DateTime, Numeric, TypeDecorator

__all__ = ["Sizes", "Truth", "load", "token_of"]

END = datetime(2026, 11, 30, tzinfo=UTC)
START = END - timedelta(days=730)
SPAN_S = int((END - START).total_seconds())
TEAMS = ("north", "south", "east", "west", "center")
SYL = ("ро", "ма", "шка", "вер", "тек", "сиб", "ал", "про", "мир", "ста", "лин", "гра", "нит")
SYL += ("бор", "кам", "све", "тла", "дор", "рус", "нова", "вол", "га", "неф", "тех", "строй")
SURNAMES = ("Иванов", "Петров", "Сидоров", "Смирнов", "Кузнецов", "Попов", "Лебедев")
SURNAMES += ("Козлов", "Новиков", "Морозов", "Волков", "Соловьёв", "Васильев", "Зайцев")
FIRST = ("Иван", "Пётр", "Анна", "Мария", "Олег", "Елена", "Сергей", "Ольга", "Дмитрий")
LOSS = ("дорого", "выбрали конкурента", "нет бюджета", "не дозвонились", "спам", None)
STAGE_PATH = ("new", "qualification", "proposal", "negotiation", "contract", "won")


@dataclass(frozen=True)
class Sizes:
    clients: int
    interactions: int

    @property
    def persons(self) -> int:
        return self.clients // 4

    @property
    def leads(self) -> int:
        return self.clients // 2

    @property
    def deals(self) -> int:
        return self.clients // 4

    @property
    def tasks(self) -> int:
        return self.clients // 2


@dataclass
class Truth:
    """What the bench needs to know about the generated base."""

    admin_token: str
    manager_token: str
    manager_id: int
    heavy_client: int
    manager_client: int
    manager_lead: int
    manager_deal: int
    lead_with_history: int
    name_fragment: str
    person_name: str
    inn: str
    phone_spelling: str
    email: str
    form_key: str
    form_secret: str
    known_phone: str
    deep_client: int = 1  # a keyset cursor nine tenths deep into the clients
    deep_lead: int = 1
    load_phases: dict[str, float] = field(default_factory=dict)  # seconds per phase


def token_of(user_id: int) -> str:
    return f"bench-token-{user_id:04d}-0123456789abcdef"


def _inn10(n: int) -> str:
    digits = f"{7700000000 // 10 + n:09d}"[-9:]
    w = (2, 4, 10, 3, 5, 9, 4, 6, 8)
    check = sum(int(d) * k for d, k in zip(digits, w, strict=True)) % 11 % 10
    return digits + str(check)


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(SYL) for _ in range(3)).capitalize()


class _FastRandom(random.Random):
    """``choice`` and ``randrange`` from one ``random()`` call each (several times faster
    than the exact, unbiased versions; the bias is far below what a bench cares about)."""

    def choice(self, seq: Any) -> Any:
        return seq[int(self.random() * len(seq))]

    def randrange(self, start: int, stop: int | None = None, step: int = 1) -> int:
        if stop is None:
            start, stop = 0, start
        return start + int(self.random() * (stop - start))


def _at(rng: random.Random) -> datetime:
    return START + timedelta(seconds=rng.randrange(SPAN_S))


def _phone(prefix: int, i: int) -> str:
    return f"+79{prefix:02d}{i:07d}"


class _Gen:
    def __init__(self, sizes: Sizes) -> None:
        self.n = sizes
        self.rng = _FastRandom(20261203)
        self.managers = list(range(2, 52))  # user 1 is the admin
        self.client_owner: list[int] = [0] * (sizes.clients + 1)
        self.lead_client: list[int | None] = [None] * (sizes.leads + 1)
        self.deal_client: list[int] = [0] * (sizes.deals + 1)
        self.sample_name = ""
        # The default pipeline (made by migration 0008) and its loss reasons by name.
        self.pipeline_id: int | None = None
        self.reason_ids: dict[str, int] = {}

    def users(self) -> Iterator[dict[str, Any]]:
        yield {"id": 1, "email": "admin@bench.example", "name": "Админ", "role": "admin"}
        for uid in self.managers:
            yield {
                "id": uid,
                "email": f"m{uid}@bench.example",
                "name": f"{SURNAMES[uid % len(SURNAMES)]} {uid}",
                "role": "manager",
                "team": TEAMS[uid % 5],
            }

    def clients(self) -> Iterator[dict[str, Any]]:
        rng = self.rng
        for cid in range(1, self.n.clients + 1):
            owner = self.managers[0] if cid == 1 else rng.choice(self.managers)
            self.client_owner[cid] = owner
            company = cid % 3 != 0
            name = (
                f"ООО «{_word(rng)} {_word(rng)}»"
                if company
                else f"{rng.choice(SURNAMES)} {rng.choice(FIRST)} {cid}"
            )
            if company and not self.sample_name and cid > self.n.clients // 2:
                self.sample_name = name
            yield {
                "id": cid,
                "kind": "company" if company else "person",
                "name": name,
                "inn": _inn10(cid) if company else None,
                "status": rng.choice(("cold", "thinking", "ready", "active", "regular", "lost")),
                "owner_id": owner,
                "segment_id": (None, 1, 2, 3, 4, 5)[cid % 6],
                "created_at": _at(rng),
            }

    def persons(self) -> Iterator[dict[str, Any]]:
        rng = self.rng
        for pid in range(1, self.n.persons + 1):
            yield {
                "id": pid,
                "client_id": pid * 4 - 1,
                "name": f"{rng.choice(SURNAMES)}а {rng.choice(FIRST)} Контакт{pid}",
                "position": "менеджер по закупкам",
            }

    def points(self) -> Iterator[dict[str, Any]]:
        pid = 0
        for cid in range(1, self.n.clients + 1):
            pid += 1
            yield {"id": pid, "kind": "phone", "value": _phone(16, cid), "client_id": cid}
            pid += 1
            yield {
                "id": pid,
                "kind": "email",
                "value": f"c{cid}@firm{cid % 97}.ru",
                "client_id": cid,
            }
        for p in range(1, self.n.persons + 1):
            pid += 1
            yield {"id": pid, "kind": "phone", "value": _phone(25, p), "contact_person_id": p}
            pid += 1
            yield {
                "id": pid,
                "kind": "email",
                "value": f"p{p}@firm{p % 97}.ru",
                "contact_person_id": p,
            }
        for lid in range(1, self.n.clients // 20 + 1):
            pid += 1
            yield {"id": pid, "kind": "phone", "value": _phone(3, lid), "lead_id": lid}

    def leads(self) -> Iterator[dict[str, Any]]:
        rng = self.rng
        for lid in range(1, self.n.leads + 1):
            r = rng.random()
            status = (
                "new"
                if r < 0.02
                else "in_progress"
                if r < 0.05
                else "converted"
                if r < 0.4
                else "rejected"
            )
            client = rng.randrange(1, self.n.clients + 1) if rng.random() < 0.6 else None
            if lid <= 10:
                client = 1
            self.lead_client[lid] = client
            owner = self.client_owner[client] if client else rng.choice(self.managers)
            created = _at(rng)
            yield {
                "id": lid,
                "status": status,
                "source": rng.choice(("webform", "call", "email", "telegram", "vk")),
                "title": f"Заявка {lid}",
                "name": f"{rng.choice(FIRST)} {lid}",
                "client_id": client,
                "owner_id": owner,
                "loss_reason": rng.choice(LOSS) if status == "rejected" else None,
                "created_at": created,
                "updated_at": created,
                "closed_at": created + timedelta(days=3)
                if status in ("converted", "rejected")
                else None,
            }

    def deals(self) -> Iterator[dict[str, Any]]:
        rng = self.rng
        for did in range(1, self.n.deals + 1):
            client = 1 if did <= 10 else rng.randrange(1, self.n.clients + 1)
            self.deal_client[did] = client
            r = rng.random()
            stage = "won" if r < 0.3 else "lost" if r < 0.6 else STAGE_PATH[rng.randrange(0, 5)]
            created = _at(rng)
            closed = created + timedelta(days=20) if stage in ("won", "lost") else None
            reason = rng.choice(LOSS[:4]) if stage == "lost" else None
            yield {
                "id": did,
                "client_id": client,
                "pipeline_id": self.pipeline_id,
                "title": f"Сделка {did}",
                "stage": stage,
                "amount": Decimal(rng.randrange(10_000, 5_000_000)),
                "owner_id": self.client_owner[client],
                "loss_reason": reason,
                "loss_reason_id": self.reason_ids.get(reason.casefold()) if reason else None,
                "created_at": created,
                "updated_at": created,
                "closed_at": closed,
            }

    def stage_changes(self, deals: list[tuple[int, str, datetime]]) -> Iterator[dict[str, Any]]:
        rng = self.rng
        sid = 0
        for did, stage, created in deals:
            if stage == "won":
                path = list(STAGE_PATH[1:])
            elif stage == "lost":
                path = [*STAGE_PATH[1 : rng.randrange(1, 6)], "lost"]
            else:
                path = list(STAGE_PATH[1 : STAGE_PATH.index(stage) + 1])
            prev = "new"
            for k, to in enumerate(path):
                sid += 1
                yield {
                    "id": sid,
                    "deal_id": did,
                    "from_stage": prev,
                    "to_stage": to,
                    "at": created + timedelta(days=k + 1),
                }
                prev = to

    def interactions(self) -> Iterator[dict[str, Any]]:
        rng = self.rng
        heavy = min(500, self.n.interactions // 20)
        for iid in range(1, self.n.interactions + 1):
            client: int | None
            lead = deal = None
            if iid <= heavy:  # client 1's long history, through itself, its leads and deals
                client, k = 1, iid % 3
                if k == 1:
                    client, lead = None, 1 + iid % 10
                elif k == 2:
                    deal = 1 + iid % 10
            else:
                r = rng.random()
                client = rng.randrange(1, self.n.clients + 1)
                if r < 0.2:
                    lead = rng.randrange(1, self.n.leads + 1)
                    client = self.lead_client[lead]
                elif r < 0.35:
                    deal = rng.randrange(1, self.n.deals + 1)
                    client = self.deal_client[deal]
            channel = rng.choice(("call", "call", "email", "telegram", "vk", "webform"))
            direction = rng.choice(("in", "out"))
            owner = self.client_owner[client] if client else rng.choice(self.managers)
            yield {
                "id": iid,
                "client_id": client,
                "lead_id": lead,
                "deal_id": deal,
                "channel": channel,
                "direction": direction,
                "kind": {"call": "call_ended", "email": "email_received"}.get(
                    channel, "message_received"
                ),
                "outcome": rng.choice(("answered", "missed")) if channel == "call" else None,
                "duration_s": rng.randrange(0, 600) if channel == "call" else None,
                "ring_s": iid % 25 if channel == "call" else None,
                "body": "Добрый день, пришлите счёт" if channel != "call" else None,
                "user_id": owner,
                "occurred_at": _at(rng),
            }

    def tasks(self) -> Iterator[dict[str, Any]]:
        rng = self.rng
        for tid in range(1, self.n.tasks + 1):
            r = rng.random()
            status = "open" if r < 0.08 else "done" if r < 0.95 else "cancelled"
            client = rng.randrange(1, self.n.clients + 1)
            created = _at(rng)
            yield {
                "id": tid,
                "kind": rng.choice(("call_back", "send_offer", "meeting", "send_documents")),
                "title": f"Перезвонить {tid}",
                "status": status,
                "due_at": created + timedelta(days=2) if rng.random() < 0.8 else None,
                "assignee_id": self.client_owner[client],
                "client_id": client,
                "created_at": created,
                "closed_at": created + timedelta(days=1) if status != "open" else None,
            }

    def plans(self) -> Iterator[dict[str, Any]]:
        """A plan per manager and per team for each month of the last year."""
        pid = 0
        for month in range(1, 13):
            period = f"2026-{month:02d}"
            for uid in self.managers:
                pid += 1
                yield {
                    "id": pid,
                    "period": period,
                    "subject": f"user:{uid}",
                    "user_id": uid,
                    "amount": Decimal(1_000_000 + uid * 1000),
                    "deals": 3,
                    "calls": 120,
                    "meetings": 8,
                }
            for team in TEAMS:
                pid += 1
                yield {
                    "id": pid,
                    "period": period,
                    "subject": f"team:{team}",
                    "team": team,
                    "amount": Decimal(10_000_000),
                    "deals": 30,
                }


def _defaults(table: Any) -> dict[str, Any]:
    """Python-side defaults of ``table``'s columns, evaluated once."""
    out: dict[str, Any] = {}
    for col in table.columns:
        d = col.default
        if d is None or col.primary_key:
            continue
        if d.is_callable:
            out[col.name] = d.arg(None)
        elif d.is_scalar:
            out[col.name] = d.arg
    return out


def _json_cols(table: Any) -> set[str]:
    return {c.name for c in table.columns if isinstance(c.type, JSON)}


def _dump(v: Any) -> Any:
    if v is None:
        return None
    if not v:  # the usual default, {} or []
        return "{}" if isinstance(v, dict) else "[]"
    return json.dumps(v, ensure_ascii=False)


def _sqlite_time(v: Any) -> Any:
    # SQLAlchemy's SQLite DATETIME text; every generated time is UTC already.
    return None if v is None else v.isoformat(" ", "microseconds")[:26]


def _sqlite_decimal(v: Any) -> Any:
    return None if v is None else float(v)


def _tuples(
    table: Any, rows: Iterator[dict[str, Any]], convs: dict[str, Any]
) -> tuple[list[str], Iterator[tuple[Any, ...]]]:
    """Rows as tuples in column order, defaults filled in, values converted once per
    column kind (no per-value type dispatch)."""
    cols = [c.name for c in table.columns]
    base = {c: None for c in cols} | _defaults(table)
    getter = operator.itemgetter(*cols)
    fix = [(i, convs[c]) for i, c in enumerate(cols) if c in convs]

    def gen() -> Iterator[tuple[Any, ...]]:
        for row in rows:
            t = getter(base | row)
            if fix:
                v = list(t)
                for i, f in fix:
                    v[i] = f(v[i])
                t = tuple(v)
            yield t

    return cols, gen()


def _chunks(it: Iterator[tuple[Any, ...]], n: int) -> Iterator[list[tuple[Any, ...]]]:
    batch: list[tuple[Any, ...]] = []
    for t in it:
        batch.append(t)
        if len(batch) >= n:
            yield batch
            batch = []
    if batch:
        yield batch


class _Writer:
    async def write(self, table: Any, rows: Iterator[dict[str, Any]]) -> int:
        raise NotImplementedError


class _SqliteWriter(_Writer):
    """One big transaction per table, no journal, no fsync: a crash mid-load leaves a
    broken file, and the bench makes a new one anyway."""

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=OFF")
        self.conn.execute("PRAGMA synchronous=OFF")
        self.conn.execute("PRAGMA cache_size=-524288")  # 512 MB
        self.conn.execute("PRAGMA temp_store=MEMORY")
        self.conn.execute("PRAGMA foreign_keys=OFF")

    async def write(self, table: Any, rows: Iterator[dict[str, Any]]) -> int:
        convs: dict[str, Any] = {c: _dump for c in _json_cols(table)}
        for c in table.columns:
            t = c.type.impl_instance if isinstance(c.type, TypeDecorator) else c.type
            if isinstance(t, DateTime):
                convs[c.name] = _sqlite_time
            elif isinstance(t, Numeric):
                convs[c.name] = _sqlite_decimal
        cols, tuples = _tuples(table, rows, convs)
        sql = f"INSERT INTO {table.name} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
        n = 0
        self.conn.execute("BEGIN")
        for batch in _chunks(tuples, 50000):
            self.conn.executemany(sql, batch)
            n += len(batch)
        self.conn.execute("COMMIT")
        return n

    def finish(self) -> None:
        self.conn.execute("ANALYZE")
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.close()


class _PgWriter(_Writer):
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def write(self, table: Any, rows: Iterator[dict[str, Any]]) -> int:
        cols, tuples = _tuples(table, rows, {c: _dump for c in _json_cols(table)})
        n = 0
        for batch in _chunks(tuples, 50000):
            await self.conn.copy_records_to_table(table.name, records=batch, columns=cols)
            n += len(batch)
        if "id" in cols:
            await self.conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                f"(SELECT coalesce(max(id), 1) FROM {table.name}))"
            )
        return n


def _rollup_fill(month: str) -> str:
    key = "user_id, month, channel, direction, outcome"
    return (
        f"INSERT INTO interaction_monthly ({key}, n, talk_s) "
        f"SELECT user_id, {month}, channel, direction, coalesce(outcome, ''), count(*), "
        f"coalesce(sum(duration_s), 0) "
        f"FROM interactions WHERE user_id IS NOT NULL "
        f"GROUP BY user_id, {month}, channel, direction, coalesce(outcome, '')"
    )


def _lead_daily_fill(postgres: bool) -> str:
    """Requests per day (migration 0024_lead_daily), filled as the migration does."""
    migration = importlib.import_module("crm_core.migrations.versions.0024_lead_daily")
    return str(migration.fill_sql(postgres))


# What the first-response triggers (migration 0009) and the last-contact triggers
# (0010) keep, filled once after the load (as the migrations fill existing rows).
_FIRST_RESPONSE_FILL = (
    "UPDATE leads SET first_response_at = f.at FROM ("
    "SELECT lead_id, min(occurred_at) AS at FROM interactions WHERE lead_id IS NOT NULL "
    "AND (direction = 'out' OR outcome = 'answered') GROUP BY lead_id) AS f "
    "WHERE leads.id = f.lead_id"
)
_LAST_CONTACT_FILL = (
    "UPDATE clients SET last_contact_at = agg.at FROM ("
    "SELECT client_id, max(occurred_at) AS at FROM interactions "
    "WHERE client_id IS NOT NULL GROUP BY client_id) AS agg "
    "WHERE clients.id = agg.client_id"
)


_PG_SECONDARY = """
SELECT i.relname, pg_get_indexdef(x.indexrelid)
  FROM pg_index x
  JOIN pg_class i ON i.oid = x.indexrelid
  JOIN pg_class t ON t.oid = x.indrelid
  JOIN pg_namespace ns ON ns.oid = t.relnamespace
 WHERE ns.nspname = current_schema()
   AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)
"""


async def _before_load(pg: Any, writer: Any) -> tuple[list[str], list[str]]:
    """Load first, build after: the secondary indexes (not those of a primary key or a
    unique constraint) are dropped and rebuilt from their own definitions once the rows
    are in (sorted builds instead of a million random B-tree inserts; a GIN trigram
    index built once).  The row triggers of the migrations (FTS, monthly counts, owner
    loads) are off during the load; what they maintain is filled afterwards in one
    statement each, as the migrations do.  Foreign keys are not checked row by row (the
    generator makes them consistent)."""
    if pg is not None:
        indexes = [(n, d) for n, d in await pg.fetch(_PG_SECONDARY)]
        for name, _ in indexes:
            await pg.execute(f'DROP INDEX "{name}"')
        try:
            await pg.execute("SET session_replication_role = replica")  # no FK, no triggers
        except Exception:  # not a superuser: keep the foreign keys, skip the user triggers
            for (t,) in await pg.fetch(
                "SELECT DISTINCT tgrelid::regclass::text FROM pg_trigger WHERE NOT tgisinternal"
            ):
                await pg.execute(f"ALTER TABLE {t} DISABLE TRIGGER USER")
        return [d for _, d in indexes], []
    conn = writer.conn
    idx = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
    ).fetchall()
    trg = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'").fetchall()
    for name, _ in idx:
        conn.execute(f'DROP INDEX "{name}"')
    for name, _ in trg:
        conn.execute(f'DROP TRIGGER "{name}"')
    return [sql for _, sql in idx], [sql for _, sql in trg]


async def _after_load(
    pg: Any, writer: Any, indexes: list[str], triggers: list[str], phases: dict[str, float]
) -> None:
    from crm_core.pipeline.load_counters import fill_counters_sql

    if pg is not None:
        await pg.execute("RESET session_replication_role")
        for (t,) in await pg.fetch(
            "SELECT DISTINCT tgrelid::regclass::text FROM pg_trigger WHERE NOT tgisinternal"
        ):
            await pg.execute(f"ALTER TABLE {t} ENABLE TRIGGER USER")
        await pg.execute("SET maintenance_work_mem = '512MB'")
        await pg.execute("SET max_parallel_maintenance_workers = 0")  # one core
        t0 = time.perf_counter()
        for sql in indexes:
            await pg.execute(sql)
        phases["indexes"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        await pg.execute(_rollup_fill("to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM')"))
        await pg.execute(_lead_daily_fill(postgres=True))
        for sql in fill_counters_sql(postgres=True):
            await pg.execute(sql)
        await pg.execute(_FIRST_RESPONSE_FILL)
        await pg.execute(_LAST_CONTACT_FILL)
        # A base in use has been vacuumed (autovacuum after the inserts): visibility map
        # set, so counts can be index-only scans, as they would be on a live base.
        await pg.execute("VACUUM (ANALYZE)")
        phases["rollups_analyze"] = time.perf_counter() - t0
        return
    conn = writer.conn
    conn.execute("BEGIN")
    t0 = time.perf_counter()
    for sql in indexes:
        conn.execute(sql)
    phases["indexes"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    for sql in triggers:
        conn.execute(sql)
    for fts in ("clients_fts", "contact_persons_fts"):
        conn.execute(f"INSERT INTO {fts}({fts}) VALUES ('rebuild')")
    conn.execute(_rollup_fill("strftime('%Y-%m', occurred_at)"))
    conn.execute(_lead_daily_fill(postgres=False))
    for sql in fill_counters_sql(postgres=False):
        conn.execute(sql)
    conn.execute(_FIRST_RESPONSE_FILL)
    conn.execute(_LAST_CONTACT_FILL)
    conn.execute("COMMIT")
    writer.finish()
    phases["rollups_analyze"] = time.perf_counter() - t0


def _proc_cpu(pid: int | None) -> float:
    """User + system CPU seconds of another local process (a PostgreSQL backend)."""
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:  # not on this machine: CPU unknown
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def load(url: str, sizes: Sizes) -> Truth:
    """Fill the migrated, empty database at ``url``; return what the bench asks for."""
    from crm_core import models as m

    gen = _Gen(sizes)
    writer: Any
    pg = None
    if url.startswith("sqlite"):
        writer = _SqliteWriter(url.split(":///", 1)[1])
    else:
        import asyncpg

        pg = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        await pg.set_type_codec(
            "json", encoder=str.encode, decoder=bytes.decode, schema="pg_catalog", format="binary"
        )
        writer = _PgWriter(pg)
    backend = await pg.fetchval("SELECT pg_backend_pid()") if pg is not None else None
    cpu_start = time.process_time() + _proc_cpu(backend)
    indexes, triggers = await _before_load(pg, writer)
    phases: dict[str, float] = {}
    t_rows = time.perf_counter()
    try:
        users = []
        for u in gen.users():
            u["token_hash"] = hashlib.sha256(token_of(u["id"]).encode()).hexdigest()
            users.append(u)
        await writer.write(m.User.__table__, iter(users))
        # the tokens authenticate as API tokens (0018_auth)
        tokens = [
            {
                "id": u["id"],
                "user_id": u["id"],
                "name": "bench",
                "token_hash": u["token_hash"],
                "scope": "full",
                "origin": "admin",
                "created_at": u.get("created_at") or datetime.now(UTC),
            }
            for u in users
        ]
        await writer.write(m.ApiToken.__table__, iter(tokens))
        segments = [{"id": i, "name": f"Сегмент {i}"} for i in range(1, 6)]
        await writer.write(m.Segment.__table__, iter(segments))
        await writer.write(m.Client.__table__, gen.clients())
        await writer.write(m.ContactPerson.__table__, gen.persons())
        await writer.write(m.Lead.__table__, gen.leads())
        await writer.write(m.ContactPoint.__table__, gen.points())
        sql = (
            "SELECT p.id, r.name, r.id FROM pipelines p JOIN loss_reasons r ON r.pipeline_id = p.id"
        )
        sql += " WHERE p.is_default"
        if pg is not None:
            catalogue = [tuple(r) for r in await pg.fetch(sql)]
        else:
            catalogue = writer.conn.execute(sql).fetchall()
        for pid, name, rid in catalogue:
            gen.pipeline_id = pid
            gen.reason_ids[name.casefold()] = rid
        deals: list[tuple[int, str, datetime]] = []

        def deal_rows() -> Iterator[dict[str, Any]]:
            for d in gen.deals():
                deals.append((d["id"], d["stage"], d["created_at"]))
                yield d

        await writer.write(m.Deal.__table__, deal_rows())
        await writer.write(m.DealStageChange.__table__, gen.stage_changes(deals))
        await writer.write(m.Interaction.__table__, gen.interactions())
        await writer.write(m.Task.__table__, gen.tasks())
        await writer.write(m.SalesPlan.__table__, gen.plans())
        form = {"id": 1, "key": "benchform", "name": "bench", "secret": "bench-secret-0123456789"}
        await writer.write(m.Form.__table__, iter([form]))
        phases["rows"] = time.perf_counter() - t_rows
        await _after_load(pg, writer, indexes, triggers, phases)
        # CPU of the whole load: this process (generating, converting; SQLite's own work)
        # plus the PostgreSQL backend that took the rows and built the indexes.
        phases["cpu"] = time.process_time() + _proc_cpu(backend) - cpu_start
    finally:
        if pg is not None:
            await pg.close()
    mgr = gen.managers[0]
    mgr_client = next((c for c in range(2, sizes.clients + 1) if gen.client_owner[c] == mgr), 1)
    mgr_lead = next((i for i in range(1, sizes.leads + 1) if gen.lead_client[i] == 1), 1)
    return Truth(
        admin_token=token_of(1),
        manager_token=token_of(mgr),
        manager_id=mgr,
        heavy_client=1,
        manager_client=mgr_client,
        manager_lead=mgr_lead,
        manager_deal=1,
        lead_with_history=1,
        name_fragment=gen.sample_name.split("«")[1].split()[1][1:7].lower()
        if gen.sample_name
        else "",
        person_name=f"Контакт{sizes.persons // 2}",
        inn=_inn10(sizes.clients // 2 - (sizes.clients // 2) % 3 + 1),
        phone_spelling=_spelled(_phone(16, sizes.clients // 3)),
        email=f"C{sizes.clients // 5}@Firm{(sizes.clients // 5) % 97}.ru",
        form_key=form["key"],
        form_secret=form["secret"],
        known_phone=_phone(16, 7),
        deep_client=max(1, sizes.clients // 10),
        deep_lead=max(1, sizes.leads // 10),
        load_phases={k: round(v, 1) for k, v in phases.items()},
    )


def _spelled(e164: str) -> str:
    """+79161234567 -> "8 (916) 123-45-67", as a person types it."""
    d = e164[2:]
    return f"8 ({d[:3]}) {d[3:6]}-{d[6:8]}-{d[8:]}"
