"""Admin pages' API: users (create, role, team, extension, hours, absences, capacity,
weight) and website forms (create, change, rotate the secret, webhook URL, snippet)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from crm_core.models import AuditEntry, Form
from tests.support.api import Api, Caller, count


async def test_admin_creates_a_user_who_can_sign_in(api: Api) -> None:
    admin = api.as_("admin")
    status, body = await admin.post(
        "/users",
        {
            "email": "New@Example.ru",
            "name": "Новый",
            "role": "manager",
            "team": "B",
            "extension": "305",
            "timezone": "Asia/Yekaterinburg",
            "working_hours": {"0": [["09:00", "13:00"], ["14:00", "18:00"]]},
            "capacity": 20,
            "weight": 2,
        },
    )
    assert status == 201, body
    assert body["email"] == "new@example.ru" and body["team"] == "B"
    assert body["working_hours"] == {"0": [["09:00", "13:00"], ["14:00", "18:00"]]}
    assert (body["capacity"], body["weight"], body["timezone"]) == (20, 2, "Asia/Yekaterinburg")
    newbie = Caller(api.http, body["token"])
    status, me = await newbie.get("/me")
    assert status == 200 and me["email"] == "new@example.ru"


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"working_hours": {"7": [["09:00", "18:00"]]}}, "working_hours"),
        ({"working_hours": {"0": [["18:00", "09:00"]]}}, "working_hours"),
        ({"working_hours": {"0": [["9", "18:00"]]}}, "working_hours"),
        ({"absences": [{"start": "2026-12-31", "end": "2026-12-01"}]}, "absences"),
        ({"absences": [{"start": "завтра", "end": "2026-12-01"}]}, "absences"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"extension": "201"}, "extension"),  # a1's
        ({"role": "boss"}, "role"),
        ({"weight": 0}, "weight"),
        ({"capacity": -1}, "capacity"),
        ({"salary": 1}, "salary"),
    ],
)
async def test_bad_user_changes_name_the_field_and_change_nothing(
    api: Api, patch: dict[str, Any], field: str
) -> None:
    before = await count(api.db, AuditEntry)
    target = api.users["a2"].id
    status, body = await api.as_("admin").patch(f"/users/{target}", patch)
    assert status in (400, 409, 422), body
    assert field in (body.get("field") or "") + body["error"]
    assert body.get("error_ru"), body
    assert await count(api.db, AuditEntry) == before
    _, user = await api.as_("admin").get("/users")
    a2 = next(u for u in user["items"] if u["id"] == target)
    assert a2["extension"] == "202" and a2["weight"] == 1


async def test_admin_changes_a_user_with_an_audit_of_old_and_new(api: Api) -> None:
    target = api.users["a2"].id
    status, body = await api.as_("admin").patch(
        f"/users/{target}",
        {
            "role": "supervisor",
            "team": "B",
            "absences": [{"start": "2026-12-20", "end": "2026-12-31", "reason": "отпуск"}],
        },
    )
    assert status == 200, body
    assert (body["role"], body["team"]) == ("supervisor", "B")
    assert body["absences"] == [{"start": "2026-12-20", "end": "2026-12-31", "reason": "отпуск"}]
    async with api.db.sessions() as s:
        entry = await s.scalar(
            select(AuditEntry).where(AuditEntry.entity == "user", AuditEntry.action == "update")
        )
    assert entry is not None and entry.entity_id == target
    assert entry.details["changes"]["role"] == ["manager", "supervisor"]
    assert entry.details["changes"]["team"] == ["A", "B"]


async def test_supervisor_schedules_their_team_only_and_managers_nothing(api: Api) -> None:
    sup = api.as_("sup")
    a1, b1 = api.users["a1"].id, api.users["b1"].id
    status, body = await sup.patch(f"/users/{a1}", {"capacity": 5, "weight": 3})
    assert status == 200 and (body["capacity"], body["weight"]) == (5, 3)
    status, body = await sup.patch(f"/users/{a1}", {"role": "admin"})
    assert status in (400, 422) and body["field"] == "role"
    status, _ = await sup.patch(f"/users/{b1}", {"capacity": 5})
    assert status == 404  # not their team: not even visible
    status, _ = await api.as_("a1").patch(f"/users/{a1}", {"capacity": 50})
    assert status == 403
    status, _ = await sup.post("/users", {"email": "x@example.ru"})
    assert status == 403


async def test_admin_cannot_demote_themselves(api: Api) -> None:
    me = api.users["admin"].id
    status, body = await api.as_("admin").patch(f"/users/{me}", {"role": "manager"})
    assert status == 409 and body["field"] == "role"


async def test_forms_create_rotate_and_snippet(api: Api) -> None:
    admin = api.as_("admin")
    status, form = await admin.post(
        "/forms", {"name": "Сайт клиники", "aliases": {"Ваш телефон": "phone"}}
    )
    assert status == 201, form
    assert form["webhook_url"].endswith(f"/hooks/forms/{form['key']}?secret={form['secret']}")
    assert form["webhook_url"] in form["html_snippet"].replace("&amp;", "&")
    assert 'name="phone"' in form["html_snippet"]
    status, rotated = await admin.post(f"/forms/{form['id']}/rotate-secret")
    assert status == 200 and rotated["secret"] != form["secret"]
    status, off = await admin.patch(f"/forms/{form['id']}", {"active": False})
    assert status == 200 and off["active"] is False
    status, listed = await admin.get("/forms")
    assert [f["id"] for f in listed["items"]] == [form["id"]]
    async with api.db.sessions() as s:
        row = await s.get(Form, form["id"])
        assert row is not None and row.secret == rotated["secret"] and not row.active
    for who in ("sup", "a1"):
        status, _ = await api.as_(who).get("/forms")
        assert status == 403
        status, _ = await api.as_(who).post("/forms", {"name": "x"})
        assert status == 403


@pytest.mark.parametrize(
    "body",
    [
        {"name": ""},
        {"name": "x" * 201},
        {"name": "ok", "aliases": {"a": 1}},
        {"name": "ok", "honeypot_fields": ["x"] * 21},
        {"name": "ok", "secret": "mine"},
    ],
)
async def test_bad_forms_are_refused_and_nothing_is_written(api: Api, body: dict[str, Any]) -> None:
    status, out = await api.as_("admin").post("/forms", body)
    assert status in (400, 422), out
    assert await count(api.db, Form) == 0


async def test_setup_is_public_and_says_nothing_once_a_user_exists(api: Api) -> None:
    status, body = await api.anonymous().get("/setup")
    assert status == 200 and body == {"needs_first_admin": False, "command": None}
