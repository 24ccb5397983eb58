"""Bad input: 4xx JSON naming the field, and nothing changes.  Also auth and pagination."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import update

from crm_core.models import Client, ContactPoint, User
from tests.support.api import Api, count


async def _snapshot(api: Api) -> tuple[int, int, int]:
    return await count(api.db), await count(api.db, Client), await count(api.db, ContactPoint)


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"name": ""}, 422, "name"),
        ({}, 422, "name"),
        ({"name": "X", "kind": "robot"}, 422, "kind"),
        ({"name": "X", "status": "lukewarm"}, 422, "status"),
        ({"name": "X", "inn": "7707083894"}, 422, "inn"),  # bad checksum
        ({"name": "X", "inn": "12345"}, 422, "inn"),
        ({"name": "X", "phones": ["12"]}, 422, "phones"),
        ({"name": "X", "emails": ["not-an-email"]}, 422, "emails"),
        ({"name": "X", "phones": "+79165551234"}, 422, "phones"),
        ({"name": "X", "colour": "red"}, 422, "colour"),
        ({"name": "X", "owner_id": "me"}, 422, "owner_id"),
        ({"name": "X", "owner_id": 9999}, 422, "owner_id"),
        ({"name": "X", "phones": ["+79165550000", "8 916 555 12 34"]}, 409, "phones"),
        ({"name": "X", "emails": ["Taken@Example.ru"]}, 409, "emails"),
        ({"name": "X", "inn": "7707083893"}, 409, "inn"),
    ],
)
async def test_client_create_errors_name_the_field(
    api: Api, body: dict[str, Any], status: int, field: str
) -> None:
    a1 = api.as_("a1")
    got, first = await a1.post(
        "/clients",
        {
            "name": "Taken",
            "inn": "7707083893",
            "phones": ["+79165551234"],
            "emails": ["taken@example.ru"],
        },
    )
    assert got == 201, first
    before = await _snapshot(api)
    got, err = await a1.post("/clients", body)
    assert (got, err.get("field")) == (status, field), err
    assert isinstance(err["error"], str) and err["error"]
    assert await _snapshot(api) == before


async def test_malformed_json_and_bad_ids(api: Api) -> None:
    a1 = api.as_("a1")
    before = await _snapshot(api)
    status, err = await a1.call("POST", "/clients", raw=b'{"name": "X",')
    assert status == 400 and "JSON" in err["error"]
    status, err = await a1.call("POST", "/clients", raw=b'["name"]')
    assert status == 400
    status, err = await a1.get("/clients/abc")
    assert status == 404
    status, err = await a1.get("/clients/123456")
    assert status == 404
    assert err == {"error": "client 123456 not found", "error_ru": "Клиент 123456 не найден"}
    status, err = await a1.get("/nowhere")
    assert status == 404 and "error" in err
    status, err = await a1.call("DELETE", "/clients")
    assert status == 405
    assert await _snapshot(api) == before


async def test_patch_error_changes_nothing(api: Api) -> None:
    a1 = api.as_("a1")
    _, client = await a1.post("/clients", {"name": "Старое", "phones": ["+79031112233"]})
    _, _other = await a1.post("/clients", {"name": "Другое", "phones": ["+79164445566"]})
    before = await _snapshot(api)
    # The name would change, but the phone belongs to another client: nothing changes.
    status, err = await a1.patch(
        f"/clients/{client['id']}", {"name": "Новое", "phones": ["8 916 444 55 66"]}
    )
    assert (status, err["field"]) == (409, "phones")
    assert await _snapshot(api) == before
    _, same = await a1.get(f"/clients/{client['id']}")
    assert same["name"] == "Старое" and same["phones"] == ["+79031112233"]
    status, ok = await a1.patch(
        f"/clients/{client['id']}",
        {"status": "ready", "segment": "b2b", "phones": ["+7 916 777 88 99"]},
    )
    assert status == 200
    assert (ok["status"], ok["segment"]) == ("ready", "b2b")
    assert ok["phones"] == ["+79031112233", "+79167778899"]
    assert await count(api.db) == before[0] + 1  # one audit entry


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer nope"}, 401),
        ({"Authorization": "Basic abc"}, 401),
    ],
)
async def test_auth_required(api: Api, headers: dict[str, str], status: int) -> None:
    resp = await api.http.get("/api/v1/clients", headers=headers)
    assert resp.status == status
    assert "error" in await resp.json()


async def test_inactive_user_forbidden_and_openapi_public(api: Api) -> None:
    async with api.db.transaction() as s:
        await s.execute(update(User).where(User.id == api.users["a2"].id).values(active=False))
    status, _err = await api.as_("a2").get("/me")
    assert status == 403
    resp = await api.http.get("/api/v1/openapi.json")
    assert resp.status == 200


async def test_pagination(api: Api) -> None:
    a1 = api.as_("a1")
    ids = []
    for i in range(7):
        status, task = await a1.post("/tasks", {"title": f"T{i}"})
        assert status == 201
        ids.append(task["id"])
    seen = []
    for offset, size in ((0, 3), (3, 3), (6, 1), (9, 0)):
        status, page = await a1.get("/tasks", limit=3, offset=offset)
        assert status == 200
        assert (page["total"], page["limit"], page["offset"]) == (7, 3, offset)
        assert len(page["items"]) == size
        seen += [t["id"] for t in page["items"]]
    assert sorted(seen) == sorted(ids)
    for params, field in (
        ({"limit": 201}, "limit"),
        ({"limit": 0}, "limit"),
        ({"offset": -1}, "offset"),
        ({"colour": "red"}, "colour"),
    ):
        status, err = await a1.get("/tasks", **params)
        assert (status, err["field"]) == (422, field)


async def test_keyset_pages_and_a_bad_cursor(api: Api) -> None:
    """``after`` = the previous page's ``next_after`` continues the list by an index
    seek; a cursor that is not one is a 422 naming ``after`` (with its Russian text)."""
    a1 = api.as_("a1")
    for i in range(5):
        status, _ = await a1.post("/clients", {"name": f"Клиент {i}"})
        assert status == 201
    status, whole = await a1.get("/clients", limit=50)
    assert status == 200 and whole["next_after"] is None and whole["total_capped"] is False
    walked, after = [], None
    while True:
        status, page = await a1.get("/clients", limit=2, **({"after": after} if after else {}))
        assert status == 200 and page["total"] == whole["total"]
        walked += [c["id"] for c in page["items"]]
        after = page["next_after"]
        if after is None:
            break
    assert walked == [c["id"] for c in whole["items"]]
    for path in ("/clients", "/tasks"):
        before = await _snapshot(api)
        status, err = await a1.get(path, after="not-a-cursor")
        assert (status, err["field"]) == (422, "after"), err
        assert "next_after" in err["error_ru"]
        assert await _snapshot(api) == before
