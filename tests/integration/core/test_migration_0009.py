"""Migration 0009_sales_plans on SQLite and PostgreSQL: rows written before it are kept
and its new figures (talk time per month, a lead's first response) are filled from
them; the triggers keep them afterwards; the downgrade keeps every row and the monthly
counts working."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alembic import command
from sqlalchemy import func, select, text

from crm_core.access import Actor
from crm_core.db import Database, _alembic_config, migrate
from crm_core.models import Interaction, InteractionMonthly, Lead, User
from crm_core.services import analytics
from tests.support import analytics_reference as ref

ADMIN = Actor(1, "admin")


async def _to(db: Database, revision: str) -> None:
    async with db.engine.connect() as conn:
        await conn.run_sync(lambda c: command.downgrade(_alembic_config(c), revision))
        await conn.commit()


def _no_overdue(report: dict) -> list[dict]:
    return [{k: v for k, v in i.items() if k != "tasks_overdue"} for i in report["items"]]


async def test_migration_0009_fills_talk_time_and_first_response_and_downgrades(
    db: Database,
) -> None:
    await _to(db, "0005_imports")
    async with db.engine.begin() as conn:
        assert await conn.scalar(text("SELECT version_num FROM alembic_version")) == "0005_imports"
        await conn.execute(
            text(
                "INSERT INTO users (id, email, name, role, token_hash, active, timezone, "
                "working_hours, absences, weight, locale, created_at) VALUES "
                "(1, 'a@x.ru', 'A', 'admin', 'h1', true, 'UTC', '{}', '[]', 1, 'ru', "
                "'2026-01-01 00:00:00'), (2, 'm@x.ru', 'M', 'manager', 'h2', true, 'UTC', "
                "'{}', '[]', 1, 'ru', '2026-01-01 00:00:00')"
            )
        )
        await conn.execute(
            text(
                "INSERT INTO leads (id, status, source, title, needs_review, utm, tags, "
                "owner_id, created_at, updated_at) VALUES (1, 'new', 'call', 't', false, '{}', "
                "'[]', 2, '2026-01-05 10:00:00', '2026-01-05 10:00:00'), (2, 'new', 'email', "
                "'t', false, '{}', '[]', 2, '2026-01-06 10:00:00', '2026-01-06 10:00:00')"
            )
        )
        rows = [
            # id, lead, direction, outcome, duration, at
            (1, 1, "in", "missed", 0, "2026-01-05 10:00:30"),
            (2, 1, "out", "answered", 95, "2026-01-05 10:20:00"),
            (3, 1, "out", "answered", 40, "2026-01-05 10:10:00"),
            (4, None, "in", "answered", 300, "2026-02-01 09:00:00"),
        ]
        for iid, lead, direction, outcome, duration, at in rows:
            await conn.execute(
                text(
                    "INSERT INTO interactions (id, lead_id, channel, direction, kind, outcome, "
                    "classification, duration_s, user_id, meta, occurred_at, created_at) "
                    f"VALUES ({iid}, {lead or 'NULL'}, 'call', '{direction}', 'call_ended', "
                    f"'{outcome}', 'regular', {duration}, 2, '{{}}', '{at}', '{at}')"
                )
            )
    await migrate(db)
    async with db.sessions() as s:
        lead = await s.get(Lead, 1)
        assert lead is not None and lead.first_response_at == datetime(
            2026, 1, 5, 10, 10, tzinfo=UTC
        )
        talk = await s.scalar(select(func.sum(InteractionMonthly.talk_s)))
        assert talk == 95 + 40 + 300
        got = await analytics.manager_activity(s, ADMIN, None, None)
        assert _no_overdue(got) == _no_overdue(await ref.manager_activity(s, ADMIN, None, None))
        mine = next(i for i in got["items"] if i["user_id"] == 2)
        assert mine["talk_s"] == 435 and mine["first_response_avg_s"] == 600

    # The triggers keep both from now on: an earlier answer, a changed duration, a delete.
    async with db.transaction() as s:
        s.add(
            Interaction(
                id=10,
                lead_id=2,
                channel="email",
                direction="out",
                kind="email_sent",
                user_id=2,
                occurred_at=datetime(2026, 1, 6, 11, tzinfo=UTC),
            )
        )
        first = await s.get(Interaction, 4)
        assert first is not None
        first.duration_s = 200
        await s.delete(await s.get(Interaction, 2))
    async with db.sessions() as s:
        lead2 = await s.get(Lead, 2)
        assert lead2 is not None and lead2.first_response_at == datetime(2026, 1, 6, 11, tzinfo=UTC)
        assert await s.scalar(select(func.sum(InteractionMonthly.talk_s))) == 40 + 200
        got = await analytics.manager_activity(s, ADMIN, None, None)
        assert _no_overdue(got) == _no_overdue(await ref.manager_activity(s, ADMIN, None, None))

    # Down again: every row kept, the 0004 counts still follow new interactions.
    await _to(db, "0005_imports")
    async with db.engine.begin() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM interactions")) == 4
        assert await conn.scalar(text("SELECT count(*) FROM leads")) == 2
        before = await conn.scalar(text("SELECT sum(n) FROM interaction_monthly"))
        at = (datetime(2026, 3, 1, tzinfo=UTC) + timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S")
        await conn.execute(
            text(
                "INSERT INTO interactions (id, channel, direction, kind, classification, "
                f"user_id, meta, occurred_at, created_at) VALUES (11, 'call', 'out', "
                f"'call_ended', 'regular', 2, '{{}}', '{at}', '{at}')"
            )
        )
        assert await conn.scalar(text("SELECT sum(n) FROM interaction_monthly")) == before + 1
    await migrate(db)
    async with db.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(User)) == 2
        got = await analytics.manager_activity(s, ADMIN, None, None)
        assert _no_overdue(got) == _no_overdue(await ref.manager_activity(s, ADMIN, None, None))
