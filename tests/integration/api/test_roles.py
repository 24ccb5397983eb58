"""The role matrix: who sees and changes whose clients, leads, deals and tasks.

Rows are owned by a1, a2 (team A) and b1 (team B).  admin sees all; the supervisor of
team A sees a1's and a2's; each manager only their own.  Hidden rows answer 404 and
stay unchanged.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from crm_core.access import Actor
from crm_core.db import Database
from crm_core.models import Client, Deal, Lead, Task, User
from crm_core.services.clients import create_client
from crm_core.services.deals import create_deal
from crm_core.services.leads import create_lead
from crm_core.services.tasks import create_task
from tests.support.api import Api

OWNERS = ("a1", "a2", "b1")
SEES = {
    "admin": {"a1", "a2", "b1"},
    "sup": {"a1", "a2"},
    "a1": {"a1"},
    "a2": {"a2"},
    "b1": {"b1"},
}
PHONES = {"a1": "+79160000001", "a2": "+79160000002", "b1": "+79160000003"}

# resource -> (collection, patch body, action (method, suffix, body, expected status))
RESOURCES: dict[str, tuple[str, dict[str, Any], tuple[str, str, dict[str, Any], int]]] = {
    "client": ("/clients", {"notes": "patched"}, ("POST", "/contacts", {"name": "Анна"}, 201)),
    "lead": ("/leads", {"name": "patched"}, ("POST", "/reject", {"reason": "spam"}, 200)),
    "deal": ("/deals", {"title": "patched"}, ("POST", "/stage", {"stage": "proposal"}, 200)),
    "task": ("/tasks", {"note": "patched"}, ("POST", "/done", {}, 200)),
}


async def seed_rows(db: Database, users: dict[str, User]) -> dict[tuple[str, str], int]:
    """One client, lead, deal and task owned by each of a1, a2, b1."""
    ids: dict[tuple[str, str], int] = {}
    async with db.transaction() as s:
        for owner in OWNERS:
            me = Actor.of(users[owner])
            client = await create_client(
                s, me, {"name": f"Client {owner}", "kind": "person", "phones": [PHONES[owner]]}
            )
            lead = await create_lead(s, me, {"name": f"Lead {owner}"})
            deal = await create_deal(s, me, {"client_id": client.id, "title": f"Deal {owner}"})
            task = await create_task(s, me, {"kind": "call_back", "title": f"Call {owner}"})
            ids.update(
                {
                    (owner, "client"): client.id,
                    (owner, "lead"): lead.id,
                    (owner, "deal"): deal.id,
                    (owner, "task"): task.id,
                }
            )
    return ids


async def state(db: Database, ids: dict[tuple[str, str], int]) -> dict[tuple[str, str], Any]:
    async with db.sessions() as s:
        out: dict[tuple[str, str], Any] = {}
        for (owner, kind), row_id in ids.items():
            model = {"client": Client, "lead": Lead, "deal": Deal, "task": Task}[kind]
            row = await s.get(model, row_id)
            assert row is not None
            out[(owner, kind)] = {
                "client": lambda r: (r.notes,),
                "lead": lambda r: (r.name, r.status),
                "deal": lambda r: (r.title, r.stage),
                "task": lambda r: (r.note, r.status),
            }[kind](row)
        return out


@pytest.mark.parametrize("who", list(SEES))
async def test_role_matrix(api: Api, who: str) -> None:
    ids = await seed_rows(api.db, api.users)
    before = await state(api.db, ids)
    caller = api.as_(who)
    got: dict[tuple[str, str, str], Any] = {}
    want: dict[tuple[str, str, str], Any] = {}
    for kind, (path, patch, (method, suffix, body, action_ok)) in RESOURCES.items():
        status, page = await caller.get(path)
        assert status == 200, page
        listed = {i["id"] for i in page["items"]}
        for owner in OWNERS:
            row_id = ids[(owner, kind)]
            visible = owner in SEES[who]
            want[(kind, owner, "list")] = visible
            got[(kind, owner, "list")] = row_id in listed
            want[(kind, owner, "get")] = 200 if visible else 404
            got[(kind, owner, "get")] = (await caller.get(f"{path}/{row_id}"))[0]
            want[(kind, owner, "patch")] = 200 if visible else 404
            got[(kind, owner, "patch")] = (await caller.patch(f"{path}/{row_id}", patch))[0]
            want[(kind, owner, "action")] = action_ok if visible else 404
            got[(kind, owner, "action")] = (
                await caller.call(method, f"{path}/{row_id}{suffix}", body)
            )[0]
            if kind == "client":
                want[(kind, owner, "timeline")] = 200 if visible else 404
                got[(kind, owner, "timeline")] = (await caller.get(f"{path}/{row_id}/timeline"))[0]
                # Filtering by a hidden client's phone finds nothing.
                status, found = await caller.get(path, phone=PHONES[owner])
                got[(kind, owner, "by_phone")] = [c["id"] for c in found["items"]]
                want[(kind, owner, "by_phone")] = [row_id] if visible else []
    assert got == want
    after = await state(api.db, ids)
    for (owner, kind), value in after.items():
        if owner in SEES[who]:
            assert value != before[(owner, kind)], (owner, kind)
        else:
            assert value == before[(owner, kind)], (owner, kind)


@pytest.mark.parametrize(
    ("who", "owner", "target", "expected"),
    [
        ("a1", "a1", "a2", 403),  # a manager cannot hand work to a colleague
        ("a1", "a1", "a1", 200),
        ("sup", "a1", "a2", 200),  # a supervisor moves work inside the team
        ("sup", "a1", "b1", 403),  # ... not outside it
        ("admin", "a1", "b1", 200),
        ("b1", "a1", "b1", 404),  # a hidden row stays hidden
    ],
)
async def test_reassign(api: Api, who: str, owner: str, target: str, expected: int) -> None:
    ids = await seed_rows(api.db, api.users)
    target_id = api.users[target].id
    status, body = await api.as_(who).patch(
        f"/leads/{ids[(owner, 'lead')]}", {"owner_id": target_id}
    )
    assert status == expected, body
    if expected == 403:
        assert body["field"] == "owner_id"
    async with api.db.sessions() as s:
        owner_now = await s.scalar(select(Lead.owner_id).where(Lead.id == ids[(owner, "lead")]))
    assert owner_now == (target_id if expected == 200 else api.users[owner].id)


async def test_users_listing_by_role(api: Api) -> None:
    status, body = await api.as_("a1").get("/users")
    assert status == 403
    status, body = await api.as_("sup").get("/users")
    assert status == 200
    assert sorted(u["email"] for u in body["items"]) == [
        "a1@example.ru",
        "a2@example.ru",
        "sup@example.ru",
    ]
    status, body = await api.as_("admin").get("/users")
    assert status == 200 and body["total"] == 5
