"""The OpenAPI document matches the registered routes; a client's timeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from crm_core.models import Deal, Interaction, Lead
from gateway.api.responses import ClientOut, ContactOut, InteractionOut, UserOut
from gateway.openapi import API_PREFIX, documented_routes
from tests.support.api import Api

EXPECTED = {
    ("GET", "/clients"),
    ("POST", "/clients"),
    ("GET", "/clients/{id}"),
    ("PATCH", "/clients/{id}"),
    ("GET", "/clients/{id}/timeline"),
    ("GET", "/leads/{id}/timeline"),
    ("GET", "/clients/{id}/contacts"),
    ("POST", "/clients/{id}/contacts"),
    ("GET", "/leads"),
    ("POST", "/leads"),
    ("GET", "/leads/{id}"),
    ("PATCH", "/leads/{id}"),
    ("POST", "/leads/{id}/convert"),
    ("POST", "/leads/{id}/reject"),
    ("GET", "/deals"),
    ("POST", "/deals"),
    ("GET", "/deals/{id}"),
    ("PATCH", "/deals/{id}"),
    ("POST", "/deals/{id}/stage"),
    ("POST", "/deals/{id}/win"),
    ("POST", "/deals/{id}/lose"),
    ("GET", "/stages"),
    ("GET", "/tasks"),
    ("POST", "/tasks"),
    ("GET", "/tasks/{id}"),
    ("PATCH", "/tasks/{id}"),
    ("POST", "/tasks/{id}/done"),
    ("POST", "/tasks/{id}/snooze"),
    ("GET", "/users"),
    ("POST", "/users/{id}/deactivate"),
    ("POST", "/users/{id}/activate"),
    ("POST", "/users/{id}/rotate-token"),
    ("POST", "/live/ticket"),
    ("GET", "/me"),
    ("POST", "/calls"),
    ("GET", "/calls/{outbox_id}"),
    ("GET", "/openapi.json"),
}


async def test_openapi_covers_every_route_and_nothing_else(api: Api) -> None:
    resp = await api.http.get("/api/v1/openapi.json")
    assert resp.status == 200
    doc = await resp.json()
    assert doc["openapi"].startswith("3.1")
    in_doc = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    registered = {(m, p) for m, p, _ in documented_routes(api.http.app)}
    assert in_doc == registered
    assert EXPECTED <= {(m, p[len(API_PREFIX) :]) for m, p in registered}
    for method, path, op in documented_routes(api.http.app):
        assert op is not None, f"{method} {path} has no OpenAPI metadata"
        entry = doc["paths"][path][method.lower()]
        assert entry["summary"] and entry["responses"]
        if method in ("POST", "PATCH"):
            content = entry["requestBody"]["content"]
            multipart = path.endswith(("/imports", "/imports/preview"))
            kind = "multipart/form-data" if multipart else "application/json"
            ref = content[kind]["schema"]["$ref"]
            assert ref.rsplit("/", 1)[1] in doc["components"]["schemas"]
    create = doc["components"]["schemas"]["ClientCreate"]
    assert create["required"] == ["name"]
    assert create["additionalProperties"] is False
    params = {p["name"] for p in doc["paths"]["/api/v1/leads"]["get"]["parameters"]}
    assert {
        "phone",
        "email",
        "owner_id",
        "status",
        "created_from",
        "created_to",
        "q",
        "limit",
        "offset",
    } <= params
    assert doc["paths"]["/api/v1/openapi.json"]["get"]["security"] == []


async def test_timeline_newest_first_with_leads_and_deals(api: Api) -> None:
    a1 = api.as_("a1")
    _, client = await a1.post("/clients", {"name": "Волкова", "kind": "person"})
    status, person = await a1.post(
        f"/clients/{client['id']}/contacts",
        {"name": "Анна", "position": "бухгалтер", "phones": ["8 495 123 45 67"]},
    )
    assert status == 201
    ContactOut.model_validate(person)
    assert person["phones"] == ["+74951234567"]
    status, contacts = await a1.get(f"/clients/{client['id']}/contacts")
    assert [c["name"] for c in contacts["items"]] == ["Анна"]
    # Found by the contact person's phone, too.
    assert (await a1.get("/clients", phone="+74951234567"))[1]["total"] == 1
    t0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    async with api.db.transaction() as s:
        lead = Lead(source="webform", client_id=client["id"], owner_id=api.users["a1"].id)
        deal = Deal(client_id=client["id"], title="D", owner_id=api.users["a1"].id)
        other = Lead(source="webform", owner_id=api.users["a1"].id)
        s.add_all([lead, deal, other])
        await s.flush()
        s.add_all(
            [
                Interaction(
                    client_id=client["id"],
                    channel="call",
                    direction="in",
                    kind="call_ended",
                    subject="first",
                    occurred_at=t0,
                ),
                Interaction(
                    lead_id=lead.id,
                    channel="webform",
                    direction="in",
                    kind="form_submitted",
                    subject="via lead",
                    occurred_at=t0 + timedelta(hours=2),
                ),
                Interaction(
                    deal_id=deal.id,
                    channel="email",
                    direction="out",
                    kind="email_sent",
                    subject="via deal",
                    occurred_at=t0 + timedelta(hours=1),
                ),
                Interaction(
                    lead_id=other.id,
                    channel="email",
                    direction="in",
                    kind="email_received",
                    subject="someone else",
                    occurred_at=t0 + timedelta(hours=3),
                ),
            ]
        )
    status, page = await a1.get(f"/clients/{client['id']}/timeline")
    assert status == 200
    assert [i["subject"] for i in page["items"]] == ["via lead", "via deal", "first"]
    assert page["total"] == 3
    for item in page["items"]:
        InteractionOut.model_validate(item)
    status, page = await a1.get(f"/clients/{client['id']}/timeline", limit=1, offset=1)
    assert [i["subject"] for i in page["items"]] == ["via deal"]
    status, page = await a1.get(f"/clients/{client['id']}/timeline", channel="call")
    assert [i["subject"] for i in page["items"]] == ["first"]
    ClientOut.model_validate((await a1.get(f"/clients/{client['id']}"))[1])
    UserOut.model_validate((await a1.get("/me"))[1])
    status, _ = await api.as_("b1").get(f"/clients/{client['id']}/timeline")
    assert status == 404

    # A lead's timeline: a lead without a client shows its own conversation only; a
    # lead of a client shows the client's history too.  Others' leads are 404.
    status, page = await a1.get(f"/leads/{other.id}/timeline")
    assert status == 200 and [i["subject"] for i in page["items"]] == ["someone else"]
    status, page = await a1.get(f"/leads/{lead.id}/timeline")
    assert [i["subject"] for i in page["items"]] == ["via lead", "via deal", "first"]
    status, _ = await api.as_("b1").get(f"/leads/{other.id}/timeline")
    assert status == 404
    status, _ = await a1.get("/leads/999999/timeline")
    assert status == 404
