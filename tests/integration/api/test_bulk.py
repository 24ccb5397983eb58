"""Mass operations: POST /bulk/{action} queues a job, the runner does it in batches
(resumable, claimed once), GET /jobs/{id} shows progress; roles limit what changes."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select, update

from crm_core.jobs import JobRunner
from crm_core.models import AuditEntry, Client, ClientTag, Job, Segment, SegmentClient, Task
from crm_core.models import utcnow as now
from tests.support.api import Api


async def _clients(api: Api, owners: list[str | None]) -> list[int]:
    """One client per entry, owned by that user (None: no owner)."""
    async with api.db.transaction() as s:
        rows = [
            Client(
                kind="company",
                name=f"Клиент {i}",
                status="cold",
                owner_id=api.users[o].id if o else None,
                notes="",
            )
            for i, o in enumerate(owners)
        ]
        s.add_all(rows)
        await s.flush()
        return [c.id for c in rows]


async def _post(
    api: Api, who: str, action: str, body: dict[str, Any], key: str | None = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {api.tokens[who]}"}
    if key:
        headers["Idempotency-Key"] = key
    resp = await api.http.post(f"/api/v1/bulk/{action}", json=body, headers=headers)
    return resp.status, await resp.json()


async def _run(api: Api, batch: int = 3) -> None:
    await JobRunner(api.db, batch=batch).run_once()


async def _job(api: Api, who: str, job_id: int) -> dict[str, Any]:
    status, job = await api.as_(who).get(f"/jobs/{job_id}")
    assert status == 200, job
    return job


def _monday() -> date:
    d = date(2031, 1, 1)
    return d + timedelta(days=(7 - d.weekday()) % 7)


async def test_plan_tasks_spread_per_manager_per_day(api: Api) -> None:
    ids = await _clients(api, ["a1"] * 5 + ["a2"] * 3 + [None])
    start = _monday() + timedelta(days=3)  # a Thursday: the third day is the next Monday
    body = {
        "client_ids": ids,
        "kind": "call_back",
        "title": "Обзвон базы",
        "start_date": start.isoformat(),
        "per_manager_per_day": 2,
    }
    status, out = await _post(api, "admin", "tasks", body, key="plan-1")
    assert status == 202 and set(out) == {"job_id"}
    job = await _job(api, "admin", out["job_id"])
    assert job["status"] == "queued" and job["processed"] == 0
    await _run(api)
    job = await _job(api, "admin", out["job_id"])
    assert (job["status"], job["total"], job["processed"], job["skipped"]) == ("done", 9, 9, 1)
    assert job["skipped_by_reason"] == {"no_owner": 1}
    assert job["errors"] == [{"client_id": ids[-1], "error": "no_owner"}]
    async with api.db.sessions() as s:
        tasks = list(await s.scalars(select(Task).order_by(Task.client_id)))
        audits = await s.scalar(
            select(func.count()).where(AuditEntry.entity == "task", AuditEntry.action == "create")
        )
    assert len(tasks) == 8 and audits == 8
    by_owner = {c: t.assignee_id for c, t in zip(ids, tasks, strict=False)}
    assert by_owner[ids[0]] == api.users["a1"].id and by_owner[ids[5]] == api.users["a2"].id
    days = Counter(
        (
            t.assignee_id,
            t.due_at.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Moscow")).date(),
        )
        for t in tasks
        if t.due_at
    )
    assert max(days.values()) == 2
    a1_days = sorted(d for (u, d), _ in days.items() if u == api.users["a1"].id)
    assert a1_days == [start, start + timedelta(days=1), start + timedelta(days=4)]  # no weekend
    assert all(t.kind == "call_back" and t.status == "open" for t in tasks)
    assert sorted(d for (u, d), _ in days.items() if u == api.users["a2"].id) == [
        start,
        start + timedelta(days=1),
    ]
    # The same key answers the same job and plans nothing twice; another body is a conflict.
    status, again = await _post(api, "admin", "tasks", body, key="plan-1")
    assert (status, again) == (202, out)
    await _run(api)
    async with api.db.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(Task)) == 8
    status, err = await _post(api, "admin", "tasks", {**body, "title": "другое"}, key="plan-1")
    assert (status, err["field"]) == (409, "Idempotency-Key")


async def test_tasks_already_due_count_against_the_daily_limit(api: Api) -> None:
    ids = await _clients(api, ["a1"] * 3)
    start = _monday()
    msk = __import__("zoneinfo").ZoneInfo("Europe/Moscow")
    async with api.db.transaction() as s:
        for hour, status in ((9, "open"), (15, "open"), (11, "done")):
            at = datetime.combine(start, time(hour), tzinfo=msk)
            s.add(
                Task(
                    kind="other",
                    title="было",
                    status=status,
                    due_at=at,
                    assignee_id=api.users["a1"].id,
                    note="",
                )
            )
    status, _out = await _post(
        api,
        "a1",
        "tasks",
        {
            "client_ids": ids,
            "kind": "call_back",
            "title": "x",
            "start_date": start.isoformat(),
            "per_manager_per_day": 3,
        },
    )
    assert status == 202
    await _run(api, batch=2)
    async with api.db.sessions() as s:
        due = list(await s.scalars(select(Task.due_at).where(Task.title == "x")))
    days = Counter(d.astimezone(msk).date() for d in due)
    assert days == {start: 1, start + timedelta(days=1): 2}  # 2 open already on Monday


async def test_a_manager_changes_only_their_own_clients(api: Api) -> None:
    ids = await _clients(api, ["a1", "a1", "a2", "b1"])
    status, out = await _post(api, "a1", "status", {"client_ids": ids, "status": "thinking"})
    assert status == 202
    await _run(api)
    job = await _job(api, "a1", out["job_id"])
    assert (job["processed"], job["skipped"], job["skipped_by_reason"]) == (
        4,
        2,
        {"not_allowed": 2},
    )
    async with api.db.sessions() as s:
        statuses = dict((await s.execute(select(Client.id, Client.status))).all())
        entries = list(
            await s.scalars(select(AuditEntry).where(AuditEntry.action == "bulk_status"))
        )
    assert [statuses[i] for i in ids] == ["thinking", "thinking", "cold", "cold"]
    assert sorted(e.entity_id for e in entries) == ids[:2]
    assert entries[0].details == {
        "job_id": out["job_id"],
        "changes": {"status": ["cold", "thinking"]},
    }
    # Others do not see the job; the supervisor of a1's team and the admin do.
    assert (await api.as_("b1").get(f"/jobs/{out['job_id']}"))[0] == 404
    assert (await api.as_("a2").get(f"/jobs/{out['job_id']}"))[0] == 404
    assert (await api.as_("sup").get(f"/jobs/{out['job_id']}"))[0] == 200
    # A manager cannot give clients away (checked before queueing: nothing is queued).
    status, err = await _post(
        api, "a1", "owner", {"client_ids": ids, "owner_id": api.users["a2"].id}
    )
    assert (status, err["field"]) == (403, "owner_id")


async def test_supervisor_moves_owner_within_the_team(api: Api) -> None:
    ids = await _clients(api, ["a1", "a2", "b1"])
    status, out = await _post(
        api, "sup", "owner", {"client_ids": ids, "owner_id": api.users["a2"].id}
    )
    assert status == 202
    await _run(api)
    job = await _job(api, "sup", out["job_id"])
    assert job["status"] == "done" and job["skipped_by_reason"] == {"not_allowed": 1}
    async with api.db.sessions() as s:
        owners = dict((await s.execute(select(Client.id, Client.owner_id))).all())
        changes = [
            e.details["changes"]
            for e in await s.scalars(select(AuditEntry).where(AuditEntry.action == "bulk_owner"))
        ]
    assert [owners[i] for i in ids] == [api.users["a2"].id, api.users["a2"].id, api.users["b1"].id]
    assert changes == [{"owner_id": [api.users["a1"].id, api.users["a2"].id]}]  # a2's: no change


async def test_tags_by_filter_and_segments(api: Api) -> None:
    ids = await _clients(api, ["a1", "a2", "a2", "b1"])
    status, out = await _post(
        api, "admin", "tags", {"filters": {"owner_id": api.users["a2"].id}, "add": ["vip", "опт"]}
    )
    assert status == 202, out
    await _run(api)
    status, out2 = await _post(api, "admin", "tags", {"client_ids": ids, "remove": ["опт"]})
    await _run(api)
    async with api.db.sessions() as s:
        tags = sorted((await s.execute(select(ClientTag.client_id, ClientTag.tag))).all())
    assert tags == [(ids[1], "vip"), (ids[2], "vip")]
    assert (await _job(api, "admin", out2["job_id"]))["processed"] == 4
    async with api.db.transaction() as s:
        seg = Segment(name="Обзвон весной", kind="manual")
        rule = Segment(name="Правило", kind="rule", rules={})
        s.add_all([seg, rule])
        await s.flush()
        seg_id, rule_id = seg.id, rule.id
    status, out = await _post(
        api, "admin", "segment", {"segment_id": seg_id, "mode": "add", "client_ids": ids[:3]}
    )
    assert status == 202, out
    await _run(api)
    # Plan a task for the segment's members (selection by segment).
    status, out = await _post(
        api,
        "admin",
        "tasks",
        {
            "segment_id": seg_id,
            "kind": "send_offer",
            "title": "КП",
            "start_date": _monday().isoformat(),
            "per_manager_per_day": 10,
            "assignee_id": api.users["sup"].id,
        },
    )
    assert status == 202, out
    await _run(api)
    async with api.db.sessions() as s:
        members = set(await s.scalars(select(SegmentClient.client_id)))
        planned = list((await s.execute(select(Task.client_id, Task.assignee_id))).all())
    assert members == set(ids[:3])
    assert sorted(planned) == [(i, api.users["sup"].id) for i in ids[:3]]
    # Remove, selecting by filter, in the nested form.
    status, out = await _post(
        api,
        "admin",
        "segment",
        {
            "segment_id": seg_id,
            "remove": True,
            "selection": {"filters": {"owner_id": api.users["a2"].id}},
        },
    )
    assert status == 202, out
    await _run(api)
    async with api.db.sessions() as s:
        assert set(await s.scalars(select(SegmentClient.client_id))) == {ids[0]}
    status, err = await _post(
        api, "admin", "segment", {"segment_id": rule_id, "mode": "add", "client_ids": ids}
    )
    assert (status, err["field"]) == (422, "segment_id")


async def test_bad_requests_queue_nothing(api: Api) -> None:
    ids = await _clients(api, ["a1"])
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("status", {"status": "cold"}, "client_ids"),
        ("status", {"status": "cold", "client_ids": ids, "segment_id": 1}, "client_ids"),
        ("status", {"status": "nonsense", "client_ids": ids}, "status"),
        ("status", {"status": "cold", "filters": {"colour": "red"}}, "filters.colour"),
        ("tags", {"client_ids": ids}, "add"),
        (
            "tasks",
            {
                "client_ids": ids,
                "kind": "call_back",
                "title": "x",
                "start_date": "2031-01-01",
                "per_manager_per_day": 0,
            },
            "per_manager_per_day",
        ),
        (
            "tasks",
            {
                "client_ids": ids,
                "kind": "dance",
                "title": "x",
                "start_date": "2031-01-01",
                "per_manager_per_day": 1,
            },
            "kind",
        ),
        ("owner", {"client_ids": ids, "owner_id": 99999}, "owner_id"),
        ("segment", {"segment_id": 99999, "mode": "add", "client_ids": ids}, "segment_id"),
        (
            "segment",
            {
                "selection": {"segment_id": 9},
                "segment_id": 9,
                "mode": "add",
                "client_ids": ids,
            },
            "client_ids",
        ),
    ]
    for action, body, field in cases:
        status, err = await _post(api, "admin", action, body)
        assert status in (403, 422), (action, body, status, err)
        assert err["field"] == field, (action, body, err)
        assert err.get("error_ru") or err["error"]
    async with api.db.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(Job)) == 0
    status, _ = await _post(api, "admin", "merge", {"client_ids": ids})
    assert status in (404, 405)
    assert (await api.as_("admin").get("/jobs/12345"))[0] == 404


async def test_a_job_resumes_after_its_runner_died(api: Api) -> None:
    ids = await _clients(api, ["a1"] * 7)
    _status, out = await _post(
        api,
        "a1",
        "tasks",
        {
            "client_ids": ids,
            "kind": "other",
            "title": "x",
            "start_date": "2031-02-03",
            "per_manager_per_day": 3,
        },
    )
    dead = JobRunner(api.db, batch=2)
    job_id = await dead.claim()
    assert job_id == out["job_id"]
    assert await dead._step(job_id)  # one batch committed, then the process "dies"
    job = await _job(api, "a1", job_id)
    assert (job["status"], job["processed"]) == ("running", 2)
    # Its lease is still valid: nobody else takes the job...
    assert await JobRunner(api.db).claim() is None
    async with api.db.transaction() as s:  # ...until it runs out
        await s.execute(update(Job).values(locked_until=now() - timedelta(seconds=1)))
    await _run(api, batch=2)
    job = await _job(api, "a1", job_id)
    assert (job["status"], job["processed"], job["total"]) == ("done", 7, 7)
    async with api.db.sessions() as s:
        rows = (await s.execute(select(Task.client_id, Task.due_at))).all()
    assert sorted(c for c, _ in rows) == ids  # each client once
    per_day = Counter(d.date() for _, d in rows if d)
    assert sorted(per_day.values()) == [1, 3, 3]  # the spread went on where it stopped
    # The dead runner's next batch finds the job taken and stops.
    assert not await dead._step(job_id)


async def test_a_stopped_runner_hands_its_job_back(api: Api) -> None:
    ids = await _clients(api, ["a1"] * 3)
    await _post(api, "admin", "tags", {"client_ids": ids, "add": ["x"]})
    first = JobRunner(api.db, batch=1)
    job_id = await first.claim()
    assert job_id is not None and await first._step(job_id)
    await first.stop()  # a graceful stop between batches
    second = JobRunner(api.db, batch=1)
    assert await second.claim() == job_id  # at once, no lease to wait out
    await second.run_job(job_id)
    job = await _job(api, "admin", job_id)
    assert (job["status"], job["processed"]) == ("done", 3)


async def test_two_runners_claim_each_job_once(api: Api) -> None:
    ids = await _clients(api, ["a1"] * 4)
    for n in range(3):
        await _post(api, "admin", "tags", {"client_ids": ids, "add": [f"t{n}"]})
    ran = await asyncio.gather(*(JobRunner(api.db, batch=1).run_once() for _ in range(2)))
    assert sum(ran) == 3
    async with api.db.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(ClientTag)) == 12
        done = await s.scalar(select(func.count()).where(Job.status == "done"))
        audits = await s.scalar(select(func.count()).where(AuditEntry.action == "bulk_tags"))
    assert done == 3 and audits == 12


async def test_a_rule_segment_selects_by_its_rules(api: Api) -> None:
    ids = await _clients(api, ["a1", "a1", "a2", None])
    async with api.db.transaction() as s:
        first = await s.get(Client, ids[0])
        assert first is not None
        first.status = "active"  # the rule below leaves it out
        rule = Segment(
            name="Холодные",
            kind="rule",
            rules={"all": [{"field": "status", "op": "eq", "value": "cold"}]},
        )
        s.add(rule)
        await s.flush()
        rule_id = rule.id
    status, out = await _post(api, "admin", "status", {"segment_id": rule_id, "status": "thinking"})
    assert status == 202, out
    await _run(api)
    job = await _job(api, "admin", out["job_id"])
    assert (job["status"], job["total"], job["processed"]) == ("done", 3, 3)
    async with api.db.sessions() as s:
        got = dict((await s.execute(select(Client.id, Client.status))).all())
    assert got == {ids[0]: "active", ids[1]: "thinking", ids[2]: "thinking", ids[3]: "thinking"}


async def test_filters_select_exactly_the_clients_the_list_shows(api: Api) -> None:
    """Every filter of the clients list (profile fields, custom fields, tags, segments by
    rules or by hand, search) selects for a mass action exactly the clients the list
    shows, for an admin and for a manager (who sees only theirs)."""
    from decimal import Decimal

    from crm_core.models import CustomField

    u = api.users
    rows: list[dict[str, Any]] = [
        dict(name="Розница Москва", industry="Розница", region="Москва", headcount=120,
             revenue=Decimal("5000000"), owner_id=u["a1"].id,
             custom={"tier": "gold", "score": 7, "channels": ["b2b", "online"]}),
        dict(name="Розница Питер", industry="Розница", region="Санкт-Петербург", headcount=15,
             owner_id=u["a2"].id, custom={"tier": "silver", "score": 3}),
        dict(name="Банк", industry="Банки", region="Москва", headcount=5000,
             owner_id=u["b1"].id, custom={"score": 9, "tier": "gold"}),
        dict(name="Иван", kind="person", region="Казань", owner_id=u["a1"].id),
        dict(name="Розница ничья", industry="Розница", region="Москва", owner_id=None),
        dict(name="Пустая", owner_id=u["a1"].id, status="ready"),
    ]  # fmt: skip
    async with api.db.transaction() as s:
        s.add(
            CustomField(key="tier", label_ru="Уровень", type="choice", options=["gold", "silver"])
        )
        s.add(CustomField(key="score", label_ru="Балл", type="number"))
        s.add(CustomField(key="channels", label_ru="Каналы", type="multi"))
        ids = []
        for kw in rows:
            c = Client(**{"kind": "company", "status": "cold", **kw})
            s.add(c)
            await s.flush()
            ids.append(c.id)
        s.add_all([ClientTag(client_id=ids[0], tag="vip"), ClientTag(client_id=ids[2], tag="vip")])
        rule = Segment(
            name="Розница",
            kind="rule",
            rules={"all": [{"field": "industry", "op": "eq", "value": "Розница"}]},
        )
        manual = Segment(name="Вручную", kind="manual")
        s.add_all([rule, manual])
        await s.flush()
        s.add_all([SegmentClient(segment_id=manual.id, client_id=i) for i in (ids[1], ids[3])])
        rule_id, manual_id = rule.id, manual.id
    cases: list[dict[str, Any]] = [
        {"industry": "Розница", "region": "Москва"},
        {"cf.tier": "gold"},
        {"cf.score": "5..10", "sort": "name"},
        {"cf.channels": "online"},
        {"headcount_min": "100", "headcount_max": "1000"},
        {"revenue_min": "1000000"},
        {"tag": "vip"},
        {"segment": str(rule_id)},
        {"segment": str(manual_id)},
        {"kind": "person"},
        {"status": "ready"},
        {"q": "Розница"},
        {"city": "Нигде"},
    ]
    n = 0
    for who in ("admin", "a1"):
        for query in cases:
            status, page = await api.as_(who).get("/clients", limit=200, **query)
            assert status == 200, page
            shown = {c["id"] for c in page["items"]}
            n += 1
            tag = f"picked-{n}"
            status, out = await _post(api, who, "tags", {"filters": query, "add": [tag]})
            assert status == 202, (query, out)
            await _run(api, batch=2)
            job = await _job(api, who, out["job_id"])
            assert job["status"] == "done", job
            async with api.db.sessions() as s:
                tagged = set(
                    await s.scalars(select(ClientTag.client_id).where(ClientTag.tag == tag))
                )
            assert tagged == shown, (who, query)
            assert job["total"] == len(shown), (who, query)
    status, err = await _post(api, "admin", "tags", {"filters": {"cf.nope": "1"}, "add": ["x"]})
    assert (status, err["field"]) == (422, "cf.nope"), err


async def test_filters_beside_an_empty_nested_selection(api: Api) -> None:
    """Found by schemathesis: ``filters`` at the top and an empty ``selection`` was a 500
    (the nested object was read for the filters); it selects by the filters."""
    ids = await _clients(api, ["a1", "a2"])
    body = {
        "filters": {"owner_id": api.users["a2"].id},
        "selection": {"segment_id": None},
        "status": "ready",
    }
    status, out = await _post(api, "admin", "status", body)
    assert status == 202, out
    await _run(api)
    async with api.db.sessions() as s:
        got = dict((await s.execute(select(Client.id, Client.status))).tuples().all())
    assert got == {ids[0]: "cold", ids[1]: "ready"}
    status, err = await _post(api, "admin", "status", {**body, "selection": {"client_ids": ids}})
    assert (status, err["field"]) == (422, "client_ids")
