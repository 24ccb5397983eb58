"""Issue 11: the rewritten queries give the same answers as naive counts, on SQLite and
PostgreSQL, on a small seeded base: reports (against the former load-rows-into-Python
code in ``tests/support/analytics_reference.py``), timelines, search, keyset pages,
the tasks' due-time order and the owners' loads."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from crm_core.access import Actor
from crm_core.db import Database
from crm_core.models import (
    Client,
    ContactPerson,
    ContactPoint,
    Deal,
    DealStageChange,
    Interaction,
    Lead,
    Task,
    User,
)
from crm_core.pipeline.rules_assigner import build_roster
from crm_core.services import analytics
from crm_core.services.clients import list_clients
from crm_core.services.common import ListFilter
from crm_core.services.deals import list_deals
from crm_core.services.leads import list_leads
from crm_core.services.tasks import list_tasks
from crm_core.services.timeline import client_timeline, lead_timeline
from tests.support import analytics_reference as ref

T0 = datetime(2026, 1, 1, 9, 30, tzinfo=UTC)  # a Thursday: weeks straddle the new year
STAGES = ("new", "qualification", "proposal", "negotiation", "contract", "won")
ADMIN = Actor(1, "admin")
MANAGER = Actor(2, "manager", "north")
SUPERVISOR = Actor(5, "supervisor", "north")


def _inn10(n: int) -> str:
    digits = f"{500000000 + n:09d}"
    w = (2, 4, 10, 3, 5, 9, 4, 6, 8)
    return digits + str(sum(int(d) * k for d, k in zip(digits, w, strict=True)) % 11 % 10)


async def _seed(db: Database) -> None:
    rng = random.Random(11)
    async with db.transaction() as s:
        s.add_all(
            [
                User(id=1, email="a@x.ru", name="Админ", role="admin", token_hash="t1"),
                User(
                    id=2, email="m2@x.ru", name="М2", role="manager", team="north", token_hash="t2"
                ),
                User(
                    id=3, email="m3@x.ru", name="М3", role="manager", team="north", token_hash="t3"
                ),
                User(
                    id=4, email="m4@x.ru", name="М4", role="manager", team="south", token_hash="t4"
                ),
                User(
                    id=5,
                    email="s5@x.ru",
                    name="С5",
                    role="supervisor",
                    team="north",
                    token_hash="t5",
                ),
            ]
        )
        await s.flush()
        owners = [2, 3, 4, 5]
        for cid in range(1, 61):
            s.add(
                Client(
                    id=cid,
                    kind="company",
                    name=f"ООО «Ромашка-{cid}»" if cid % 5 == 0 else f"Компания Берёза {cid}",
                    inn=_inn10(cid),
                    owner_id=owners[cid % 4],
                    created_at=T0 + timedelta(hours=cid),
                )
            )
        await s.flush()
        s.add(ContactPerson(id=1, client_id=7, name="Светлана Кузнецова"))
        await s.flush()
        s.add_all(
            [
                ContactPoint(kind="phone", value="+79161234567", client_id=3),
                ContactPoint(kind="email", value="boss@firm.ru", client_id=4),
                ContactPoint(kind="phone", value="+74951112233", contact_person_id=1),
                ContactPoint(kind="email", value="sveta@firm.ru", contact_person_id=1),
            ]
        )
        for lid in range(1, 151):
            status = rng.choice(("new", "in_progress", "converted", "rejected", "rejected"))
            s.add(
                Lead(
                    id=lid,
                    status=status,
                    source=rng.choice(("webform", "call", "email")),
                    client_id=rng.choice((None, rng.randrange(1, 61))),
                    owner_id=rng.choice((None, *owners)),
                    queue="north" if lid % 7 == 0 else None,
                    loss_reason=rng.choice(("дорого", None, "спам"))
                    if status == "rejected"
                    else None,
                    created_at=T0
                    - timedelta(days=rng.randrange(0, 90), minutes=rng.randrange(1440)),
                )
            )
        await s.flush()
        sid = 0
        for did in range(1, 61):
            stage = rng.choice((*STAGES, "lost", "lost"))
            client = 1 if did <= 3 else rng.randrange(1, 61)
            created = T0 - timedelta(days=rng.randrange(0, 60))
            s.add(
                Deal(
                    id=did,
                    client_id=client,
                    title=f"Сделка {did}",
                    stage=stage,
                    amount=Decimal(rng.randrange(1000, 90000)),
                    owner_id=owners[did % 4],
                    loss_reason=rng.choice(("дорого", None)) if stage == "lost" else None,
                    created_at=created,
                    closed_at=created + timedelta(days=5) if stage in ("won", "lost") else None,
                )
            )
            path = list(STAGES[1 : rng.randrange(1, 6)])
            if stage == "lost" and did % 3 == 0:
                path += ["lost", "qualification", "proposal", "lost"]  # reopened, lost again
            elif stage == "lost":
                path += ["lost"]
            prev = "new"
            for k, to in enumerate(path):
                sid += 1
                s.add(
                    DealStageChange(
                        id=sid,
                        deal_id=did,
                        from_stage=prev,
                        to_stage=to,
                        at=created + timedelta(hours=k),
                    )
                )
                prev = to
        await s.flush()
        for iid in range(1, 401):
            channel = rng.choice(("call", "email", "telegram"))
            k = iid % 4
            s.add(
                Interaction(
                    id=iid,
                    client_id=1 if k == 0 else rng.randrange(1, 61),
                    lead_id=rng.randrange(1, 151) if k == 1 else None,
                    deal_id=rng.choice((1, 2, 3, rng.randrange(1, 61))) if k == 2 else None,
                    channel=channel,
                    direction=rng.choice(("in", "out")),
                    kind="call_ended" if channel == "call" else "message_received",
                    outcome=rng.choice(("answered", "missed")) if channel == "call" else None,
                    user_id=rng.choice((None, *owners)),
                    # Some share a moment: the id breaks the tie.
                    occurred_at=T0 - timedelta(hours=rng.randrange(0, 300)),
                )
            )
        for tid in range(1, 121):
            s.add(
                Task(
                    id=tid,
                    kind="call_back",
                    title=f"Перезвонить {tid}",
                    status=rng.choice(("open", "open", "done", "cancelled")),
                    due_at=None if tid % 4 == 0 else T0 + timedelta(hours=rng.randrange(0, 30)),
                    assignee_id=rng.choice(owners),
                    created_at=T0 - timedelta(days=rng.randrange(0, 40)),
                )
            )


async def _seeded(db: Database) -> None:
    await _seed(db)
    if db.is_postgres:  # explicit ids: move the sequences past them
        from sqlalchemy import text

        async with db.transaction() as s:
            for table in ("users", "clients", "contact_persons", "leads", "deals", "tasks"):
                await s.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT max(id) FROM {table}))"
                    )
                )
            for table in ("interactions", "deal_stage_changes"):
                await s.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT max(id) FROM {table}))"
                    )
                )


WINDOWS = [
    (None, None),
    (T0 - timedelta(days=30), T0 - timedelta(days=3)),  # edges inside days
    (datetime(2025, 12, 24, tzinfo=UTC), datetime(2025, 12, 30, tzinfo=UTC)),  # whole days
    (T0 - timedelta(hours=20), T0 - timedelta(hours=2)),  # within a day or two
    (T0 - timedelta(days=5), None),
    (datetime(2025, 12, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)),  # a whole month
    (datetime(2025, 11, 1, tzinfo=UTC), T0),  # whole months and a partial one
    (datetime(2025, 12, 20, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)),
    (None, T0 - timedelta(days=5, hours=3)),
]


def _as_reference(got: dict[str, Any], want: dict[str, Any]) -> dict[str, Any]:
    """The funnel with only the keys the reference computes (pipelines added fields)."""
    out = {k: got[k] for k in want}
    keys = set(want["stages"][0]) if want["stages"] else set()
    out["stages"] = [{k: v for k, v in st.items() if k in keys} for st in got["stages"]]
    return out


@pytest.mark.parametrize("actor", [ADMIN, MANAGER, SUPERVISOR], ids=["admin", "manager", "sup"])
async def test_reports_equal_the_naive_counts(db: Database, actor: Actor) -> None:
    await _seeded(db)
    async with db.sessions() as s:
        for start, end in WINDOWS:
            got_funnel = await analytics.funnel(s, actor, start, end)
            want_funnel = await ref.funnel(s, actor, start, end)
            assert _as_reference(got_funnel, want_funnel) == want_funnel
            # The fields added with pipelines: losses by reason add up to the stages'.
            by_reason = {r["reason"]: r["lost"] for r in got_funnel["loss_reasons"]}
            per_stage: dict[str, int] = {}
            for st in want_funnel["stages"]:
                for reason, n in st["loss_reasons"].items():
                    per_stage[reason] = per_stage.get(reason, 0) + n
            assert by_reason == per_stage
            assert sum(by_reason.values()) == want_funnel["lost"]
            for group in ("day", "week", "month"):
                got = await analytics.requests_per_period(s, actor, start, end, group)
                assert got == await ref.requests_per_period(s, actor, start, end, group)
            got = await analytics.manager_activity(s, actor, start, end)
            want = await ref.manager_activity(s, actor, start, end)
            assert _no_overdue(got) == _no_overdue(want)
    # The seeded base does exercise the figures compared above.
    async with db.sessions() as s:
        f = await analytics.funnel(s, ADMIN, None, None)
        assert f["lost"] > 0 and f["won"] > 0 and f["deals_created"] == 60
        weeks = await analytics.requests_per_period(s, ADMIN, None, None, "week")
        assert {p["period"] for p in weeks["items"]} >= {"2025-12-29"}  # a Monday


async def test_manager_activity_follows_interaction_changes(db: Database) -> None:
    """The daily counts are kept by triggers: new, changed (user, outcome, moment) and
    deleted interactions show in the report as in a naive count."""
    await _seeded(db)
    async with db.transaction() as s:
        first = await s.get(Interaction, 1)
        second = await s.get(Interaction, 2)
        third = await s.get(Interaction, 3)
        assert first is not None and second is not None and third is not None
        first.user_id, first.outcome, first.channel = 3, "answered", "call"
        second.occurred_at = second.occurred_at - timedelta(days=40)
        await s.delete(third)
        s.add(
            Interaction(
                id=1000,
                client_id=1,
                channel="email",
                direction="out",
                kind="email_sent",
                user_id=2,
                occurred_at=T0,
            )
        )
    async with db.sessions() as s:
        for actor in (ADMIN, MANAGER):
            for start, end in WINDOWS:
                got = await analytics.manager_activity(s, actor, start, end)
                want = await ref.manager_activity(s, actor, start, end)
                assert _no_overdue(got) == _no_overdue(want)


async def test_requests_per_day_follow_lead_changes(db: Database) -> None:
    """``lead_daily`` is kept by triggers: leads created, moved to another day, source or
    status, rejected with a reason, converted, deleted (by the ORM and by plain SQL)
    show in an admin's requests report as in a naive count; and the rollup equals the
    migration's fill from the leads (a full recount)."""
    from sqlalchemy import delete, text, update

    from crm_core.models import LeadDaily

    await _seeded(db)
    rng = random.Random(24)
    async with db.transaction() as s:
        ids = list(await s.scalars(select(Lead.id).order_by(Lead.id)))
        for lid in rng.sample(ids, 40):
            lead = await s.get(Lead, lid)
            assert lead is not None
            change = rng.randrange(5)
            if change == 0:
                lead.created_at = lead.created_at - timedelta(days=rng.randrange(1, 30))
            elif change == 1:
                lead.status, lead.loss_reason = "rejected", rng.choice(("дорого", None, "цена"))
            elif change == 2:
                lead.status, lead.loss_reason = "converted", None
            elif change == 3:
                lead.source = "telegram"
            else:
                await s.delete(lead)
        s.add_all(
            Lead(
                status=rng.choice(("new", "rejected", "converted")),
                source="webform",
                loss_reason="спам",
                created_at=T0 - timedelta(hours=k * 7),
            )
            for k in range(30)
        )
        await s.execute(
            update(Lead).where(Lead.id.in_(ids[:5])).values(status="rejected", loss_reason="x")
        )
        await s.execute(delete(Lead).where(Lead.id.in_(ids[5:8])))
    async with db.sessions() as s:
        for start, end in WINDOWS:
            for group in ("day", "week", "month"):
                got = await analytics.requests_per_period(s, ADMIN, start, end, group)
                assert got == await ref.requests_per_period(s, ADMIN, start, end, group)
    import importlib

    fill = importlib.import_module("crm_core.migrations.versions.0024_lead_daily").fill_sql
    async with db.transaction() as s:
        cols = (LeadDaily.day, LeadDaily.source, LeadDaily.refused, LeadDaily.reason)
        kept = {
            tuple(r[:4]): (r[4], r[5])
            for r in await s.execute(select(*cols, LeadDaily.n, LeadDaily.converted))
            if r[4] or r[5]
        }
        await s.execute(delete(LeadDaily))
        await s.execute(text(fill(db.is_postgres)))
        recount = {
            tuple(r[:4]): (r[4], r[5])
            for r in await s.execute(select(*cols, LeadDaily.n, LeadDaily.converted))
        }
        assert kept == recount
        assert any(k[2] == 1 for k in kept) and sum(n for n, _ in kept.values()) > 100


def _no_overdue(report: dict[str, Any]) -> list[dict[str, Any]]:
    """``tasks_overdue`` depends on the wall clock at each call; the rest must match."""
    return [{k: v for k, v in i.items() if k != "tasks_overdue"} for i in report["items"]]


def _naive_client_ids(
    rows: list[Interaction], client_id: int, leads: set[int], deals: set[int]
) -> list[int]:
    mine = [i for i in rows if i.client_id == client_id or i.lead_id in leads or i.deal_id in deals]
    mine.sort(key=lambda i: (i.occurred_at, i.id), reverse=True)
    return [i.id for i in mine]


async def test_timelines_are_the_or_of_client_leads_and_deals(db: Database) -> None:
    await _seeded(db)
    async with db.sessions() as s:
        rows = list(await s.scalars(select(Interaction)))
        leads = set(await s.scalars(select(Lead.id).where(Lead.client_id == 1)))
        deals = set(await s.scalars(select(Deal.id).where(Deal.client_id == 1)))
        want = _naive_client_ids(rows, 1, leads, deals)
        assert len(want) > 100
        got: list[int] = []
        after = None
        while True:
            page = await client_timeline(s, ADMIN, 1, ListFilter(limit=40, after=after))
            assert page.total == len(want)
            got += [i["id"] for i in page.items]
            if page.next_after is None:
                break
            after = page.next_after
        assert got == want
        by_offset = await client_timeline(s, ADMIN, 1, ListFilter(limit=25, offset=50))
        assert [i["id"] for i in by_offset.items] == want[50:75]
        calls = await client_timeline(s, ADMIN, 1, ListFilter(limit=200, extra={"channel": "call"}))
        assert [i["id"] for i in calls.items] == [
            i for i in want if next(r for r in rows if r.id == i).channel == "call"
        ]
        lead = await s.scalar(select(Lead).where(Lead.client_id.is_not(None)).limit(1))
        assert lead is not None and lead.client_id is not None
        c_leads = set(await s.scalars(select(Lead.id).where(Lead.client_id == lead.client_id)))
        c_deals = set(await s.scalars(select(Deal.id).where(Deal.client_id == lead.client_id)))
        lt = await lead_timeline(s, ADMIN, lead.id, ListFilter(limit=200))
        assert [i["id"] for i in lt.items] == _naive_client_ids(
            rows, lead.client_id, c_leads | {lead.id}, c_deals
        )


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("8 (916) 123-45-67", {3}),
        ("+7 916 123 45 67", {3}),
        ("9161234567", {3}),
        ("8-495-111-22-33", {7}),  # a contact person's phone finds their client
        ("BOSS@Firm.ru", {4}),
        ("sveta@firm.ru", {7}),
        ("кузнецова", {7}),  # a contact person's name, any case
        ("РОМАШКА-1", {10, 15}),  # a name fragment, any case: Ромашка-10, Ромашка-15
        ("ромашка-55", {55}),
        ("Ромашка", {5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60}),
        (_inn10(42), {42}),
        ("нет такого", set()),
        ("100%", set()),  # LIKE wildcards are plain characters
    ],
)
async def test_search_finds_clients_by_any_handle(db: Database, q: str, expected: set[int]) -> None:
    await _seeded(db)
    async with db.sessions() as s:
        page = await list_clients(s, ADMIN, ListFilter(q=q, limit=200))
        assert {c["id"] for c in page.items} == expected
        assert page.total == len(expected)
        own = await list_clients(s, MANAGER, ListFilter(q=q, limit=200))
        assert {c["id"] for c in own.items} == {
            c for c in expected if c % 4 == 0
        }  # owners[cid % 4] is 2


async def test_name_search_follows_renames_and_deletes(db: Database) -> None:
    """SQLite's FTS5 index is kept by triggers; PostgreSQL's trigram index by itself."""
    await _seeded(db)
    async with db.transaction() as s:
        c = await s.get(Client, 11)
        assert c is not None
        c.name = "Акционерное общество Тополь"
        s.add(Client(id=99, kind="person", name="Тополев Пётр", owner_id=2))
        gone = await s.get(Client, 5)
        await s.delete(gone)
    async with db.sessions() as s:
        found = await list_clients(s, ADMIN, ListFilter(q="тополь", limit=50))
        assert {c["id"] for c in found.items} == {11}
        found = await list_clients(s, ADMIN, ListFilter(q="Тополе", limit=50))
        assert {c["id"] for c in found.items} == {99}
        assert (await list_clients(s, ADMIN, ListFilter(q="Берёза 11", limit=50))).items == []
        left = await list_clients(s, ADMIN, ListFilter(q="Ромашка-5", limit=50))
        assert {c["id"] for c in left.items} == {50, 55}


@pytest.mark.parametrize("lister", [list_clients, list_leads, list_deals, list_tasks])
async def test_keyset_pages_walk_the_same_order_as_offsets(db: Database, lister: Any) -> None:
    await _seeded(db)
    async with db.sessions() as s:
        whole = await lister(s, ADMIN, ListFilter(limit=200))
        ids = [r["id"] for r in whole.items]
        assert len(ids) == whole.total and whole.next_after is None
        walked: list[int] = []
        after = None
        for _ in range(50):
            page = await lister(s, ADMIN, ListFilter(limit=7, after=after))
            walked += [r["id"] for r in page.items]
            after = page.next_after
            if after is None:
                break
        assert walked == ids
        for offset in (0, 7, 33, len(ids) - 3, len(ids) + 5):
            page = await lister(s, ADMIN, ListFilter(limit=7, offset=offset))
            assert [r["id"] for r in page.items] == ids[offset : offset + 7]


async def test_tasks_are_ordered_by_due_time_undated_last(db: Database) -> None:
    await _seeded(db)
    async with db.sessions() as s:
        tasks = list(await s.scalars(select(Task)))
        want = [t.id for t in sorted(tasks, key=lambda t: (t.due_at is None, t.due_at or T0, t.id))]
        page = await list_tasks(s, ADMIN, ListFilter(limit=200))
        assert [t["id"] for t in page.items] == want
        mine = await list_tasks(s, MANAGER, ListFilter(limit=200, status="open"))
        assert [t["id"] for t in mine.items] == [
            i
            for i in want
            if next(t for t in tasks if t.id == i).assignee_id == 2
            and next(t for t in tasks if t.id == i).status == "open"
        ]


async def test_roster_loads_equal_a_naive_count(db: Database) -> None:
    await _seeded(db)
    async with db.sessions() as s:
        roster = await build_roster(s)
        for m in roster.members:
            leads = await s.scalar(
                select(func.count())
                .select_from(Lead)
                .where(Lead.owner_id == m.user_id, Lead.status.in_(("new", "in_progress")))
            )
            tasks = await s.scalar(
                select(func.count())
                .select_from(Task)
                .where(Task.assignee_id == m.user_id, Task.status == "open")
            )
            assert m.load == leads + tasks
        assert sum(m.load for m in roster.members) > 0


async def test_the_reports_and_loads_use_their_indexes(db: Database) -> None:
    """The plans name the indexes of migration 0002 (SQLite's EXPLAIN QUERY PLAN; on
    PostgreSQL, with sequential scans disabled, the index must still be usable)."""
    from sqlalchemy import text

    await _seeded(db)
    # Each query, and the indexes of which one must serve it (seeks, not table scans).
    checks = {
        "SELECT owner_id, count(*) FROM leads WHERE status IN ('new', 'in_progress') "
        "AND owner_id IS NOT NULL GROUP BY owner_id": (
            "ix_leads_status_owner",
            "ix_leads_owner_created",
            "ix_leads_status",
        ),
        "SELECT assignee_id, count(*) FROM tasks WHERE status = 'open' "
        "AND assignee_id IS NOT NULL GROUP BY assignee_id": (
            "ix_tasks_status_assignee",
            "ix_tasks_assignee_created",
            "ix_tasks_status",
        ),
        "SELECT user_id, channel, count(*) FROM interactions WHERE user_id = 2 "
        "AND occurred_at >= '2025-12-01' GROUP BY user_id, channel": (
            "ix_interactions_user_activity",
        ),
        "SELECT id FROM tasks WHERE due_at IS NOT NULL ORDER BY due_at, id LIMIT 5": (
            "ix_tasks_due_order",
        ),
    }
    async with db.transaction() as s:
        # A lived-in base: most leads and tasks are closed.
        s.add_all(
            Lead(status="rejected", source="call", owner_id=2 + i % 3, created_at=T0)
            for i in range(3000)
        )
        s.add_all(
            Task(kind="call_back", title="t", status="done", assignee_id=2 + i % 3)
            for i in range(3000)
        )
    async with db.engine.connect() as conn:
        await conn.execute(text("ANALYZE"))  # planner statistics, as a live base has them
        if db.is_postgres:
            await conn.execute(text("SET enable_seqscan = off"))
            await conn.execute(text("SET enable_bitmapscan = off"))
        for sql, indexes in checks.items():
            prefix = "EXPLAIN " if db.is_postgres else "EXPLAIN QUERY PLAN "
            plan = " ".join(str(r) for r in await conn.execute(text(prefix + sql)))
            assert any(i in plan for i in indexes), (sql, plan)
            assert "Seq Scan" not in plan and "SCAN leads" not in plan, (sql, plan)


async def test_migration_0002_keeps_rows_and_fills_what_it_adds(db: Database) -> None:
    """Down to 0001, rows written there (no triggers yet), then up again: every row is
    kept, the daily counts and the name search cover the rows that predate 0002."""
    from sqlalchemy import text

    from crm_core.db import downgrade_to, migrate

    await _seeded(db)
    await downgrade_to(db, "0001")
    async with db.engine.begin() as conn:
        assert await conn.scalar(text("SELECT version_num FROM alembic_version")) == "0001"
        await conn.execute(
            text(
                "INSERT INTO clients (id, kind, name, status, owner_id, notes, created_at, "
                "updated_at) VALUES (500, 'company', 'Старый Клён', 'cold', 2, '', "
                "'2025-01-01 00:00:00', '2025-01-01 00:00:00')"
            )
        )
        await conn.execute(
            text(
                "INSERT INTO interactions (id, client_id, channel, direction, kind, "
                "classification, user_id, meta, occurred_at, created_at) VALUES (5000, 500, "
                "'call', 'out', 'call_ended', 'regular', 2, '{}', '2025-12-20 10:00:00', "
                "'2025-12-20 10:00:00')"
            )
        )
    await migrate(db)
    async with db.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(Interaction)) == 401
        for actor in (ADMIN, MANAGER):
            for start, end in WINDOWS:
                got = await analytics.manager_activity(s, actor, start, end)
                want = await ref.manager_activity(s, actor, start, end)
                assert _no_overdue(got) == _no_overdue(want)
        found = await list_clients(s, ADMIN, ListFilter(q="клён"))
        assert [c["id"] for c in found.items] == [500]


@pytest.mark.parametrize(
    ("q", "name_search"),
    [
        ("8 (916) 123-45-67", False),
        ("BOSS@Firm.ru", False),
        ("7700250009", False),  # an INN
        ("кузнецова", True),
        ("Ромашка-5", True),
        ("12345", True),  # digits, but neither a phone nor an INN
    ],
)
async def test_search_runs_the_name_part_only_for_names(
    db: Database, q: str, name_search: bool
) -> None:
    """A phone, an email or an INN is an index seek; the trigram name part (a GIN scan of
    clients and contact persons) runs only when q can be a name."""
    from crm_core.services.search import client_ids_matching

    async with db.sessions() as s:
        sql = str(client_ids_matching(s, q).compile(dialect=s.get_bind().dialect))
        assert ("name" in sql or "_fts" in sql) is name_search, sql
