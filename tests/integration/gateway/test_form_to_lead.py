"""The acceptance path of the foundation through the whole app: a website form posts a
lead, the API finds it by phone, the timeline shows it; health, readiness, metrics."""

from __future__ import annotations

from pathlib import Path

from aiohttp.test_utils import TestClient

from gateway.app import create_app
from tests.support.app import add_form, add_user, make_settings


async def test_form_lead_is_found_by_phone_and_on_the_timeline(
    db_url: str, tmp_path: Path, aiohttp_client: object
) -> None:
    _, admin = await add_user(db_url, "boss@example.ru", "admin")
    manager_id, manager = await add_user(db_url, "petrov@example.ru", "manager")
    key, secret = await add_form(db_url)
    app = create_app(make_settings(db_url, tmp_path))
    client: TestClient = await aiohttp_client(app)  # type: ignore[operator]

    form = {
        "name": "Анна",
        "phone": "8 (916) 555-12-34",
        "email": "Anna@Example.ru",
        "comment": "Хочу демо",
        "utm_source": "yandex",
    }
    r = await client.post(f"/hooks/forms/{key}?secret={secret}", data=form)
    assert r.status == 201, await r.text()
    again = await client.post(f"/hooks/forms/{key}?secret={secret}", data=form)
    assert again.status in (200, 201)

    headers = {"Authorization": f"Bearer {admin}"}
    r = await client.get("/api/v1/leads", params={"phone": "+79165551234"}, headers=headers)
    body = await r.json()
    assert r.status == 200 and body["total"] == 1
    lead = body["items"][0]
    assert lead["status"] == "new" and lead["source"] == "webform"
    assert lead["owner_id"] == manager_id
    assert lead["phones"] == ["+79165551234"] and lead["emails"] == ["anna@example.ru"]

    # The manager sees it too; a wrong secret changes nothing.
    r = await client.get("/api/v1/leads", headers={"Authorization": f"Bearer {manager}"})
    assert (await r.json())["total"] == 1
    r = await client.post(
        f"/hooks/forms/{key}?secret=wrong", data={**form, "phone": "+79030000000"}
    )
    assert r.status == 403
    r = await client.get("/api/v1/leads", headers=headers)
    assert (await r.json())["total"] == 1

    # Convert it: the client's timeline holds the form submission.
    r = await client.post(
        f"/api/v1/leads/{lead['id']}/convert",
        json={"kind": "person", "name": "Анна", "deal_title": "Демо"},
        headers=headers,
    )
    assert r.status in (200, 201), await r.text()
    client_id = (await r.json())["client"]["id"]
    r = await client.get(f"/api/v1/clients/{client_id}/timeline", headers=headers)
    items = (await r.json())["items"]
    assert [i["kind"] for i in items] == ["form_submitted"]

    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200 and (await ready.json())["database"] == "ok"
    metrics = await (await client.get("/metrics")).text()
    assert 'crmhub_events_received_total{channel="webform"} 1.0' in metrics
