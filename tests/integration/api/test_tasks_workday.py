"""Tasks in a manager's day: kinds, reminder times, complete with a result and the next
task, snooze presets, reassign by role, ``?due=today|week|overdue``, audit old -> new."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from crm_core.models import AuditEntry, Task
from crm_core.services.tasks import due_window, preset_time
from gateway.api.responses import TaskDoneOut, TaskOut
from tests.support.api import Api


async def _client(api: Api, who: str = "a1") -> int:
    status, client = await api.as_(who).post("/clients", {"name": f"Клиент {who}"})
    assert status == 201, client
    return int(client["id"])


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def test_meeting_with_a_reminder_before_it(api: Api) -> None:
    a1 = api.as_("a1")
    due = datetime(2031, 3, 4, 12, 0, tzinfo=UTC)
    status, task = await a1.post(
        "/tasks",
        {
            "kind": "meeting",
            "title": "Встреча в офисе",
            "due_at": due.isoformat(),
            "remind_before": 30,
            "client_id": await _client(api),
        },
    )
    assert status == 201, task
    TaskOut.model_validate(task)
    assert (task["kind_title_ru"], task["kind_title_en"]) == ("Встреча", "Meeting")
    assert _at(task["remind_at"]) == due - timedelta(minutes=30)
    # Moving the due time keeps the reminder's lead.
    status, moved = await a1.patch(
        f"/tasks/{task['id']}", {"due_at": (due + timedelta(days=1)).isoformat()}
    )
    assert status == 200, moved
    assert _at(moved["remind_at"]) == due + timedelta(days=1) - timedelta(minutes=30)
    # A reminder after the due time is refused, naming the field; nothing changes.
    status, err = await a1.patch(
        f"/tasks/{task['id']}", {"remind_at": (due + timedelta(days=3)).isoformat()}
    )
    assert (status, err["field"]) == (422, "remind_at")
    status, same = await a1.get(f"/tasks/{task['id']}")
    assert same["remind_at"] == moved["remind_at"]
    async with api.db.sessions() as s:
        entry = await s.scalar(
            select(AuditEntry)
            .where(AuditEntry.entity == "task", AuditEntry.action == "update")
            .order_by(AuditEntry.id.desc())
        )
    assert entry is not None
    old, new = entry.details["changes"]["due_at"]
    assert _at(new) - _at(old) == timedelta(days=1)


async def test_complete_with_result_and_plan_the_next(api: Api) -> None:
    a1 = api.as_("a1")
    client_id = await _client(api)
    status, task = await a1.post(
        "/tasks", {"kind": "call_back", "title": "Перезвонить", "client_id": client_id}
    )
    assert status == 201
    nxt_due = datetime(2031, 1, 10, 9, 0, tzinfo=UTC)
    status, done = await a1.post(
        f"/tasks/{task['id']}/done",
        {
            "result": "Договорились о КП",
            "next": {"kind": "send_offer", "title": "Отправить КП", "due_at": nxt_due.isoformat()},
        },
    )
    assert status == 200, done
    TaskDoneOut.model_validate(done)
    assert (done["status"], done["result"]) == ("done", "Договорились о КП")
    nxt = done["next_task"]
    assert nxt["kind"] == "send_offer" and nxt["client_id"] == client_id
    assert nxt["assignee_id"] == api.users["a1"].id and _at(nxt["due_at"]) == nxt_due
    # A bad next task rolls the completion back too.
    status, other = await a1.post("/tasks", {"title": "Ещё"})
    status, err = await a1.post(
        f"/tasks/{other['id']}/done",
        {"result": "x", "next": {"title": "чужому", "assignee_id": api.users["b1"].id}},
    )
    assert (status, err["field"]) == (403, "assignee_id")
    status, still = await a1.get(f"/tasks/{other['id']}")
    assert still["status"] == "open" and still["result"] is None


async def test_snooze_presets_in_the_assignees_zone(api: Api) -> None:
    a1 = api.as_("a1")
    status, task = await a1.post("/tasks", {"title": "Позвонить"})
    status, out = await a1.post(f"/tasks/{task['id']}/snooze", {"preset": "1h"})
    assert status == 200
    left = _at(out["due_at"]) - datetime.now(UTC)
    assert timedelta(minutes=58) < left <= timedelta(hours=1)
    status, out = await a1.post(f"/tasks/{task['id']}/snooze", {"preset": "tomorrow"})
    assert status == 200 and out["remind_at"] == out["due_at"]
    local = _at(out["due_at"]).astimezone(__import__("zoneinfo").ZoneInfo("Europe/Moscow"))
    assert (local.hour, local.minute) == (10, 0)
    status, err = await a1.post(f"/tasks/{task['id']}/snooze", {"preset": "someday"})
    assert (status, err["field"]) == (422, "preset")
    status, err = await a1.post(f"/tasks/{task['id']}/snooze", {"preset": "1h", "minutes": 5})
    assert (status, err["field"]) == (422, "until")


def test_preset_and_window_arithmetic() -> None:
    now = datetime(2031, 1, 3, 21, 30, tzinfo=UTC)  # Saturday 00:30 in Moscow
    assert preset_time("next_week", now, "Europe/Moscow") == datetime(2031, 1, 6, 7, 0, tzinfo=UTC)
    start, end = due_window("week", now, "Europe/Moscow")
    assert (start, end) == (
        datetime(2030, 12, 29, 21, 0, tzinfo=UTC),
        datetime(2031, 1, 5, 21, 0, tzinfo=UTC),
    )
    start, end = due_window("today", now, "Asia/Vladivostok")
    assert end - start == timedelta(days=1) and start == datetime(2031, 1, 3, 14, 0, tzinfo=UTC)


async def test_reassign_by_role(api: Api) -> None:
    a1, sup = api.as_("a1"), api.as_("sup")
    status, task = await a1.post("/tasks", {"title": "Проверить оплату", "kind": "check_payment"})
    # A manager may not hand a task to a colleague; a supervisor may, within the team.
    status, err = await a1.post(
        f"/tasks/{task['id']}/reassign", {"assignee_id": api.users["a2"].id}
    )
    assert (status, err["field"]) == (403, "assignee_id")
    status, err = await sup.post(
        f"/tasks/{task['id']}/reassign", {"assignee_id": api.users["b1"].id}
    )
    assert (status, err["field"]) == (403, "assignee_id")
    status, out = await sup.post(
        f"/tasks/{task['id']}/reassign", {"assignee_id": api.users["a2"].id}
    )
    assert status == 200 and out["assignee_id"] == api.users["a2"].id
    # Now a1 no longer sees it; b1 never did.
    assert (await a1.get(f"/tasks/{task['id']}"))[0] == 404
    assert (
        await api.as_("b1").post(
            f"/tasks/{task['id']}/reassign", {"assignee_id": api.users["b1"].id}
        )
    )[0] == 404
    async with api.db.sessions() as s:
        entry = await s.scalar(select(AuditEntry).where(AuditEntry.action == "reassign"))
    assert entry is not None and entry.details["changes"]["assignee_id"] == [
        api.users["a1"].id,
        api.users["a2"].id,
    ]


async def _task_at(api: Api, who: str, due: datetime, status: str = "open") -> int:
    async with api.db.transaction() as s:
        t = Task(
            kind="other",
            title=f"t {due}",
            status=status,
            due_at=due,
            remind_at=due,
            assignee_id=api.users[who].id,
            note="",
        )
        s.add(t)
        await s.flush()
        return t.id


async def test_due_today_week_overdue(api: Api) -> None:
    now = datetime.now(UTC)
    _start, end = due_window("today", now, "Europe/Moscow")
    _wstart, wend = due_window("week", now, "Europe/Moscow")
    overdue = await _task_at(api, "a1", now - timedelta(days=8))
    done_old = await _task_at(api, "a1", now - timedelta(days=8), status="done")
    today = await _task_at(api, "a1", end - timedelta(seconds=1))
    later = await _task_at(api, "a1", wend + timedelta(hours=1))
    other = await _task_at(api, "b1", end - timedelta(seconds=1))
    a1 = api.as_("a1")

    async def ids(**q: Any) -> set[int]:
        status, page = await a1.get("/tasks", **q)
        assert status == 200, page
        return {t["id"] for t in page["items"]}

    assert await ids(due="overdue") == {overdue}
    assert await ids(due="today") == {today}
    week = await ids(due="week")
    assert today in week and later not in week and done_old not in week and other not in week
    status, err = await a1.get("/tasks", due="month")
    assert (status, err["field"]) == (422, "due")
