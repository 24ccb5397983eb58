"""Analytics over the demo data: funnel conversion and losses by stage, requests and
refusals per period, manager activity — limited to what the caller may see."""

from __future__ import annotations

from pathlib import Path

from aiohttp.test_utils import TestClient

from crm_core.db import Database, migrate
from crm_core.demo import load_demo
from gateway.app import create_app
from tests.support.app import make_settings


async def test_funnel_requests_and_managers(
    db_url: str, tmp_path: Path, aiohttp_client: object
) -> None:
    db = Database(db_url)
    await migrate(db)
    demo = await load_demo(db)
    await db.dispose()
    tokens = {u["email"]: u["token"] for u in demo["users"]}
    admin = {"Authorization": f"Bearer {tokens['admin@demo.crmhub.local']}"}
    petrov = {"Authorization": f"Bearer {tokens['petrov@demo.crmhub.local']}"}
    client: TestClient = await aiohttp_client(create_app(make_settings(db_url, tmp_path)))  # type: ignore[operator]

    r = await client.get("/api/v1/analytics/funnel", headers=admin)
    f = await r.json()
    assert r.status == 200 and f["deals_created"] == 5
    reached = {s["stage"]: s["reached"] for s in f["stages"]}
    assert reached == {
        "new": 5,
        "qualification": 4,
        "proposal": 3,
        "negotiation": 2,
        "contract": 1,
        "won": 0,
    }
    assert f["stages"][0]["conversion_to_next"] == 0.8

    # Lose the deal at "proposal": it shows as a loss at that stage with its reason.
    deals = (await (await client.get("/api/v1/deals", headers=admin)).json())["items"]
    at_proposal = next(d for d in deals if d["stage"] == "proposal")
    r = await client.post(
        f"/api/v1/deals/{at_proposal['id']}/lose", json={"reason": "дорого"}, headers=admin
    )
    assert r.status == 200, await r.text()
    f = await (await client.get("/api/v1/analytics/funnel", headers=admin)).json()
    proposal = next(s for s in f["stages"] if s["stage"] == "proposal")
    assert proposal["lost_here"] == 1 and proposal["loss_reasons"] == {"Дорого": 1}
    assert f["lost"] == 1

    r = await client.get("/api/v1/analytics/requests?group=month", headers=admin)
    req = await r.json()
    assert r.status == 200 and sum(p["requests"] for p in req["items"]) == 1
    assert req["items"][0]["by_source"] == {"webform": 1}

    # A manager sees only their own figures.
    own = await (await client.get("/api/v1/analytics/managers", headers=petrov)).json()
    assert [m["name"] for m in own["items"]] == ["Пётр Петров"]
    mine = await (await client.get("/api/v1/analytics/funnel", headers=petrov)).json()
    assert mine["deals_created"] == 2

    bad = await client.get("/api/v1/analytics/requests?group=year", headers=admin)
    assert bad.status == 422 and (await bad.json())["field"] == "group"
