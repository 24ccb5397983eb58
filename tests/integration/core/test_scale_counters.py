"""Issue 11, item 4: owner loads are counters kept by the database in the writer's own
transaction (migration 0007), equal to a naive recount after any change, and the
assigner's cached roster follows changes to users made by anyone."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from sqlalchemy import delete, func, select, text, update

from crm_core.db import Database
from crm_core.events import Channel, EventKind, InboundEvent
from crm_core.hub import Hub
from crm_core.models import Lead, Task, User
from crm_core.pipeline.load_counters import read_counters
from crm_core.pipeline.rules_assigner import RulesAssigner
from routing_rules import RuleSet


async def _naive(db: Database) -> dict[int, int]:
    out: dict[int, int] = {}
    async with db.sessions() as s:
        for owner, n in await s.execute(
            select(Lead.owner_id, func.count())
            .where(Lead.status.in_(("new", "in_progress")), Lead.owner_id.is_not(None))
            .group_by(Lead.owner_id)
        ):
            out[owner] = out.get(owner, 0) + n
        for owner, n in await s.execute(
            select(Task.assignee_id, func.count())
            .where(Task.status == "open", Task.assignee_id.is_not(None))
            .group_by(Task.assignee_id)
        ):
            out[owner] = out.get(owner, 0) + n
    return out


async def _counted(db: Database) -> dict[int, int]:
    async with db.sessions() as s:
        _, loads = await read_counters(s)
    return {k: v for k, v in loads.items() if v}


async def _managers(db: Database, n: int) -> list[int]:
    async with db.transaction() as s:
        users = [
            User(
                email=f"c{i}-{secrets.token_hex(3)}@ex.ru",
                name=f"M{i}",
                role="manager",
                token_hash=secrets.token_hex(32),
            )
            for i in range(n)
        ]
        s.add_all(users)
        await s.flush()
        return [u.id for u in users]


async def test_counters_follow_every_kind_of_change(db: Database) -> None:
    a, b, c = await _managers(db, 3)
    async with db.transaction() as s:
        s.add_all(Lead(status="new", source="call", owner_id=a) for _ in range(3))
        s.add_all(Lead(status="rejected", source="call", owner_id=a) for _ in range(2))
        s.add(Lead(status="in_progress", source="call", owner_id=b))
        s.add(Lead(status="new", source="call", owner_id=None))
        s.add_all(Task(kind="call_back", title="t", assignee_id=c) for _ in range(2))
        s.add(Task(kind="call_back", title="t", status="done", assignee_id=c))
    assert await _counted(db) == await _naive(db) == {a: 3, b: 1, c: 2}

    async with db.transaction() as s:
        first = await s.scalar(select(Lead).where(Lead.owner_id == a).order_by(Lead.id).limit(1))
        assert first is not None
        first.owner_id = b  # handed over
        first.status = "in_progress"  # and taken in work: still open, one write each side
        await s.flush()
        await s.execute(  # closed in bulk
            update(Lead).where(Lead.owner_id == b, Lead.id != first.id).values(status="converted")
        )
        await s.execute(update(Task).where(Task.assignee_id == c).values(status="done"))
        await s.execute(  # reopened for someone else
            update(Lead).where(Lead.status == "rejected").values(status="new", owner_id=c)
        )
        await s.execute(  # the ownerless lead is claimed
            update(Lead).where(Lead.owner_id.is_(None)).values(owner_id=a)
        )
    assert await _counted(db) == await _naive(db) == {a: 3, b: 1, c: 2}

    async with db.transaction() as s:
        await s.execute(delete(Lead).where(Lead.owner_id == c))
        await s.execute(update(Lead).where(Lead.owner_id == a).values(title="renamed"))
    assert await _counted(db) == await _naive(db) == {a: 3, b: 1}

    # A rolled-back transaction leaves the counters as they were.
    try:
        async with db.transaction() as s:
            s.add(Lead(status="new", source="call", owner_id=b))
            await s.flush()
            raise RuntimeError("abort")
    except RuntimeError:
        pass
    assert await _counted(db) == {a: 3, b: 1}


async def test_pipeline_leads_count_and_the_cached_roster_sees_user_changes(
    db: Database,
) -> None:
    a, b = await _managers(db, 2)
    rules = RuleSet.default()
    assigner = RulesAssigner(lambda: rules, postgres=db.is_postgres)
    hub = Hub(db, assigner=assigner)
    await hub.start()
    try:

        async def submit(i: int) -> int | None:
            r = await hub(
                InboundEvent(
                    channel=Channel.WEBFORM,
                    kind=EventKind.FORM_SUBMITTED,
                    external_id=f"cnt-{i}",
                    occurred_at=datetime.now(UTC),
                    identities=(f"phone:+7915{i:07d}",),
                    source="site",
                ),
                wait=True,
            )
            return r.lead_id

        owners = []
        for i in range(4):
            lead_id = await submit(i)
            async with db.sessions() as s:
                owners.append(await s.scalar(select(Lead.owner_id).where(Lead.id == lead_id)))
        assert set(owners) == {a, b}
        assert await _counted(db) == await _naive(db)

        # Another process (raw SQL, not the services) deactivates b: the next leads go
        # to a only, although the assigner had b in its cached roster.
        async with db.engine.begin() as conn:
            await conn.execute(text(f"UPDATE users SET active = false WHERE id = {b}"))
        for i in range(4, 8):
            lead_id = await submit(i)
            async with db.sessions() as s:
                assert await s.scalar(select(Lead.owner_id).where(Lead.id == lead_id)) == a
        assert await _counted(db) == await _naive(db)
    finally:
        await hub.stop()


async def test_a_routed_lead_reads_no_users_and_recounts_nothing(db: Database) -> None:
    """With the rules assigner (the service's), a lone submission after the first reads
    neither the users nor leads or tasks to count them: one read of the pointers and
    counters, in its one transaction."""
    from sqlalchemy import event as sa_event

    await _managers(db, 3)
    rules = RuleSet.default()
    hub = Hub(db, assigner=RulesAssigner(lambda: rules, postgres=db.is_postgres))
    await hub.start()
    seen: list[str] = []

    def on_execute(*args: object) -> None:
        seen.append(" ".join(str(args[2]).split()))

    def form(i: int) -> InboundEvent:
        return InboundEvent(
            channel=Channel.WEBFORM,
            kind=EventKind.FORM_SUBMITTED,
            external_id=f"rt-{i}",
            occurred_at=datetime.now(UTC),
            identities=(f"phone:+7914{i:07d}",),
            source="site",
        )

    try:
        await hub(form(0), wait=True)
        sa_event.listen(db.engine.sync_engine, "before_cursor_execute", on_execute)
        try:
            receipt = await hub(form(1), wait=True)
        finally:
            sa_event.remove(db.engine.sync_engine, "before_cursor_execute", on_execute)
    finally:
        await hub.stop()
    assert receipt.lead_id is not None
    assert not [q for q in seen if "FROM users" in q or "count(" in q.lower()], seen
    statements = [q for q in seen if q.split()[0].upper() not in ("BEGIN", "COMMIT")]
    assert len(statements) <= (9 if db.is_postgres else 8), seen


async def test_migration_0007_fills_the_counters_from_existing_rows(db: Database) -> None:
    """Down to the revision before the counters (no counters, no triggers), rows written
    there, then up again: every row is kept and the counters equal a recount of what was
    there before."""
    from crm_core.db import downgrade_to, migrate

    a, b = await _managers(db, 2)
    async with db.transaction() as s:
        s.add_all(Lead(status="new", source="call", owner_id=a) for _ in range(2))
    await downgrade_to(db, "0016_rules_in_db")
    async with db.engine.begin() as conn:
        assert await conn.scalar(text("SELECT version_num FROM alembic_version")) == (
            "0016_rules_in_db"
        )
    async with db.transaction() as s:  # no triggers there: the counters know nothing
        s.add(Task(kind="call_back", title="t", assignee_id=b))
        s.add(Lead(status="in_progress", source="call", owner_id=a))
        await s.execute(update(Lead).where(Lead.status == "new").values(status="rejected"))
    await migrate(db)
    async with db.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(Lead)) == 3
    assert await _counted(db) == await _naive(db) == {a: 1, b: 1}
