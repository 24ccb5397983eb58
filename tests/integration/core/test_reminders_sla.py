"""Reminders, SLA warnings/escalations and queued leads on SQLite and PostgreSQL, with an
injected clock: claims are exactly-once across restarts and concurrent processes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from crm_core.access import Actor
from crm_core.db import Database
from crm_core.models import Lead, Task, User
from crm_core.pipeline.queued import assign_queued, queued_count
from crm_core.pipeline.rules_assigner import RulesAssigner
from crm_core.reminders import (
    SlaConfig,
    claim_reminders,
    claim_sla_breaches,
    claim_sla_warnings,
)
from crm_core.services.tasks import snooze_task
from routing_rules import parse_rules
from tests.support.reminders import add_lead, add_task, add_users

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)  # a Monday, 12:00 in Moscow


async def _reminders(db: Database, now: datetime) -> list[int]:
    async with db.transaction() as s:
        notices = await claim_reminders(s, now, postgres=db.is_postgres)
    return [n.payload["task_id"] for n in notices]


async def test_reminder_fires_once_at_due_time_and_after_a_restart(db: Database) -> None:
    (uid,) = await add_users(db, {"email": "ivanov@ex.ru", "timezone": "Asia/Yekaterinburg"})
    early = await add_task(
        db, kind="send_offer", due_at=T0 + timedelta(minutes=10), assignee_id=uid
    )
    late = await add_task(db, kind="check_payment", due_at=T0 + timedelta(hours=2), assignee_id=uid)
    done = await add_task(db, due_at=T0, assignee_id=uid, status="done")

    assert await _reminders(db, T0) == []
    async with db.transaction() as s:
        notices = await claim_reminders(s, T0 + timedelta(minutes=10), postgres=db.is_postgres)
    assert [n.payload["task_id"] for n in notices] == [early]
    n = notices[0]
    assert n.kind == "task_reminder" and n.user_ids == [uid] and n.owner_id == uid
    assert n.payload["kind_title_ru"] == "Отправить коммерческое предложение"
    assert n.payload["kind_title_en"] == "Send the offer"
    assert n.payload["timezone"] == "Asia/Yekaterinburg"
    assert n.payload["due_local"] == "2025-03-03T14:10:00"  # UTC+5
    assert await _reminders(db, T0 + timedelta(minutes=11)) == []

    # "Restart": a new engine on the same database, hours later; the late reminder
    # (due while the service was down) fires once, the early one never again.
    await db.dispose()
    again = Database(db.url)
    try:
        assert await _reminders(again, T0 + timedelta(hours=5)) == [late]
        assert await _reminders(again, T0 + timedelta(hours=6)) == []
        async with again.sessions() as s:
            rows = {t.id: t for t in await s.scalars(select(Task))}
        assert rows[early].reminded_at == T0 + timedelta(minutes=10)
        assert rows[late].reminded_at == T0 + timedelta(hours=5)
        assert rows[done].reminded_at is None
    finally:
        await again.dispose()


async def test_snooze_resets_the_reminder(db: Database) -> None:
    (uid,) = await add_users(db, {"email": "petrov@ex.ru"})
    tid = await add_task(db, kind="call_back", due_at=T0, assignee_id=uid)
    assert await _reminders(db, T0) == [tid]
    async with db.transaction() as s:
        task = await snooze_task(s, Actor(uid, "manager"), tid, until=None, minutes=30)
        new_due = task.remind_at
        assert task.reminded_at is None and new_due is not None
    assert await _reminders(db, new_due - timedelta(seconds=1)) == []
    assert await _reminders(db, new_due) == [tid]
    assert await _reminders(db, new_due + timedelta(hours=1)) == []


async def test_local_snooze_is_in_the_assignees_time_zone(db: Database) -> None:
    (uid,) = await add_users(db, {"email": "vl@ex.ru", "timezone": "Asia/Vladivostok"})
    tid = await add_task(db, due_at=datetime.now(UTC), assignee_id=uid)
    local = (datetime.now(UTC) + timedelta(days=2)).replace(
        hour=9, minute=30, second=0, microsecond=0, tzinfo=None
    )
    async with db.transaction() as s:
        task = await snooze_task(
            s, Actor(uid, "manager"), tid, until=None, minutes=None, until_local=local
        )
        assert task.remind_at == local.replace(tzinfo=UTC) - timedelta(hours=10)


async def test_two_processes_claim_each_reminder_exactly_once(db: Database) -> None:
    if not db.is_postgres:
        pytest.skip("several processes share a database on PostgreSQL only")
    (uid,) = await add_users(db, {"email": "m@ex.ru"})
    ids = [await add_task(db, due_at=T0 + timedelta(seconds=i), assignee_id=uid) for i in range(60)]
    nodes = [Database(db.url), Database(db.url)]
    try:

        async def node(d: Database) -> list[int]:
            got: list[int] = []
            for k in range(6):  # several rounds each, interleaved
                async with d.transaction() as s:
                    notices = await claim_reminders(
                        s, T0 + timedelta(minutes=5), postgres=True, limit=7 + k
                    )
                got += [n.payload["task_id"] for n in notices]
                await asyncio.sleep(0)
            return got

        a, b = await asyncio.gather(node(nodes[0]), node(nodes[1]))
        async with nodes[0].transaction() as s:
            rest = await claim_reminders(s, T0 + timedelta(minutes=5), postgres=True)
        fired = a + b + [n.payload["task_id"] for n in rest]
        assert sorted(fired) == ids  # every one, none twice
    finally:
        for d in nodes:
            await d.dispose()


async def test_sla_warning_then_breach_escalates_to_the_supervisor(db: Database) -> None:
    mgr, sup, _other_sup = await add_users(
        db,
        {"email": "mgr@ex.ru", "team": "sales"},
        {"email": "boss@ex.ru", "role": "supervisor", "team": "sales"},
        {"email": "boss2@ex.ru", "role": "supervisor", "team": "support"},
    )
    # A 15-minute first-reply SLA: warned at min(5 min, 20% x 15 = 3 min) before.
    tid = await add_task(
        db,
        kind="first_reply",
        title="Ответить на заявку #1",
        created_at=T0,
        sla_due_at=T0 + timedelta(minutes=15),
        assignee_id=mgr,
    )
    cfg = SlaConfig(warning_minutes=5, warning_fraction=0.2, mail_from="crm@ex.ru")
    pg = db.is_postgres

    async def round_(now: datetime) -> dict[str, list]:
        async with db.transaction() as s:
            br = await claim_sla_breaches(s, now, postgres=pg)
            wa = await claim_sla_warnings(s, now, cfg, postgres=pg)
        return {"breach": br, "warn": wa}

    r = await round_(T0 + timedelta(minutes=11))  # 4 minutes left: not yet
    assert r == {"breach": [], "warn": []}
    r = await round_(T0 + timedelta(minutes=12))  # 3 minutes left
    assert not r["breach"] and len(r["warn"]) == 1
    warn = r["warn"][0]
    assert warn.kind == "sla_warning" and warn.user_ids == [mgr]
    assert warn.payload["task_id"] == tid and warn.payload["minutes_left"] == 3.0
    assert warn.email is not None and warn.email["to"] == ["mgr@ex.ru"]
    assert (await round_(T0 + timedelta(minutes=13)))["warn"] == []  # warned once

    r = await round_(T0 + timedelta(minutes=16))
    assert not r["warn"] and len(r["breach"]) == 1
    br = r["breach"][0]
    assert br.kind == "sla_breached" and br.user_ids == [sup] and br.owner_id == mgr
    assert br.payload["team"] == "sales" and br.payload["overdue_minutes"] == 1.0
    assert await round_(T0 + timedelta(hours=3)) == {"breach": [], "warn": []}
    async with db.sessions() as s:
        task = await s.get(Task, tid)
        assert task is not None
        assert task.sla_warned_at == T0 + timedelta(minutes=12)
        assert task.escalated_at == T0 + timedelta(minutes=16)


async def test_breach_of_a_queued_lead_goes_to_the_queue_teams_supervisor(db: Database) -> None:
    (sup,) = await add_users(db, {"email": "vipboss@ex.ru", "role": "supervisor", "team": "vip"})
    lead = await add_lead(db, T0, "vip")
    await add_task(
        db, kind="first_reply", lead_id=lead, created_at=T0, sla_due_at=T0 + timedelta(minutes=15)
    )
    async with db.transaction() as s:
        # Far past the deadline at the first look: escalated, no warning afterwards.
        br = await claim_sla_breaches(s, T0 + timedelta(hours=1), postgres=db.is_postgres)
        wa = await claim_sla_warnings(s, T0 + timedelta(hours=1), SlaConfig(), postgres=False)
    assert [n.user_ids for n in br] == [[sup]] and br[0].payload["team"] == "vip"
    assert br[0].owner_id is None and wa == []


QUEUE_RULES = """
rules:
  - id: vip
    assign:
      team: vip
      strategy: round_robin
"""


async def test_queued_leads_are_assigned_oldest_first_when_someone_is_available(
    db: Database,
) -> None:
    (off,) = await add_users(db, {"email": "vip1@ex.ru", "team": "vip", "active": False})
    first = await add_lead(db, T0, "vip", title="first")
    second = await add_lead(db, T0 + timedelta(minutes=1), "vip", title="second")
    await add_task(db, kind="first_reply", lead_id=first, sla_due_at=T0 + timedelta(hours=1))
    rules = parse_rules(QUEUE_RULES)
    assigner = RulesAssigner(lambda: rules, postgres=db.is_postgres, clock=lambda: T0)

    async with db.transaction() as s:
        assert await assign_queued(s, assigner, postgres=db.is_postgres) == []
    assigner.invalidate()
    async with db.transaction() as s:
        (await s.get(User, off)).active = True  # type: ignore[union-attr]
        await s.execute(select(User))
    async with db.transaction() as s:
        notices = await assign_queued(s, assigner, postgres=db.is_postgres, limit=1)
    assigner.invalidate()
    assert [(n.kind, n.payload["lead_id"], n.user_ids) for n in notices] == [
        ("lead_assigned", first, [off])
    ]
    assert notices[0].payload["from_queue"] == "vip"
    async with db.sessions() as s:
        lead = await s.get(Lead, first)
        assert lead is not None and lead.owner_id == off and lead.queue is None
        assert lead.rule_id == "vip" and "round robin" in (lead.assign_reason or "")
        task = await s.scalar(select(Task).where(Task.lead_id == first))
        assert task is not None and task.assignee_id == off
        assert await queued_count(s) == 1
    async with db.transaction() as s:
        notices = await assign_queued(s, assigner, postgres=db.is_postgres)
    assert [n.payload["lead_id"] for n in notices] == [second]
    async with db.sessions() as s:
        assert await queued_count(s) == 0
