"""Issue 13 (item 7): the audit log through the API: who changed what and when, old ->
new, for clients, deals, tasks and ownership; filters; admins and supervisors only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.support.api import Api


async def test_audit_shows_old_and_new_values_with_filters_and_roles(api: Api) -> None:
    u = {k: v.id for k, v in api.users.items()}
    admin, sup, a1 = api.as_("admin"), api.as_("sup"), api.as_("a1")
    status, client = await a1.post("/clients", {"name": "ООО «Ромашка»", "status": "cold"})
    assert status == 201, client
    cid = client["id"]
    status, _ = await a1.patch(f"/clients/{cid}", {"name": "ООО «Ромашка-2»", "status": "thinking"})
    assert status == 200
    status, _ = await sup.patch(f"/clients/{cid}", {"owner_id": u["a2"]})  # ownership
    assert status == 200
    status, deal = await sup.post(
        "/deals", {"client_id": cid, "title": "Поставка", "amount": "100"}
    )
    assert status == 201, deal
    status, _ = await sup.patch(f"/deals/{deal['id']}", {"amount": "250.50"})
    assert status == 200
    status, _ = await sup.post(f"/deals/{deal['id']}/stage", {"stage": "proposal"})
    assert status == 200
    status, task = await sup.post("/tasks", {"title": "Позвонить", "client_id": cid})
    assert status == 201, task
    status, _ = await sup.patch(f"/tasks/{task['id']}", {"title": "Перезвонить"})
    assert status == 200
    # Team B's client, changed by the admin: not the team A supervisor's business.
    status, other = await admin.post("/clients", {"name": "ИП Сидоров", "owner_id": u["b1"]})
    assert status == 201
    status, _ = await admin.patch(f"/clients/{other['id']}", {"status": "ready"})
    assert status == 200

    status, log = await admin.get("/audit", entity="client", entity_id=cid)
    assert status == 200, log
    assert log["total"] == 3 and [e["action"] for e in log["items"]] == [
        "update",
        "update",
        "create",
    ]
    owner, rename, created = log["items"]
    assert owner["user_id"] == u["sup"] and owner["changes"] == {"owner_id": [u["a1"], u["a2"]]}
    assert rename["user_id"] == u["a1"]
    assert rename["changes"] == {
        "name": ["ООО «Ромашка»", "ООО «Ромашка-2»"],
        "status": ["cold", "thinking"],
    }
    assert created["changes"]["name"] == [None, "ООО «Ромашка»"]
    assert datetime.fromisoformat(owner["at"]) >= datetime.fromisoformat(created["at"])
    assert set(owner) == {"id", "at", "user_id", "action", "entity", "entity_id", "changes"}

    _, deals = await admin.get("/audit", entity="deal", entity_id=deal["id"])
    changes = {e["action"]: e["changes"] for e in deals["items"]}
    assert changes["update"] == {"amount": ["100.00", "250.50"]}
    assert changes["stage"]["stage"] == ["new", "proposal"]
    _, tasks = await admin.get("/audit", entity="task", entity_id=task["id"])
    assert tasks["items"][0]["changes"] == {"title": ["Позвонить", "Перезвонить"]}

    # Filters: by author, by time.
    _, by_a1 = await admin.get("/audit", user_id=u["a1"])
    assert {e["user_id"] for e in by_a1["items"]} == {u["a1"]} and by_a1["total"] == 2
    later = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    _, none = await admin.get("/audit", created_from=later)
    assert none == {**none, "items": [], "total": 0}
    _, today = await admin.get("/audit", created_to=datetime.now(UTC).date().isoformat())
    assert today["total"] >= 10

    # The supervisor sees their team's rows and entries, not team B's client.
    _, mine = await sup.get("/audit", entity="client")
    assert {e["entity_id"] for e in mine["items"]} == {cid}
    _, theirs = await sup.get("/audit", entity="client", entity_id=other["id"])
    assert theirs["total"] == 0
    _, everything = await admin.get("/audit", entity="client", entity_id=other["id"])
    assert everything["items"][0]["changes"] == {"status": ["cold", "ready"]}

    # Managers: not at all.  Bad filters: 422 naming the field.
    status, err = await a1.get("/audit")
    assert status == 403 and "error_ru" in err
    for params, field in (({"entity": "planet"}, "entity"), ({"entity_id": "x"}, "entity_id")):
        status, err = await admin.get("/audit", **params)
        assert status == 422 and err["field"] == field
