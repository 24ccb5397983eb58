"""Segments through the real API on SQLite and PostgreSQL: rules compiled to SQL and
evaluated live, manual membership, validation of hostile rules, counts per role, the
clients list filtered by segment, managers assigned to a segment, rebalance."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from crm_core.db import Database
from crm_core.models import (
    AuditEntry,
    Client,
    ClientTag,
    CustomField,
    Deal,
    Interaction,
    Segment,
    utcnow,
)
from tests.support.api import Api


async def _seed(api: Api) -> dict[str, int]:
    """Six clients with a varied profile (owned by a1, a2, b1 or nobody)."""
    u = api.users
    now = utcnow()
    rows = {
        "retail_msk": dict(
            kind="company",
            industry="Розница",
            region="Москва",
            city="Москва",
            headcount=120,
            revenue=Decimal("5000000"),
            owner_id=u["a1"].id,
            custom={"tier": "gold", "score": 7, "channels": ["b2b", "online"]},
        ),
        "retail_spb": dict(
            kind="company",
            industry="Розница",
            region="Санкт-Петербург",
            headcount=15,
            revenue=Decimal("900000"),
            owner_id=u["a2"].id,
            custom={"tier": "silver", "score": 3, "channels": ["offline"]},
        ),
        "bank": dict(
            kind="company",
            industry="Банки",
            region="Москва",
            headcount=5000,
            owner_id=u["b1"].id,
            custom={"score": 9},
        ),
        "person": dict(kind="person", region="Казань", owner_id=u["a1"].id),
        "orphan": dict(kind="company", industry="Розница", region="Москва", owner_id=None),
        "blank": dict(kind="company", owner_id=u["a1"].id),
    }
    ids: dict[str, int] = {}
    async with api.db.transaction() as s:
        s.add(CustomField(key="tier", label_ru="Уровень", type="choice", options=["gold"]))
        s.add(CustomField(key="score", label_ru="Балл", type="number"))
        s.add(CustomField(key="channels", label_ru="Каналы", type="multi"))
        for name, kw in rows.items():
            c = Client(name=name, status="cold", **kw)
            s.add(c)
            await s.flush()
            ids[name] = c.id
        s.add(ClientTag(client_id=ids["retail_msk"], tag="vip"))
        s.add(ClientTag(client_id=ids["bank"], tag="vip"))
        s.add(ClientTag(client_id=ids["bank"], tag="partner"))
        for amount in (100, 250):
            s.add(Deal(client_id=ids["retail_msk"], title="d", stage="won", amount=amount))
        s.add(Deal(client_id=ids["bank"], title="d", stage="won", amount=10_000))
        s.add(Deal(client_id=ids["retail_spb"], title="d", stage="lost", amount=99_999))
        # last contact: retail_msk 2 days ago, bank 40 days ago, others never
        for name, days in (("retail_msk", 2), ("bank", 40)):
            s.add(
                Interaction(
                    client_id=ids[name],
                    channel="call",
                    direction="in",
                    kind="call_ended",
                    occurred_at=now - timedelta(days=days),
                )
            )
    return ids


async def _members(api: Api, seg_id: int, who: str = "admin") -> set[int]:
    status, body = await api.as_(who).get(f"/segments/{seg_id}/clients", limit=200)
    assert status == 200, body
    return {c["id"] for c in body["items"]}


RULES: list[tuple[dict[str, Any], set[str]]] = [
    (
        {"all": [{"field": "deals_won_count", "op": "eq", "value": 0}]},
        {"retail_spb", "person", "orphan", "blank"},
    ),
    (
        {"all": [{"field": "deals_won_count", "op": "lte", "value": 1}]},
        {"bank", "retail_spb", "person", "orphan", "blank"},
    ),
    ({"all": [{"field": "deals_won_count", "op": "eq", "value": 1}]}, {"bank"}),
    ({"all": [{"field": "deals_won_amount", "op": "eq", "value": 350}]}, {"retail_msk"}),
    (
        {"all": [{"field": "deals_won_amount", "op": "lte", "value": 349.99}]},
        {"retail_spb", "person", "orphan", "blank"},
    ),
    (
        {"all": [{"field": "industry", "op": "eq", "value": "Розница"}]},
        {"retail_msk", "retail_spb", "orphan"},
    ),
    (
        {"all": [{"field": "industry", "op": "ne", "value": "Розница"}]},
        {"bank", "person", "blank"},
    ),
    (
        {"all": [{"field": "region", "op": "in", "value": ["Москва", "Казань"]}]},
        {"retail_msk", "bank", "person", "orphan"},
    ),
    ({"all": [{"field": "city", "op": "exists", "value": True}]}, {"retail_msk"}),
    ({"all": [{"field": "headcount", "op": "gte", "value": 100}]}, {"retail_msk", "bank"}),
    (
        {"all": [{"field": "revenue", "op": "lte", "value": "1000000"}]},
        {"retail_spb"},
    ),
    ({"all": [{"field": "kind", "op": "eq", "value": "person"}]}, {"person"}),
    ({"any": [{"field": "tags", "op": "contains", "value": "partner"}]}, {"bank"}),
    ({"all": [{"field": "tags", "op": "in", "value": ["vip", "x"]}]}, {"retail_msk", "bank"}),
    (
        {"all": [{"field": "tags", "op": "exists", "value": False}]},
        {"retail_spb", "person", "orphan", "blank"},
    ),
    ({"all": [{"field": "deals_won_count", "op": "gte", "value": 2}]}, {"retail_msk"}),
    ({"all": [{"field": "deals_won_amount", "op": "gte", "value": 300}]}, {"retail_msk", "bank"}),
    ({"all": [{"field": "days_since_contact", "op": "lte", "value": 7}]}, {"retail_msk"}),
    (
        {
            "all": [
                {"field": "days_since_contact", "op": "gte", "value": 30},
                {"field": "kind", "op": "eq", "value": "company"},
            ]
        },
        {"bank", "retail_spb", "orphan", "blank"},
    ),
    ({"all": [{"field": "owner", "op": "exists", "value": False}]}, {"orphan"}),
    ({"all": [{"field": "cf.tier", "op": "eq", "value": "gold"}]}, {"retail_msk"}),
    ({"all": [{"field": "cf.score", "op": "gte", "value": 5}]}, {"retail_msk", "bank"}),
    ({"all": [{"field": "cf.channels", "op": "contains", "value": "offline"}]}, {"retail_spb"}),
    ({"all": [{"field": "cf.channels", "op": "in", "value": ["online", "zzz"]}]}, {"retail_msk"}),
    (
        {"all": [{"field": "cf.channels", "op": "exists", "value": True}]},
        {"retail_msk", "retail_spb"},
    ),
    (
        {"all": [{"field": "name", "op": "contains", "value": "RETAIL"}]},
        {"retail_msk", "retail_spb"},
    ),
    (
        {
            "any": [
                {
                    "all": [
                        {"field": "industry", "op": "eq", "value": "Банки"},
                        {"field": "headcount", "op": "gte", "value": 1000},
                    ]
                },
                {"all": [{"field": "region", "op": "eq", "value": "Казань"}]},
            ]
        },
        {"bank", "person"},
    ),
]


@pytest.mark.parametrize(("rules", "expected"), RULES)
async def test_rules_are_evaluated_live_in_sql(
    api: Api, rules: dict[str, Any], expected: set[str]
) -> None:
    ids = await _seed(api)
    admin = api.as_("admin")
    status, body = await admin.post("/segments", {"name": "S", "rules": rules})
    assert status == 201, body
    assert body["kind"] == "rule"
    want = {ids[n] for n in expected}
    assert await _members(api, body["id"]) == want
    assert body["client_count"] == len(want)
    status, prev = await admin.post("/segments/preview", {"rules": rules})
    assert (status, prev["count"]) == (200, len(want))
    # the clients list filtered by the segment gives the same
    status, page = await admin.get("/clients", segment=body["id"], limit=200)
    assert status == 200
    assert {c["id"] for c in page["items"]} == want
    # each client's "segments" (the same rules tested per client) agrees
    _, everyone = await admin.get("/clients", limit=200)
    held = {c["id"] for c in everyone["items"] if {"id": body["id"], "name": "S"} in c["segments"]}
    assert held == want


async def test_live_evaluation_follows_changes(api: Api) -> None:
    ids = await _seed(api)
    admin = api.as_("admin")
    rule = {"all": [{"field": "region", "op": "eq", "value": "Казань"}]}
    _, seg = await admin.post("/segments", {"name": "Kazan", "rules": rule})
    assert await _members(api, seg["id"]) == {ids["person"]}
    status, _ = await admin.patch(f"/clients/{ids['bank']}", {"region": "Казань"})
    assert status == 200
    assert await _members(api, seg["id"]) == {ids["person"], ids["bank"]}
    _, card = await admin.get(f"/clients/{ids['bank']}")
    assert {"id": seg["id"], "name": "Kazan"} in card["segments"]


BAD: list[tuple[Any, str]] = [
    ({"all": [{"field": "colour", "op": "eq", "value": "x"}]}, "rules.all[0].field"),
    ({"all": [{"field": "region", "op": "like", "value": "x"}]}, "rules.all[0].op"),
    ({"all": [{"field": "region", "op": "gte", "value": "x"}]}, "rules.all[0].op"),
    ({"all": [{"field": "headcount", "op": "gte", "value": "many"}]}, "rules.all[0].value"),
    ({"all": [{"field": "headcount", "op": "gte", "value": True}]}, "rules.all[0].value"),
    ({"all": [{"field": "region", "op": "in", "value": []}]}, "rules.all[0].value"),
    ({"all": [{"field": "region", "op": "in", "value": ["a", 5]}]}, "rules.all[0].value[1]"),
    (
        {"any": [{"all": [{"field": "cf.nope", "op": "eq", "value": "x"}]}]},
        "rules.any[0].all[0].field",
    ),
    ({"all": [{"field": "region", "op": "eq", "value": "x", "extra": 1}]}, "rules.all[0].extra"),
    ({"all": "region"}, "rules.all"),
    ({"both": []}, "rules"),
    ({"all": [{"field": "region", "op": "exists", "value": "yes"}]}, "rules.all[0].value"),
    ({"all": [{"field": "region", "op": "eq", "value": "x" * 500}]}, "rules.all[0].value"),
]


@pytest.mark.parametrize(("rules", "path"), BAD)
async def test_bad_rules_are_refused_naming_the_path(api: Api, rules: Any, path: str) -> None:
    await _seed(api)
    admin = api.as_("admin")
    status, body = await admin.post("/segments", {"name": "Bad", "rules": rules})
    assert status == 400, body
    assert body["field"] == path
    assert body["error"].startswith(path) and body["error_ru"].startswith(path)
    assert body["error_ru"] != body["error"]
    status, body = await admin.post("/segments/preview", {"rules": rules})
    assert (status, body["field"]) == (400, path)
    async with api.db.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(Segment)) == 0


async def test_hostile_rules_are_capped(api: Api) -> None:
    admin = api.as_("admin")
    deep: dict[str, Any] = {"all": [{"field": "kind", "op": "eq", "value": "person"}]}
    for _ in range(10):
        deep = {"any": [deep]}
    status, body = await admin.post("/segments/preview", {"rules": deep})
    assert status == 400 and "deeper" in body["error"]
    wide = {"all": [{"field": "kind", "op": "eq", "value": "person"}] * 101}
    status, body = await admin.post("/segments/preview", {"rules": wide})
    assert status == 400 and "more than 100" in body["error"]
    huge_in = {"all": [{"field": "city", "op": "in", "value": ["x"] * 501}]}
    status, body = await admin.post("/segments/preview", {"rules": huge_in})
    assert status == 400 and body["field"] == "rules.all[0].value"


async def test_manual_segments_names_and_several_per_client(api: Api) -> None:
    ids = await _seed(api)
    admin = api.as_("admin")
    status, seg = await admin.post(
        "/segments", {"name": "Key", "client_ids": [ids["bank"], ids["person"]]}
    )
    assert status == 201 and seg["kind"] == "manual" and seg["client_count"] == 2
    # the old "segment" by name still works: a manual membership
    status, card = await admin.patch(f"/clients/{ids['bank']}", {"segment": "Федеральные"})
    assert status == 200
    names = {s["name"] for s in card["segments"]}
    assert names == {"Key", "Федеральные"}
    status, created = await admin.post(
        "/clients", {"name": "New Co", "segment": "Key", "phones": ["+79161112233"]}
    )
    assert status == 201 and created["segment"] == "Key"
    assert await _members(api, seg["id"]) == {ids["bank"], ids["person"], created["id"]}
    # PATCH: add/remove; unknown ids refused with nothing changed
    status, out = await admin.patch(
        f"/segments/{seg['id']}",
        {"add_client_ids": [ids["orphan"]], "remove_client_ids": [ids["person"]]},
    )
    assert status == 200 and out["client_count"] == 3
    status, err = await admin.patch(f"/segments/{seg['id']}", {"client_ids": [ids["bank"], 999999]})
    assert status == 422 and err["field"] == "client_ids"
    assert await _members(api, seg["id"]) == {ids["bank"], ids["orphan"], created["id"]}
    # a rule segment cannot take chosen clients
    persons = {"all": [{"field": "kind", "op": "eq", "value": "person"}]}
    _, rule = await admin.post("/segments", {"name": "A persons", "rules": persons})
    status, _ = await admin.patch(f"/segments/{rule['id']}", {"add_client_ids": [ids["bank"]]})
    assert status == 422
    status, err = await admin.patch(f"/clients/{ids['bank']}", {"segment": "A persons"})
    assert status == 422 and err["field"] == "segment"
    # a person (taken out of Key above): in the rule segment only; "segment" names manual
    # segments only, and a form sending back a rule segment's name it matches changes
    # nothing
    status, card = await admin.patch(f"/clients/{ids['person']}", {"segment": "A persons"})
    assert status == 200
    assert card["segment"] is None
    assert [g["name"] for g in card["segments"]] == ["A persons"]
    status, card = await admin.patch(f"/clients/{ids['person']}", {"segment": "Key"})
    assert card["segment"] == "Key"
    assert [g["name"] for g in card["segments"]] == ["A persons", "Key"]
    # delete: the clients stay
    status, _ = await admin.call("DELETE", f"/segments/{seg['id']}")
    assert status == 204
    status, _ = await admin.get(f"/clients/{ids['bank']}")
    assert status == 200
    status, _ = await admin.get(f"/segments/{seg['id']}")
    assert status == 404


async def test_counts_per_role_and_who_may_edit(api: Api) -> None:
    ids = await _seed(api)
    admin = api.as_("admin")
    rule = {"all": [{"field": "kind", "op": "eq", "value": "company"}]}
    _, seg = await admin.post("/segments", {"name": "Companies", "rules": rule})
    assert seg["client_count"] == 5
    counts = {}
    for who in ("admin", "sup", "a1", "a2", "b1"):
        status, body = await api.as_(who).get("/segments")
        assert status == 200
        counts[who] = body["items"][0]["client_count"]
    # a1 owns retail_msk and blank; a2 retail_spb; b1 bank; the team A supervisor: 3
    assert counts == {"admin": 5, "sup": 3, "a1": 2, "a2": 1, "b1": 1}
    assert await _members(api, seg["id"], "a1") == {ids["retail_msk"], ids["blank"]}
    status, _ = await api.as_("a1").post("/segments", {"name": "Mine", "rules": rule})
    assert status == 403
    status, _ = await api.as_("a1").patch(f"/segments/{seg['id']}", {"name": "x"})
    assert status == 403


async def test_managers_take_unowned_and_entering_clients(api: Api) -> None:
    ids = await _seed(api)
    admin = api.as_("admin")
    a1, a2 = api.users["a1"].id, api.users["a2"].id
    rule = {"all": [{"field": "region", "op": "eq", "value": "Москва"}]}
    _, seg = await admin.post("/segments", {"name": "Moscow", "rules": rule})
    status, out = await admin.call(
        "PUT", f"/segments/{seg['id']}/managers", {"user_ids": [a1, a2], "strategy": "round_robin"}
    )
    assert status == 200, out
    assert out["manager_ids"] == [a1, a2] and out["strategy"] == "round_robin"
    async with api.db.sessions() as s:
        orphan = await s.get(Client, ids["orphan"])
        assert orphan is not None and orphan.owner_id in (a1, a2)
        bank = await s.get(Client, ids["bank"])
        assert bank is not None and bank.owner_id == api.users["b1"].id  # had an owner: kept
    # a client created by the admin in Moscow goes to one of the managers, in turn
    owners = []
    for i in range(4):
        status, c = await admin.post(
            "/clients", {"name": f"M{i}", "region": "Москва", "phones": [f"+7916000111{i}"]}
        )
        assert status == 201
        owners.append(c["owner_id"])
    assert set(owners) == {a1, a2} and owners.count(a1) == 2
    # a client changed into the segment: taken over (not when its owner is given)
    b1 = api.users["b1"].id
    status, c = await admin.patch(f"/clients/{ids['person']}", {"owner_id": b1})
    assert status == 200 and c["owner_id"] == b1
    status, c = await admin.patch(f"/clients/{ids['person']}", {"region": "Москва"})
    assert status == 200 and c["owner_id"] in (a1, a2)
    async with api.db.sessions() as s:
        n = await s.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "segment_assign", AuditEntry.entity_id == ids["person"])
        )
        assert n == 1
    status, c = await admin.patch(f"/clients/{ids['blank']}", {"region": "Москва", "owner_id": b1})
    assert status == 200 and c["owner_id"] == b1
    # a manager sees only their own clients of the segment
    mine = await _members(api, seg["id"], "a2")
    async with api.db.sessions() as s:
        theirs = set(
            await s.scalars(
                select(Client.id).where(Client.owner_id == a2, Client.region == "Москва")
            )
        )
    assert mine == theirs and mine


async def test_supervisor_assigns_only_their_team(api: Api) -> None:
    await _seed(api)
    _, seg = await api.as_("admin").post("/segments", {"name": "S", "client_ids": []})
    status, body = await api.as_("sup").call(
        "PUT", f"/segments/{seg['id']}/managers", {"user_ids": [api.users["b1"].id]}
    )
    assert status == 403 and body["field"] == "user_ids[0]"
    status, body = await api.as_("admin").call(
        "PUT", f"/segments/{seg['id']}/managers", {"user_ids": [1], "strategy": "fastest"}
    )
    assert status == 422 and body["field"] == "strategy"


async def _wait_rebalance(api: Api, seg_id: int) -> dict[str, Any]:
    for _ in range(400):
        _, body = await api.as_("admin").get(f"/segments/{seg_id}")
        if body["rebalance"] and body["rebalance"]["state"] != "running":
            return body
        await asyncio.sleep(0.05)
    raise AssertionError("the rebalance did not finish")


async def test_rebalance_shares_every_client_evenly_with_audit(api: Api, db: Database) -> None:
    a1, a2, b1 = (api.users[n].id for n in ("a1", "a2", "b1"))
    async with db.transaction() as s:
        for i in range(1203):
            s.add(
                Client(name=f"c{i}", kind="company", industry="Опт", owner_id=b1 if i % 3 else a1)
            )
        s.add(Client(name="other", kind="company", industry="Банки", owner_id=b1))
    admin = api.as_("admin")
    rule = {"all": [{"field": "industry", "op": "eq", "value": "Опт"}]}
    _, seg = await admin.post("/segments", {"name": "Wholesale", "rules": rule})
    status, out = await admin.call(
        "PUT",
        f"/segments/{seg['id']}/managers",
        {"user_ids": [a1, a2], "strategy": "least_loaded", "rebalance": True},
    )
    assert status == 200, out
    assert out["rebalance"]["total"] == 1203
    done = await _wait_rebalance(api, seg["id"])
    assert done["rebalance"]["state"] == "done"
    moved = done["rebalance"]["moved"]
    async with db.sessions() as s:
        per = dict(
            (
                await s.execute(
                    select(Client.owner_id, func.count())
                    .where(Client.industry == "Опт")
                    .group_by(Client.owner_id)
                )
            ).all()
        )
        assert per == {a1: 602, a2: 601}
        other = await s.scalar(select(Client.owner_id).where(Client.name == "other"))
        assert other == b1  # outside the segment: untouched
        audits = await s.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "segment_rebalance")
        )
        assert audits == moved
    # a1 kept the 401 they had (under the quota), so only the others moved
    assert moved == 1203 - 401


async def test_a_client_created_from_a_lead_goes_to_the_segment_managers(api: Api) -> None:
    admin = api.as_("admin")
    a2 = api.users["a2"].id
    rule = {"all": [{"field": "name", "op": "contains", "value": "вектор"}]}
    _, seg = await admin.post("/segments", {"name": "Vector", "rules": rule})
    status, _ = await admin.call("PUT", f"/segments/{seg['id']}/managers", {"user_ids": [a2]})
    assert status == 200
    status, lead = await api.as_("a1").post(
        "/leads", {"name": "Иван", "company": "ООО Вектор", "phones": ["+79165551234"]}
    )
    assert status == 201, lead
    status, out = await api.as_("a1").post(f"/leads/{lead['id']}/convert", {"deal_title": "D"})
    assert status == 200, out
    assert out["client"]["owner_id"] == a2
    assert out["client"]["segments"] == [{"id": seg["id"], "name": "Vector"}]
    # a new lead of that client would go to a2: they own it and manage the segment
    async with api.db.sessions() as s:
        client = await s.get(Client, out["client"]["id"])
        assert client is not None
        from crm_core.services.segments import segment_owner

        assert await segment_owner(s, client) == (a2, "Vector")


async def test_many_unowned_clients_get_owners_in_the_background(api: Api, db: Database) -> None:
    a1, a2 = api.users["a1"].id, api.users["a2"].id
    async with db.transaction() as s:
        for i in range(1101):
            s.add(Client(name=f"u{i}", kind="company", industry="Сырьё", owner_id=None))
    admin = api.as_("admin")
    rule = {"all": [{"field": "industry", "op": "eq", "value": "Сырьё"}]}
    _, seg = await admin.post("/segments", {"name": "Raw", "rules": rule})
    status, out = await admin.call("PUT", f"/segments/{seg['id']}/managers", {"user_ids": [a1, a2]})
    assert status == 200, out
    assert out["rebalance"]["kind"] == "assign" and out["rebalance"]["to_move"] == 1101
    done = await _wait_rebalance(api, seg["id"])
    assert done["rebalance"]["state"] == "done" and done["rebalance"]["moved"] == 1101
    async with db.sessions() as s:
        per = dict(
            (
                await s.execute(
                    select(Client.owner_id, func.count())
                    .where(Client.industry == "Сырьё")
                    .group_by(Client.owner_id)
                )
            ).all()
        )
        assert per == {a1: 551, a2: 550}
        audits = await s.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "segment_assign")
        )
        assert audits == 1101
