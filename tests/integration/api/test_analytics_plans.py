"""Issue 13 (items 5, 6): sales plans, sales by period/manager/segment/season, plan
against fact, manager activity (talk time, first response), the most promising clients,
and every report's CSV/XLSX/SVG, through the real API on SQLite and PostgreSQL.

The figures are checked against ``tests/support/analytics_reference.py``, which loads the
rows and counts them in Python (no GROUP BY)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from openpyxl import load_workbook

from crm_core.access import Actor
from crm_core.models import Client, Deal, Interaction, Lead, SalesPlan, Segment, Task
from crm_core.services.plans import parse_period
from gateway.api.analytics_export import table_of
from tests.support import analytics_reference as ref
from tests.support.api import Api, count

NOW = datetime.now(UTC)
Y0 = datetime(2025, 1, 10, 12, tzinfo=UTC)


async def _seed(api: Api) -> None:
    """Clients of every manager in two segments (and none), won deals over two years,
    open deals at several stages, calls with talk and ring times in the last month,
    leads answered after a while, meetings done."""
    u = {k: v.id for k, v in api.users.items()}
    owners = [u["a1"], u["a2"], u["b1"], u["sup"]]
    async with api.db.transaction() as s:
        s.add_all([Segment(id=1, name="Опт"), Segment(id=2, name="Розница")])
        await s.flush()
        for cid in range(1, 17):
            s.add(
                Client(
                    id=cid,
                    kind="company",
                    name=f"Клиент {cid}",
                    owner_id=owners[cid % 4],
                    segment_id=(None, 1, 2)[cid % 3],
                )
            )
        await s.flush()
        did = 0
        for k in range(40):  # won deals, spread over 2025-2026 (and the plan's quarter)
            did += 1
            closed = Y0 + timedelta(days=k * 17, hours=k)
            s.add(
                Deal(
                    id=did,
                    client_id=1 + k % 16,
                    title=f"Сделка {did}",
                    stage="won",
                    amount=Decimal(10000 * (1 + k % 7)),
                    owner_id=owners[k % 4],
                    created_at=closed - timedelta(days=9),
                    closed_at=closed,
                )
            )
        for k, stage in enumerate(("new", "qualification", "proposal", "contract", "lost") * 3):
            did += 1
            s.add(
                Deal(
                    id=did,
                    client_id=1 + (k * 5) % 16,
                    title=f"Открытая {did}",
                    stage=stage,
                    amount=Decimal(50000 * (1 + k % 4)) if k % 5 else None,
                    owner_id=owners[(k * 5) % 4],
                    closed_at=NOW - timedelta(days=2) if stage == "lost" else None,
                )
            )
        await s.flush()
        s.add(
            Lead(
                id=1,
                status="in_progress",
                source="call",
                owner_id=u["a1"],
                created_at=NOW - timedelta(days=20),
            )
        )
        s.add(
            Lead(
                id=2,
                status="new",
                source="email",
                owner_id=u["a1"],
                created_at=NOW - timedelta(days=10),
            )
        )
        await s.flush()
        iid = 0
        for k in range(60):  # the last 25 days; calls with talk and ring times
            iid += 1
            channel = ("call", "call", "email")[k % 3]
            direction = ("out", "in")[(k // 3) % 2] if channel == "call" else ("in", "out")[k % 2]
            client = 1 + (k * 7) % 16
            s.add(
                Interaction(
                    id=iid,
                    client_id=client,
                    lead_id=(1 if k == 18 else 2 if k == 42 else None),
                    channel=channel,
                    direction=direction,
                    kind="call_ended" if channel == "call" else "email_received",
                    outcome=("answered", "missed", "answered")[k % 3]
                    if channel == "call"
                    else None,
                    duration_s=(30 * (k % 5)) if channel == "call" else None,
                    ring_s=(4, 15, 8)[k % 3] if channel == "call" else None,
                    user_id=owners[client % 4],
                    occurred_at=NOW - timedelta(days=25) + timedelta(hours=9 * k),
                )
            )
        for k in range(12):  # older calls: not recent, but in the activity and plan facts
            iid += 1
            s.add(
                Interaction(
                    id=iid,
                    client_id=1 + k,
                    channel="call",
                    direction="out",
                    kind="call_ended",
                    outcome="answered",
                    duration_s=60,
                    user_id=owners[k % 4],
                    occurred_at=datetime(2026, 10, 3 + k, 10, tzinfo=UTC),
                )
            )
        for k in range(9):
            s.add(
                Task(
                    id=k + 1,
                    kind="meeting" if k % 3 else "call_back",
                    title=f"Встреча {k}",
                    status="done" if k < 7 else "open",
                    assignee_id=owners[k % 4],
                    created_at=datetime(2026, 10, 1, tzinfo=UTC),
                    closed_at=datetime(2026, 10, 5 + k, tzinfo=UTC) if k < 7 else None,
                )
            )
    if api.db.is_postgres:
        from sqlalchemy import text

        async with api.db.transaction() as s:
            for table in ("clients", "deals", "leads", "interactions", "tasks", "segments"):
                await s.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT max(id) FROM {table}))"
                    )
                )


def _actor(api: Api, name: str) -> Actor:
    user = api.users[name]
    return Actor(user.id, user.role, user.team)


WINDOWS = [
    {},
    {"created_from": "2025-03-01", "created_to": "2025-12-31"},
    {"created_from": "2026-01-15T10:00:00+03:00"},
    {"created_to": "2025-06-30"},
]


@pytest.mark.parametrize("who", ["admin", "sup", "a1", "b1"])
async def test_sales_equal_a_naive_count_for_each_role(api: Api, who: str) -> None:
    await _seed(api)
    caller = api.as_(who)
    for window in WINDOWS:
        for group in ("day", "week", "month", "manager", "segment", "season"):
            status, got = await caller.get("/analytics/sales", group=group, **window)
            assert status == 200, got
            start = (
                datetime.fromisoformat(window["created_from"]) if "created_from" in window else None
            )
            if start is not None and start.tzinfo is None:
                start = start.replace(tzinfo=UTC)
            end = (
                datetime.fromisoformat(window["created_to"]).replace(tzinfo=UTC) + timedelta(days=1)
                if "created_to" in window
                else None
            )
            async with api.db.sessions() as s:
                want = await ref.sales(s, _actor(api, who), start, end, group)
            assert got == want, (who, window, group)
    # The seed does exercise the figures: several years, segments, managers.
    _, season = await api.as_("admin").get("/analytics/sales", group="season")
    assert season["years"] == ["2025", "2026"] and season["deals"] == 40
    _, segments = await api.as_("admin").get("/analytics/sales", group="segment")
    assert {i["label"] for i in segments["items"]} == {"Опт", "Розница", "—"}
    _, mine = await api.as_("b1").get("/analytics/sales", group="manager")
    assert [i["key"] for i in mine["items"]] == [api.users["b1"].id]


async def test_plans_roles_and_plan_against_fact(api: Api) -> None:
    await _seed(api)
    u = {k: v.id for k, v in api.users.items()}
    admin, sup, a1 = (api.as_(n) for n in ("admin", "sup", "a1"))
    body = {
        "period": "2026-Q4",
        "items": [
            {"user_id": u["a1"], "amount": "100000", "deals": 2, "calls": 4, "meetings": 1},
            {"team": "A", "amount": 500000, "deals": 10},
        ],
    }
    status, plans = await sup.call("PUT", "/plans", body)
    assert status == 200, plans
    row = next(r for r in plans["users"] if r["user_id"] == u["a1"])
    assert (row["amount"], row["deals"], row["calls"], row["meetings"]) == ("100000.00", 2, 4, 1)

    # Out of reach: a manager writes nothing; a supervisor not another team's.
    before = await count(api.db, SalesPlan)
    status, err = await a1.call("PUT", "/plans", body)
    assert status == 403
    status, err = await sup.call(
        "PUT", "/plans", {"period": "2026-Q4", "items": [{"user_id": u["b1"], "deals": 1}]}
    )
    assert status == 403 and err["field"] == "items.0.user_id"
    status, err = await sup.call(
        "PUT", "/plans", {"period": "2026-Q4", "items": [{"team": "B", "deals": 1}]}
    )
    assert status == 403 and err["field"] == "items.0.team"
    # Bad input names the field and writes nothing, even beside a good item.
    for bad, field in (
        ({"user_id": u["a2"], "deals": -1}, "items.1.deals"),
        ({"user_id": u["a2"], "amount": "много"}, "items.1.amount"),
        ({"user_id": u["a2"], "team": "A"}, "items.1.user_id"),
        ({"user_id": u["admin"], "deals": 1}, "items.1.user_id"),
        ({"team": "A\x00", "deals": 1}, "items.1.team"),
        ({"user_id": u["a2"], "meetings": 2.5}, "items.1.meetings"),
    ):
        status, err = await admin.call(
            "PUT", "/plans", {"period": "2026-Q4", "items": [{"user_id": u["a2"], "deals": 3}, bad]}
        )
        # a NUL is refused for any JSON body before validation (400), the rest is 422
        assert status in (400, 422) and err["field"] == field, (bad, err)
    for period in ("2026-13", "２０２６-12", "2026-Q0", "26-12"):
        status, err = await admin.call("PUT", "/plans", {"period": period, "items": []})
        assert status == 422 and err["field"] == "period" and "error_ru" in err
    assert await count(api.db, SalesPlan) == before

    # The admin plans team B; a manager reads their own plan only.
    status, _ = await admin.call(
        "PUT", "/plans", {"period": "2026-Q4", "items": [{"user_id": u["b1"], "calls": 7}]}
    )
    assert status == 200
    status, mine = await a1.get("/plans", period="2026-q4")
    assert status == 200 and [r["user_id"] for r in mine["users"]] == [u["a1"]]
    assert mine["teams"] == [] and mine["can_edit"] is False
    _, team = await sup.get("/plans", period="2026-Q4")
    assert {r["user_id"] for r in team["users"]} == {u["sup"], u["a1"], u["a2"]}
    assert [t["team"] for t in team["teams"]] == ["A"]

    # Plan against fact: the facts of the quarter, counted naively.
    period = parse_period("2026-Q4")
    for who in ("admin", "sup", "a1", "b1"):
        status, pf = await api.as_(who).get("/analytics/plan-fact", period="2026-Q4")
        assert status == 200, pf
        async with api.db.sessions() as s:
            fact = await ref.plan_fact_figures(s, _actor(api, who), period.start, period.end)
        users = {i["user_id"]: i for i in pf["items"] if i["kind"] == "user"}
        assert set(users) == set(fact)
        for uid, f in fact.items():
            got = users[uid]
            assert Decimal(got["fact_amount"]) == f["amount"]
            assert (got["fact_deals"], got["fact_calls"], got["fact_meetings"]) == (
                f["deals"],
                f["calls"],
                f["meetings"],
            )
        teams = {i["team"]: i for i in pf["items"] if i["kind"] == "team"}
        if who == "sup":
            members = [uid for uid, x in users.items() if x["team"] == "A"]
            assert teams["A"]["fact_deals"] == sum(fact[m]["deals"] for m in members)
            assert Decimal(teams["A"]["plan_amount"]) == 500000
        if who == "a1":
            assert teams == {} and list(users) == [u["a1"]]
    _, pf = await admin.get("/analytics/plan-fact", period="2026-Q4")
    a1_row = next(i for i in pf["items"] if i["user_id"] == u["a1"])
    assert a1_row["plan_calls"] == 4 and a1_row["fact_calls"] > 0
    assert a1_row["pct_calls"] == round(a1_row["fact_calls"] / 4 * 100, 1)
    assert sum(i["fact_meetings"] for i in pf["items"] if i["kind"] == "user") == 4


@pytest.mark.parametrize("who", ["admin", "sup", "b1"])
async def test_promising_clients_equal_a_naive_ranking(api: Api, who: str) -> None:
    await _seed(api)
    status, got = await api.as_(who).get("/analytics/promising", limit=3)
    assert status == 200, got
    async with api.db.sessions() as s:
        want = await ref.promising_clients(s, _actor(api, who), datetime.now(UTC), limit=3)
    slim = sorted(
        ({k: i[k] for k in ("owner_id", "client_id", "rank", "score")} for i in got["items"]),
        key=lambda i: (i["owner_id"], i["rank"]),
    )
    assert slim == want
    assert got["items"], "the seed has promising clients"
    best = got["items"][0]
    assert best["score"] == round(sum(best["points"].values()), 1)
    owners = {i["owner_id"] for i in got["items"]}
    if who == "b1":
        assert owners == {api.users["b1"].id}
    # One manager only, and the reasons are there.
    b1 = api.users["b1"].id
    status, one = await api.as_("admin").get("/analytics/promising", owner_id=b1)
    assert status == 200 and {i["owner_id"] for i in one["items"]} == {b1}
    assert any(i["open_stage"] for i in one["items"]) and any(i["won_deals"] for i in one["items"])
    assert any(i["answer_rate"] is not None for i in one["items"])


async def test_manager_activity_shows_talk_time_and_first_response(api: Api) -> None:
    await _seed(api)
    for who in ("admin", "sup", "a1"):
        for window in WINDOWS[:3]:
            status, got = await api.as_(who).get("/analytics/managers", **window)
            assert status == 200
            start = (
                datetime.fromisoformat(window["created_from"]) if "created_from" in window else None
            )
            if start is not None and start.tzinfo is None:
                start = start.replace(tzinfo=UTC)
            end = (
                datetime.fromisoformat(window["created_to"]).replace(tzinfo=UTC) + timedelta(days=1)
                if "created_to" in window
                else None
            )
            async with api.db.sessions() as s:
                want = await ref.manager_activity(s, _actor(api, who), start, end)
            drop = ("tasks_overdue",)
            assert [{k: v for k, v in i.items() if k not in drop} for i in got["items"]] == [
                {k: v for k, v in i.items() if k not in drop} for i in want["items"]
            ]
    _, got = await api.as_("a1").get("/analytics/managers")
    mine = got["items"][0]
    assert mine["talk_s"] > 0 and mine["calls_out"] > 0
    assert mine["first_response_n"] == 2 and mine["first_response_avg_s"] > 0


REPORTS: list[tuple[str, dict[str, Any]]] = [
    ("/analytics/funnel", {}),
    ("/analytics/requests", {"group": "month"}),
    ("/analytics/managers", {}),
    ("/analytics/sales", {"group": "season"}),
    ("/analytics/sales", {"group": "segment"}),
    ("/analytics/plan-fact", {"period": "2026-Q4"}),
    ("/analytics/promising", {}),
]


def _cell(value: Any) -> Any:
    """A JSON value as the export writes it: numeric strings (amounts) become numbers."""
    if isinstance(value, str):
        try:
            return Decimal(value)
        except ArithmeticError:
            return value
    return value


@pytest.mark.parametrize("path,params", REPORTS, ids=[f"{p}{q}" for p, q in REPORTS])
async def test_every_report_exports_the_same_numbers(
    api: Api, path: str, params: dict[str, Any]
) -> None:
    await _seed(api)
    caller = api.as_("sup")
    status, data = await caller.get(path, **params)
    assert status == 200
    table = table_of(data)
    assert table.rows, "the report has rows to export"

    resp = await api.http.get(
        "/api/v1" + path,
        params={**params, "format": "xlsx", "lang": "en"},
        headers={"Authorization": f"Bearer {caller.token}"},
    )
    assert resp.status == 200 and resp.content_type.endswith("spreadsheetml.sheet")
    assert "attachment" in resp.headers["Content-Disposition"]
    ws = load_workbook(io.BytesIO(await resp.read()), read_only=True).active
    assert ws is not None
    sheet = [list(r) for r in ws.iter_rows(values_only=True)]
    assert len(sheet) == 1 + len(table.rows)
    for got_row, want_row in zip(sheet[1:], table.rows, strict=True):
        padded = got_row + [None] * (len(want_row) - len(got_row))  # empty cells at the end
        for got, want in zip(padded, want_row, strict=True):
            want = _cell(want)
            if isinstance(want, Decimal | float) and got is not None:
                assert Decimal(str(got)) == Decimal(str(want))
            else:
                assert got == want

    resp = await api.http.get(
        "/api/v1" + path,
        params={**params, "format": "csv"},
        headers={"Authorization": f"Bearer {caller.token}"},
    )
    raw = await resp.read()
    assert resp.status == 200 and resp.content_type == "text/csv"
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig")), delimiter=";"))
    assert len(rows) == 1 + len(table.rows)
    for got_row, want_row in zip(rows[1:], table.rows, strict=True):
        for got, want in zip(got_row, want_row, strict=True):
            want = _cell(want)
            if want is None:
                assert got == ""
            elif isinstance(want, bool):
                assert got == str(int(want))
            elif isinstance(want, int | float | Decimal):
                assert Decimal(got.replace(",", ".")) == Decimal(str(want))  # decimal comma
            else:
                assert got == str(want)

    resp = await api.http.get(
        "/api/v1" + path,
        params={**params, "format": "svg", "lang": "en"},
        headers={"Authorization": f"Bearer {caller.token}"},
    )
    svg = await resp.text()
    assert resp.status == 200 and resp.content_type == "image/svg+xml"
    assert svg.startswith("<svg") and "<script" not in svg and "<rect" in svg


async def test_report_queries_refuse_bad_input(api: Api) -> None:
    admin = api.as_("admin")
    for path, params, field in (
        ("/analytics/sales", {"group": "year"}, "group"),
        ("/analytics/sales", {"format": "pdf"}, "format"),
        ("/analytics/funnel", {"lang": "de"}, "lang"),
        ("/analytics/plan-fact", {"period": "2026-Q5"}, "period"),
        ("/analytics/plan-fact", {}, "period"),
        ("/analytics/promising", {"limit": "0"}, "limit"),
        ("/plans", {"period": "12-2026"}, "period"),
    ):
        status, err = await admin.get(path, **params)
        assert status == 422 and err["field"] == field, (path, params, err)
    status, _ = await api.anonymous().get("/analytics/sales")
    assert status == 401


async def test_promising_ranks_each_pipeline_by_its_own_stage_order(api: Api) -> None:
    """A deal at the last open stage of a three-stage B2C funnel is 2/3 of the way to won
    (16.7 points); one at the default funnel's second stage of five is 1/5 (5 points).
    Ranked by the default funnel's codes, the B2C stage counted as the first (0 points)."""
    b2c = {
        "name": "B2C — розница",
        "name_en": "B2C — retail",
        "stages": [
            {"code": "request", "name": "Заявка", "name_en": "Request"},
            {"code": "offer", "name": "Подбор", "name_en": "Offer"},
            {"code": "invoice", "name": "Счёт", "name_en": "Invoice"},
        ],
    }
    status, p = await api.as_("admin").post("/pipelines", b2c)
    assert status == 201, p
    a1 = api.users["a1"].id
    async with api.db.transaction() as s:
        for cid, name in ((1, "Розница"), (2, "Опт"), (3, "Розница 2")):
            s.add(Client(id=cid, kind="company", name=name, owner_id=a1))
        await s.flush()
        s.add_all(
            [
                Deal(id=1, client_id=1, title="b2c", stage="invoice", pipeline_id=p["id"]),
                Deal(id=2, client_id=2, title="b2b", stage="qualification", owner_id=a1),
                Deal(id=3, client_id=3, title="b2c 2", stage="offer", pipeline_id=p["id"]),
            ]
        )
    status, got = await api.as_("admin").get("/analytics/promising")
    assert status == 200, got
    by_client = {i["client_id"]: i for i in got["items"]}
    assert [i["client_id"] for i in got["items"]] == [1, 3, 2]
    assert by_client[1]["points"]["deal"] == 16.7
    assert by_client[3]["points"]["deal"] == 8.3
    assert by_client[2]["points"]["deal"] == 5.0
    assert by_client[1]["open_stage"] == "invoice"
    assert by_client[1]["open_stage_name"] == "Счёт"
    assert by_client[1]["open_stage_name_en"] == "Invoice"
    assert by_client[1]["open_pipeline_id"] == p["id"]
    assert by_client[2]["open_stage"] == "qualification"
    async with api.db.sessions() as s:
        want = await ref.promising_clients(s, _actor(api, "admin"), datetime.now(UTC))
    assert [(i["client_id"], i["score"]) for i in got["items"]] == [
        (w["client_id"], w["score"]) for w in want
    ]
