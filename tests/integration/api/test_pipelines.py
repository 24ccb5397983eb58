"""Pipelines (issue 13, item 1): several funnels with their stages and loss reasons, deals
with line items, required fields per stage, lose/win/reopen, the board, the funnel per
pipeline, and roles (a manager never sees or changes another manager's deals)."""

from __future__ import annotations

from typing import Any

from gateway.api.responses import BoardOut, DealWithHistoryOut, PipelineOut
from tests.support.api import Api, Caller

B2C = {
    "name": "B2C — розница",
    "name_en": "B2C — retail",
    "stages": [
        {"code": "new", "name": "Заявка", "name_en": "Request", "probability": 10},
        {"code": "offer", "name": "Подбор", "name_en": "Offer", "probability": 40},
        {
            "code": "invoice",
            "name": "Счёт",
            "name_en": "Invoice",
            "probability": 80,
            "required_fields": ["items"],
        },
    ],
    "loss_reasons": [
        {"name": "Нет в наличии", "name_en": "Out of stock"},
        {"name": "Передумал", "name_en": "Changed their mind"},
    ],
}


async def _client(who: Caller, name: str = "Клиент") -> int:
    status, client = await who.post("/clients", {"name": name})
    assert status == 201, client
    return int(client["id"])


async def _b2c(api: Api) -> dict[str, Any]:
    status, p = await api.as_("admin").post("/pipelines", B2C)
    assert status == 201, p
    PipelineOut.model_validate(p)
    return p


async def test_pipelines_are_listed_and_only_admins_change_them(api: Api) -> None:
    status, page = await api.as_("a1").get("/pipelines")
    assert status == 200 and page["total"] == 1
    default = page["items"][0]
    assert default["is_default"] and [s["code"] for s in default["stages"]] == [
        "new",
        "qualification",
        "proposal",
        "negotiation",
        "contract",
        "won",
        "lost",
    ]
    contract = next(s for s in default["stages"] if s["code"] == "contract")
    assert contract["required_fields"] == ["amount"] and contract["name"] == "Договор"
    assert {r["name"] for r in default["loss_reasons"]} >= {"Дорого", "Выбрали конкурента"}

    for who in ("a1", "sup"):
        status, err = await api.as_(who).post("/pipelines", B2C)
        assert status == 403, err
    p = await _b2c(api)
    assert [(s["code"], s["kind"]) for s in p["stages"]] == [
        ("new", "open"),
        ("offer", "open"),
        ("invoice", "open"),
        ("won", "won"),  # added: every pipeline closes as won or lost
        ("lost", "lost"),
    ]
    status, err = await api.as_("admin").post("/pipelines", B2C)
    assert (status, err["field"]) == (409, "name")
    status, err = await api.as_("admin").post(
        "/pipelines", {"name": "X", "stages": [{"name": "A", "required_fields": ["colour"]}]}
    )
    assert status == 422 and err["field"].startswith("stages.0.required_fields")

    # The catalogue: rename one, add one, drop one (archived, so lost deals keep it).
    first, second = p["loss_reasons"]
    status, err = await api.as_("a1").patch(f"/pipelines/{p['id']}", {"loss_reasons": []})
    assert status in (403, 422)
    status, out = await api.as_("admin").patch(
        f"/pipelines/{p['id']}",
        {"loss_reasons": [{"id": first["id"], "name": "Нет на складе"}, {"name": "Дорого"}]},
    )
    assert status == 200, out
    reasons = {r["name"]: r["active"] for r in out["loss_reasons"]}
    assert reasons == {"Нет на складе": True, "Дорого": True, second["name"]: False}

    status, _ = await api.as_("a1").call("DELETE", f"/pipelines/{p['id']}")
    assert status == 403
    status, err = await api.as_("admin").call("DELETE", f"/pipelines/{default['id']}")
    assert status == 409
    status, _ = await api.as_("admin").call("DELETE", f"/pipelines/{p['id']}")
    assert status == 204
    status, page = await api.as_("a1").get("/pipelines")
    assert page["total"] == 1


async def test_deal_in_a_pipeline_with_items_required_fields_lose_win_reopen(api: Api) -> None:
    p = await _b2c(api)
    a1 = api.as_("a1")
    cid = await _client(a1)
    status, err = await a1.post(
        "/deals", {"client_id": cid, "title": "Диван", "pipeline_id": p["id"], "stage": "proposal"}
    )
    assert (status, err["field"]) == (422, "stage")  # not a stage of this pipeline
    status, deal = await a1.post(
        "/deals", {"client_id": cid, "title": "Диван", "pipeline_id": p["id"]}
    )
    assert status == 201, deal
    assert (deal["pipeline_id"], deal["stage"], deal["stage_label"]) == (p["id"], "new", "Заявка")
    did = deal["id"]

    # "Счёт" requires line items: 400 naming the field, in English and Russian.
    status, err = await a1.post(f"/deals/{did}/stage", {"stage": "invoice"})
    assert (status, err["field"]) == (400, "items")
    assert "Invoice" in err["error"] and "Счёт" in err["error_ru"]
    status, err = await a1.post(f"/deals/{did}/win")
    assert (status, err["field"]) == (400, "items")  # won lies past "Счёт"

    items = [
        {"name": "Диван", "quantity": 1, "price": "50000", "discount": 10},
        {"name": "Доставка", "quantity": "2", "unit": "усл", "price": "1500.50"},
    ]
    status, deal = await a1.patch(f"/deals/{did}", {"items": items})
    assert status == 200, deal
    assert deal["amount"] == "48001.00"
    assert [(i["name"], i["total"]) for i in deal["items"]] == [
        ("Диван", "45000.00"),
        ("Доставка", "3001.00"),
    ]
    status, err = await a1.patch(f"/deals/{did}", {"amount": 5})
    assert (status, err["field"]) == (422, "amount")  # the items make the amount
    status, deal = await a1.post(f"/deals/{did}/stage", {"stage": "invoice"})
    assert status == 200 and deal["probability"] == 80
    status, err = await a1.patch(f"/deals/{did}", {"items": []})
    assert (status, err["field"]) == (400, "items")  # "Счёт" keeps needing them

    # Losing needs a reason of this pipeline's catalogue.
    default_reason = (await a1.get("/pipelines"))[1]["items"][0]["loss_reasons"][0]["id"]
    status, err = await a1.post(f"/deals/{did}/lose", {"comment": "нет"})
    assert (status, err["field"]) == (422, "reason_id")
    status, err = await a1.post(f"/deals/{did}/lose", {"reason_id": default_reason})
    assert (status, err["field"]) == (422, "reason_id")
    reason = p["loss_reasons"][1]
    status, deal = await a1.post(
        f"/deals/{did}/lose", {"reason_id": reason["id"], "comment": "купил у соседей"}
    )
    assert status == 200, deal
    DealWithHistoryOut.model_validate(deal)
    assert (deal["stage"], deal["loss_reason"], deal["loss_reason_id"], deal["loss_comment"]) == (
        "lost",
        "Передумал",
        reason["id"],
        "купил у соседей",
    )
    assert deal["closed_at"] and deal["stage_kind"] == "lost"
    status, _ = await a1.post(f"/deals/{did}/stage", {"stage": "offer"})
    assert status == 409  # closed: reopen first

    status, deal = await a1.post(f"/deals/{did}/reopen")
    assert status == 200, deal
    assert (deal["stage"], deal["closed_at"], deal["loss_reason_id"]) == ("invoice", None, None)
    status, deal = await a1.post(f"/deals/{did}/win")
    assert status == 200 and deal["stage"] == "won"
    status, deal = await a1.post(f"/deals/{did}/reopen", {"stage": "offer"})
    assert status == 200 and deal["stage"] == "offer"
    assert [(h["from"], h["to"]) for h in deal["history"]] == [
        (None, "new"),
        ("new", "invoice"),
        ("invoice", "lost"),
        ("lost", "invoice"),
        ("invoice", "won"),
        ("won", "offer"),
    ]
    status, _ = await a1.post(f"/deals/{did}/reopen")
    assert status == 409  # not closed


async def test_default_pipeline_contract_needs_an_amount(api: Api) -> None:
    a1 = api.as_("a1")
    status, deal = await a1.post("/deals", {"client_id": await _client(a1), "title": "Окна"})
    assert status == 201 and deal["amount"] is None
    status, err = await a1.post(f"/deals/{deal['id']}/stage", {"stage": "contract"})
    assert (status, err["field"]) == (400, "amount")
    assert err["error"] == "amount is required to enter the stage Contract"
    assert err["error_ru"] == "Для этапа «Договор» нужно заполнить поле «сумма»"
    status, err = await a1.post(
        "/deals", {"client_id": await _client(a1), "title": "Окна", "stage": "contract"}
    )
    assert (status, err["field"]) == (400, "amount")
    status, _ = await a1.patch(f"/deals/{deal['id']}", {"amount": "1200"})
    status, deal = await a1.post(f"/deals/{deal['id']}/stage", {"stage": "contract"})
    assert status == 200 and deal["stage"] == "contract"


async def test_a_manager_never_sees_or_changes_another_managers_deals(api: Api) -> None:
    p = await _b2c(api)
    ids: dict[str, int] = {}
    for who in ("a1", "a2", "b1"):
        caller = api.as_(who)
        status, deal = await caller.post(
            "/deals",
            {
                "client_id": await _client(caller, f"Клиент {who}"),
                "title": f"Сделка {who}",
                "pipeline_id": p["id"],
                "amount": {"a1": 100, "a2": 2000, "b1": 30000}[who],
            },
        )
        assert status == 201, deal
        ids[who] = deal["id"]
    reason = p["loss_reasons"][0]["id"]
    a1 = api.as_("a1")
    for path, body in (
        ("/stage", {"stage": "offer"}),
        ("/win", {}),
        ("/lose", {"reason_id": reason}),
        ("/reopen", {}),
    ):
        status, _ = await a1.post(f"/deals/{ids['a2']}{path}", body)
        assert status == 404, path
    status, _ = await a1.patch(f"/deals/{ids['a2']}", {"title": "чужая"})
    assert status == 404
    for path in (f"/deals/{ids['a2']}", f"/deals/{ids['a2']}/timeline"):
        status, _ = await a1.get(path)
        assert status == 404, path
    status, deal = await api.as_("a2").get(f"/deals/{ids['a2']}")
    assert deal["title"] == "Сделка a2" and deal["stage"] == "new"

    async def board(who: str, **query: Any) -> set[str]:
        query.setdefault("pipeline_id", p["id"])
        status, out = await api.as_(who).get("/deals/board", **query)
        assert status == 200, out
        BoardOut.model_validate(out)
        return {d["title"] for col in out["columns"] for d in col["items"]}

    assert await board("a1") == {"Сделка a1"}
    assert await board("sup") == {"Сделка a1", "Сделка a2"}
    assert await board("admin") == {"Сделка a1", "Сделка a2", "Сделка b1"}
    assert await board("admin", amount_min="1000", amount_max="5000") == {"Сделка a2"}
    assert await board("admin", owner_id=api.users["b1"].id) == {"Сделка b1"}
    assert await board("admin", created_to="2000-01-01") == set()
    status, out = await api.as_("admin").get("/deals/board", pipeline_id=p["id"])
    new = out["columns"][0]
    assert (new["stage"], new["count"], new["amount"]) == ("new", 3, "32100.00")
    # The default pipeline's board holds none of them.
    assert await board("admin", pipeline_id=out["pipeline"]["id"] - 1) == set()
    status, page = await api.as_("a1").get("/deals", pipeline_id=p["id"])
    assert [d["title"] for d in page["items"]] == ["Сделка a1"]


async def test_funnel_per_pipeline_with_losses_by_reason(api: Api) -> None:
    p = await _b2c(api)
    a1 = api.as_("a1")
    cid = await _client(a1)
    made = []
    for i in range(4):
        status, deal = await a1.post(
            "/deals", {"client_id": cid, "title": f"D{i}", "pipeline_id": p["id"], "amount": 10}
        )
        made.append(deal["id"])
    await a1.post(f"/deals/{made[0]}/stage", {"stage": "offer"})
    await a1.post(
        f"/deals/{made[0]}/lose", {"reason_id": p["loss_reasons"][0]["id"], "comment": "нет"}
    )
    await a1.post(f"/deals/{made[1]}/lose", {"reason_id": p["loss_reasons"][1]["id"]})
    await a1.patch(f"/deals/{made[2]}", {"items": [{"name": "Стол", "price": 700}]})
    status, won = await a1.post(f"/deals/{made[2]}/win")
    assert status == 200, won
    # A deal in the default pipeline stays out of this funnel.
    await a1.post("/deals", {"client_id": cid, "title": "default"})

    status, f = await api.as_("admin").get("/analytics/funnel", pipeline_id=p["id"])
    assert status == 200, f
    assert (f["pipeline_id"], f["deals_created"], f["won"], f["lost"]) == (p["id"], 4, 1, 2)
    assert f["won_amount"] == "700.00" and f["lost_amount"] == "20.00"
    assert f["win_rate"] == round(1 / 3, 4)
    assert [s["stage"] for s in f["stages"]] == ["new", "offer", "invoice", "won"]
    reached = {s["stage"]: s["reached"] for s in f["stages"]}
    assert reached == {"new": 4, "offer": 2, "invoice": 1, "won": 1}
    by_stage = {s["stage"]: s["loss_reasons"] for s in f["stages"]}
    assert by_stage["offer"] == {"Нет в наличии": 1} and by_stage["new"] == {"Передумал": 1}
    assert [(r["reason_id"], r["lost"], r["by_stage"]) for r in f["loss_reasons"]] == [
        (p["loss_reasons"][0]["id"], 1, {"offer": 1}),
        (p["loss_reasons"][1]["id"], 1, {"new": 1}),
    ]
    status, f = await api.as_("admin").get("/analytics/funnel")
    assert f["deals_created"] == 1 and f["pipeline_id"] != p["id"]
    status, f = await api.as_("a2").get("/analytics/funnel", pipeline_id=p["id"])
    assert f["deals_created"] == 0  # a2 sees none of a1's deals
    status, _ = await api.as_("admin").get("/analytics/funnel", pipeline_id=99999)
    assert status == 404


async def test_convert_a_lead_into_a_deal_of_a_pipeline(api: Api) -> None:
    p = await _b2c(api)
    a1 = api.as_("a1")
    status, lead = await a1.post("/leads", {"name": "Ольга", "phones": ["+79161112233"]})
    assert status == 201, lead
    status, out = await a1.post(
        f"/leads/{lead['id']}/convert",
        {
            "deal_title": "Кухня",
            "pipeline_id": p["id"],
            "items": [{"name": "Кухня", "price": "120000", "quantity": 1}],
        },
    )
    assert status == 200, out
    deal = out["deal"]
    assert (deal["pipeline_id"], deal["stage"], deal["amount"]) == (p["id"], "new", "120000.00")
    assert deal["lead_id"] == lead["id"] and len(deal["items"]) == 1
