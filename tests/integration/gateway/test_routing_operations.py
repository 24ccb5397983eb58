"""Issue 6 through the whole app: the rules API (read, replace with line/column errors,
explain), the Russian assignment reason on the lead, reminders across a restart and in
two app instances on one PostgreSQL database, SLA warning then escalation in /metrics."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from crm_core.db import Database
from crm_core.live import LiveEvent
from crm_core.models import Task
from gateway.app import create_app
from gateway.keys import LIVE
from gateway.sla import SLA
from tests.support.app import add_form, add_user, make_settings, running
from tests.support.reminders import add_task

RULES_V1 = """\
version: 1
rules:
  - id: everyone
    assign:
      role: manager
      strategy: round_robin
"""

BAD_RULES = """\
version: 1
rules:
  - id: a
    when:
      chanel: webform
    assign:
      team: x
      strategy: fastest
"""


def rules_v2(user_id: int) -> str:
    return f"""\
version: 1
rules:
  - id: site-forms
    description: website forms go to the form desk
    when:
      channel: webform
    assign:
      user: {user_id}
    sla_minutes: 15
    task:
      kind: call_back
      title: Перезвонить по заявке
"""


def drain(events: Any) -> list[LiveEvent]:
    out = []
    while not events.queue.empty():
        out.append(events.queue.get_nowait())
    return out


async def test_rules_api_replace_explain_and_reason_on_the_lead(
    db_url: str, tmp_path: Path
) -> None:
    _, admin = await add_user(db_url, "admin@ex.ru", "admin")
    _, sup = await add_user(db_url, "sup@ex.ru", "supervisor", team="sales")
    desk_id, manager = await add_user(db_url, "desk@ex.ru", "manager", team="sales")
    key, secret = await add_form(db_url)
    path = tmp_path / "routing.yaml"
    path.write_text(RULES_V1, encoding="utf-8")
    app = create_app(make_settings(db_url, tmp_path, routing_rules_path=str(path)))
    A = {"Authorization": f"Bearer {admin}"}
    async with running(app) as client:
        r = await client.get("/api/v1/rules", headers=A)
        body = await r.json()
        assert r.status == 200 and body["text"] == RULES_V1 and body["in_force"] is True
        assert [x["id"] for x in body["rules"]] == ["everyone"]
        first_digest = body["digest"]
        assert len(first_digest) == 64

        r = await client.get("/api/v1/rules", headers={"Authorization": f"Bearer {manager}"})
        assert r.status == 403
        r = await client.put(
            "/api/v1/rules", data=RULES_V1, headers={"Authorization": f"Bearer {sup}"}
        )
        assert r.status == 403

        # Invalid: 422 with every error located; the file and the rules stay.
        r = await client.put("/api/v1/rules", json={"yaml": BAD_RULES}, headers=A)
        body = await r.json()
        assert r.status == 422, body
        errors = {(e["line"], e["column"]) for e in body["errors"]}
        assert (5, 7) in errors  # the unknown key 'chanel'
        assert (8, 17) in errors  # strategy: fastest
        assert any("chanel" in e["message"] for e in body["errors"])
        r = await client.put("/api/v1/rules", data="rules: [unclosed", headers=A)
        body = await r.json()
        assert r.status == 422 and body["errors"][0]["line"] == 1
        assert "YAML syntax" in body["errors"][0]["message"]
        assert path.read_text(encoding="utf-8") == RULES_V1

        # Valid (YAML as the body): written and in force at once.
        r = await client.put(
            "/api/v1/rules",
            data=rules_v2(desk_id).encode(),
            headers={**A, "Content-Type": "application/yaml"},
        )
        body = await r.json()
        assert r.status == 200, body
        assert path.read_text(encoding="utf-8") == rules_v2(desk_id)
        assert body["in_force"] is True and body["digest"] != first_digest
        assert body["rules"][0]["id"] == "site-forms"
        assert body["rules"][0]["sla_minutes"] == 15
        leftovers = await asyncio.to_thread(lambda: list(tmp_path.glob(".routing.yaml.*")))
        assert leftovers == []  # no temp file left

        # Explain (supervisor), writing nothing; a manager may not.
        event = {
            "channel": "webform",
            "kind": "form_submitted",
            "external_id": "x-1",
            "occurred_at": "2025-03-03T09:00:00Z",
            "identities": ["phone:+79165551234"],
        }
        S = {"Authorization": f"Bearer {sup}"}
        r = await client.post("/api/v1/rules/explain", json=event, headers=S)
        body = await r.json()
        assert r.status == 200, body
        chosen = [x for x in body["rules"] if x["selected"]]
        assert [x["rule_id"] for x in chosen] == ["site-forms"]
        assert chosen[0]["decision"]["user_id"] == desk_id
        assert body["context"]["channel"] == "webform" and body["context"]["region"] is None
        r = await client.post(
            "/api/v1/rules/explain", json={"event": event, "yaml": RULES_V1}, headers=S
        )
        chosen = [x for x in (await r.json())["rules"] if x["selected"]]
        assert [x["rule_id"] for x in chosen] == ["everyone"]
        r = await client.post("/api/v1/rules/explain", json={**event, "channel": "fax"}, headers=S)
        assert r.status == 422 and (await r.json())["field"]
        r = await client.post(
            "/api/v1/rules/explain",
            json=event,
            headers={"Authorization": f"Bearer {manager}"},
        )
        assert r.status == 403

        # A form lead now follows the new rule; both reasons are on the lead.
        r = await client.post(
            f"/hooks/forms/{key}?secret={secret}", data={"name": "Анна", "phone": "+79165551234"}
        )
        assert r.status == 201, await r.text()
        r = await client.get("/api/v1/leads", headers=A)
        lead = (await r.json())["items"][0]
        assert lead["owner_id"] == desk_id and lead["rule_id"] == "site-forms"
        assert lead["assign_reason"] and " / " not in lead["assign_reason"]
        assert lead["assign_reason_ru"] and "site-forms" in lead["assign_reason_ru"]
        r = await client.get("/api/v1/tasks", headers=A)
        task = (await r.json())["items"][0]
        assert task["kind"] == "call_back" and task["sla_due_at"] is not None


async def test_reminders_survive_a_restart_and_local_due_times(db_url: str, tmp_path: Path) -> None:
    uid, token = await add_user(db_url, "ekb@ex.ru", "manager")
    db = Database(db_url)
    async with db.transaction() as s:
        from crm_core.models import User

        user = await s.get(User, uid)
        assert user is not None
        user.timezone = "Asia/Yekaterinburg"
    settings = make_settings(db_url, tmp_path, sla_poll_seconds=0)
    H = {"Authorization": f"Bearer {token}"}
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date()
    local = f"{tomorrow.isoformat()}T10:00:00"
    due = datetime.fromisoformat(local).replace(tzinfo=UTC) - timedelta(hours=5)

    app1 = create_app(settings)
    async with running(app1) as client:
        r = await client.post(
            "/api/v1/tasks",
            json={"kind": "send_documents", "title": "Договор", "due_local": local},
            headers=H,
        )
        body = await r.json()
        assert r.status == 201, body
        assert body["due_at"].startswith(due.isoformat()[:19])
        tid = body["id"]
        async with app1[LIVE].subscribe() as events:
            assert await app1[SLA].tick(due - timedelta(seconds=1)) == {}
            assert await app1[SLA].tick(due) == {"task_reminder": 1}
            got = drain(events)
        assert [(e.kind, e.payload["task_id"], e.user_ids) for e in got] == [
            ("task_reminder", tid, (uid,))
        ]
        assert got[0].payload["due_local"] == local
        assert got[0].payload["kind_title_en"] == "Send the documents"
    # While the service is down, another task comes due.
    other = await add_task(
        db, kind="check_payment", due_at=due + timedelta(hours=1), assignee_id=uid
    )
    await db.dispose()

    app2 = create_app(settings)
    async with running(app2) as client:
        async with app2[LIVE].subscribe() as events:
            assert await app2[SLA].tick(due + timedelta(hours=3)) == {"task_reminder": 1}
            assert await app2[SLA].tick(due + timedelta(hours=4)) == {}
            assert [e.payload["task_id"] for e in drain(events)] == [other]
        # Snoozing over the API rearms it.
        r = await client.post(f"/api/v1/tasks/{tid}/snooze", json={"minutes": 30}, headers=H)
        body = await r.json()
        assert r.status == 200 and body["reminded_at"] is None
        again = datetime.fromisoformat(body["remind_at"].replace("Z", "+00:00"))
        assert await app2[SLA].tick(again) == {"task_reminder": 1}


async def test_two_app_instances_fire_each_reminder_exactly_once(
    db_url: str, tmp_path: Path
) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("two hub processes share a database on PostgreSQL only")
    uid, _ = await add_user(db_url, "m@ex.ru", "manager")
    settings = make_settings(db_url, tmp_path, sla_poll_seconds=0.02)
    apps = [create_app(settings), create_app(settings)]
    db = Database(db_url)
    try:
        async with running(apps[0]), running(apps[1]):
            subs = [a[LIVE].subscribe() for a in apps]
            queues = [await s.__aenter__() for s in subs]
            now = datetime.now(UTC)
            ids = [
                await add_task(db, due_at=now - timedelta(seconds=i), assignee_id=uid)
                for i in range(40)
            ]
            for _ in range(200):
                async with db.sessions() as s:
                    left = await s.scalar(
                        select(func.count()).select_from(Task).where(Task.reminded_at.is_(None))
                    )
                if left == 0:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.2)
            fired: list[int] = []
            per_app = []
            for app, q in zip(apps, queues, strict=True):
                own = [
                    e.payload["task_id"]
                    for e in drain(q)
                    if e.kind == "task_reminder" and e.origin == app[LIVE].node_id
                ]
                per_app.append(len(own))
                fired += own
            for s in subs:
                await s.__aexit__(None, None, None)
        assert sorted(fired) == sorted(ids), per_app
    finally:
        await db.dispose()


async def test_sla_warning_then_breach_escalates_and_is_counted(
    db_url: str, tmp_path: Path
) -> None:
    mgr, _ = await add_user(db_url, "mgr@ex.ru", "manager", team="sales")
    sup, _ = await add_user(db_url, "sup@ex.ru", "supervisor", team="sales")
    app = create_app(make_settings(db_url, tmp_path, sla_poll_seconds=0))
    t0 = datetime.now(UTC).replace(microsecond=0)
    db = Database(db_url)
    try:
        async with running(app) as client:
            tid = await add_task(
                db,
                kind="first_reply",
                title="Ответить на заявку",
                created_at=t0,
                sla_due_at=t0 + timedelta(minutes=60),
                assignee_id=mgr,
            )
            worker = app[SLA]
            async with app[LIVE].subscribe() as events:
                assert await worker.tick(t0 + timedelta(minutes=54)) == {}
                assert await worker.tick(t0 + timedelta(minutes=55)) == {"sla_warning": 1}
                assert await worker.tick(t0 + timedelta(minutes=59)) == {}
                assert await worker.tick(t0 + timedelta(minutes=61)) == {"sla_breached": 1}
                assert await worker.tick(t0 + timedelta(minutes=90)) == {}
                got = drain(events)
            assert [(e.kind, e.payload["task_id"], e.user_ids) for e in got] == [
                ("sla_warning", tid, (mgr,)),
                ("sla_breached", tid, (sup,)),
            ]
            metrics = await (await client.get("/metrics")).text()
            assert "crmhub_sla_breaches_total 1.0" in metrics
    finally:
        await db.dispose()
