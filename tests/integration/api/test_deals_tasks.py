"""Deals (stages with history, win, lose) and tasks (done, snooze, filters)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.api.responses import DealWithHistoryOut, TaskOut
from tests.support.api import Api


async def _client(api: Api, who: str = "a1") -> int:
    status, client = await api.as_(who).post("/clients", {"name": f"Клиент {who}"})
    assert status == 201, client
    return int(client["id"])


async def test_deal_stages_with_history(api: Api) -> None:
    a1 = api.as_("a1")
    status, deal = await a1.post(
        "/deals", {"client_id": await _client(api), "title": "Окна", "amount": 99.5}
    )
    assert status == 201, deal
    assert (deal["stage"], deal["amount"], deal["stage_label"]) == ("new", "99.50", "Новая")
    for stage in ("qualification", "proposal"):
        status, deal = await a1.post(f"/deals/{deal['id']}/stage", {"stage": stage})
        assert status == 200 and deal["stage"] == stage
    status, err = await a1.post(f"/deals/{deal['id']}/stage", {"stage": "signed"})
    assert status == 422 and err["field"] == "stage"
    status, err = await a1.post(f"/deals/{deal['id']}/stage", {"stage": "lost"})
    assert status == 422 and err["field"] == "stage"
    status, deal = await a1.post(f"/deals/{deal['id']}/win")
    assert status == 200 and deal["stage"] == "won" and deal["closed_at"]
    DealWithHistoryOut.model_validate(deal)
    me = api.users["a1"].id
    assert [(h["from"], h["to"], h["user_id"]) for h in deal["history"]] == [
        (None, "new", me),
        ("new", "qualification", me),
        ("qualification", "proposal", me),
        ("proposal", "won", me),
    ]
    assert all(h["at"] for h in deal["history"])
    status, err = await a1.post(f"/deals/{deal['id']}/stage", {"stage": "contract"})
    assert status == 409
    status, page = await a1.get("/deals", status="closed")
    assert [d["id"] for d in page["items"]] == [deal["id"]]


async def test_deal_lose_needs_reason(api: Api) -> None:
    sup = api.as_("sup")
    status, deal = await sup.post(
        "/deals",
        {"client_id": await _client(api, "a2"), "title": "Двери", "owner_id": api.users["a2"].id},
    )
    assert status == 201 and deal["owner_id"] == api.users["a2"].id
    status, err = await sup.post(f"/deals/{deal['id']}/lose", {})
    assert (status, err["field"]) == (422, "reason_id")
    # "reason" (older clients) names a catalogue entry in any letter case.
    status, deal = await sup.post(f"/deals/{deal['id']}/lose", {"reason": "дорого"})
    assert status == 200
    assert (deal["stage"], deal["loss_reason"]) == ("lost", "Дорого")
    assert deal["history"][-1]["user_id"] == api.users["sup"].id
    # A client hidden from the caller cannot get a deal.
    status, err = await api.as_("b1").post("/deals", {"client_id": deal["client_id"], "title": "x"})
    assert status == 404


async def test_tasks_done_snooze_and_filters(api: Api) -> None:
    a1 = api.as_("a1")
    due = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)
    status, task = await a1.post(
        "/tasks", {"kind": "call_back", "title": "Перезвонить", "due_at": due.isoformat()}
    )
    assert status == 201, task
    TaskOut.model_validate(task)
    assert task["assignee_id"] == api.users["a1"].id and task["status"] == "open"
    status, later = await a1.post(
        "/tasks",
        {"kind": "send_offer", "title": "КП", "due_at": (due + timedelta(days=2)).isoformat()},
    )
    assert status == 201
    status, page = await a1.get("/tasks", due_before=(due + timedelta(days=1)).isoformat())
    assert [t["id"] for t in page["items"]] == [task["id"]]
    status, page = await a1.get("/tasks", assignee_id=api.users["a1"].id)
    assert [t["id"] for t in page["items"]] == [task["id"], later["id"]]  # by due time
    status, snoozed = await a1.post(f"/tasks/{task['id']}/snooze", {"minutes": 30})
    assert status == 200
    moved = datetime.fromisoformat(snoozed["due_at"]) - datetime.now(UTC)
    assert timedelta(minutes=29) < moved <= timedelta(minutes=30)
    until = datetime(2031, 5, 1, 12, 0, tzinfo=UTC)
    status, snoozed = await a1.post(f"/tasks/{task['id']}/snooze", {"until": until.isoformat()})
    assert status == 200 and datetime.fromisoformat(snoozed["due_at"]) == until
    status, err = await a1.post(f"/tasks/{task['id']}/snooze", {})
    assert status == 422 and err["field"] == "until"
    status, err = await a1.post(f"/tasks/{task['id']}/snooze", {"until": "2031-05-01T12:00:00"})
    assert status == 422 and err["field"] == "until"  # a time zone is required
    status, done = await a1.post(f"/tasks/{task['id']}/done", {"note": "дозвонился"})
    assert status == 200 and done["status"] == "done" and "дозвонился" in done["note"]
    status, err = await a1.post(f"/tasks/{task['id']}/done")
    assert status == 409
    status, page = await a1.get("/tasks", status="open")
    assert [t["id"] for t in page["items"]] == [later["id"]]
    status, err = await a1.post("/tasks", {"kind": "dance", "title": "x"})
    assert status == 422 and err["field"] == "kind"
    status, err = await a1.post("/tasks", {"title": "x", "assignee_id": api.users["b1"].id})
    assert status == 403 and err["field"] == "assignee_id"
