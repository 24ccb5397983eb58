"""Issue 3 end to end, click-to-call: ``POST /api/v1/calls`` -> outbox -> AMI ``Originate``
(the AMI test server answers it by replaying a recorded click-to-call) -> the call
tracking -> the deal's timeline; customer busy; PBX down; access rules."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from crm_core.models import Interaction, Lead, OutboxCommand
from gateway.app import create_app
from tests.support.ami_server import AMIServer, load_transcript
from tests.support.ami_truth import AMI_FIXTURES
from tests.support.app import add_user, make_settings
from tests.support.telephony import ami_settings, drained, listen, rows, until

D = AMI_FIXTURES / "d_click2call_answered.ami"
E = AMI_FIXTURES / "e_click2call_customer_busy.ami"


async def _setup(
    aiohttp_client: Any, db_url: str, tmp_path: Path, port: int
) -> tuple[TestClient, dict[str, Any]]:
    anna_id, anna = await add_user(
        db_url, "anna@example.ru", "manager", name="Анна", extension="101"
    )
    _, boris = await add_user(db_url, "boris@example.ru", "manager", extension="102")
    _, noext = await add_user(db_url, "new@example.ru", "manager")
    settings = make_settings(db_url, tmp_path, asterisk=[ami_settings(port)])
    client: TestClient = await aiohttp_client(create_app(settings))
    hdr = {"Authorization": f"Bearer {anna}"}
    r = await client.post(
        "/api/v1/clients", json={"name": "Иван Петров", "phones": ["8 916 555-12-34"]}, headers=hdr
    )
    assert r.status == 201, await r.text()
    client_id = (await r.json())["id"]
    r = await client.post(
        "/api/v1/deals", json={"client_id": client_id, "title": "Поставка"}, headers=hdr
    )
    assert r.status == 201, await r.text()
    ids = {"anna_id": anna_id, "client_id": client_id, "deal_id": (await r.json())["id"]}
    return client, {**ids, "anna": anna, "boris": boris, "noext": noext}


def _auth(token: str, key: str | None = None) -> dict[str, str]:
    h = {"Authorization": f"Bearer {token}"}
    if key:
        h["Idempotency-Key"] = key
    return h


async def _call_ended(client: TestClient, where: Any) -> Interaction:
    async def found() -> bool:
        return bool(await rows(client, Interaction, Interaction.kind == "call_ended", where))

    await until(found, what="call_ended on the timeline")
    await drained(client)
    (inter,) = await rows(client, Interaction, Interaction.kind == "call_ended", where)
    return inter


async def test_click_to_call_answered_then_busy(
    db_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    async with AMIServer(speed=0.01) as srv:
        client, u = await _setup(aiohttp_client, db_url, tmp_path, srv.port)
        deal_id = u["deal_id"]
        # Access: another manager's client is "not found"; no extension is a clear 422.
        r = await client.post("/api/v1/calls", json={"deal_id": deal_id}, headers=_auth(u["boris"]))
        assert r.status == 404 and (await r.json())["field"] == "deal_id"
        r = await client.post(
            "/api/v1/calls", json={"number": "+79031112233"}, headers=_auth(u["noext"])
        )
        assert r.status == 422 and (await r.json())["field"] == "extension"
        r = await client.post("/api/v1/calls", json={}, headers=_auth(u["anna"]))
        assert r.status == 422
        r = await client.post(
            "/api/v1/calls", json={"number": "+79165551234"}, headers=_auth(u["boris"])
        )
        assert r.status == 404  # a bare number that is someone else's client

        srv.originate_scripts.append(load_transcript(D))
        r = await client.post(
            "/api/v1/calls", json={"deal_id": deal_id}, headers=_auth(u["anna"], "c2c-1")
        )
        assert r.status == 202, await r.text()
        first = await r.json()
        assert first["call_id"] == "c2c-1" and first["status"] == "pending"
        r = await client.post(
            "/api/v1/calls", json={"deal_id": deal_id}, headers=_auth(u["anna"], "c2c-1")
        )
        assert r.status == 202 and (await r.json())["outbox_id"] == first["outbox_id"]
        inter = await _call_ended(client, Interaction.deal_id == deal_id)

        orig = [a for a in srv.actions if a.get("Action") == "Originate"]
        assert len(orig) == 1
        assert orig[0]["Variable"] == "CRMHUB_CALL_ID=c2c-1" and orig[0]["ActionID"] == "c2c-1"
        assert orig[0]["Channel"] == "PJSIP/101" and orig[0]["Exten"] == "89165551234"
        assert inter.direction == "out" and inter.outcome == "answered"
        assert inter.client_id == u["client_id"] and inter.user_id == u["anna_id"]
        assert inter.meta["crm_call_id"] == "c2c-1" and inter.duration_s == 5
        r = await client.get(f"/api/v1/calls/{first['outbox_id']}", headers=_auth(u["anna"]))
        status = await r.json()
        assert r.status == 200 and status["status"] == "sent" and status["attempts"] == 1
        assert status["result"]["interaction_id"] == inter.id
        assert status["result"]["outcome"] == "answered"
        r = await client.get(f"/api/v1/calls/{first['outbox_id']}", headers=_auth(u["boris"]))
        assert r.status == 404

        # An unknown number, the customer is busy: outcome busy, and no lead.
        srv.originate_scripts.append(load_transcript(E))
        r = await client.post(
            "/api/v1/calls", json={"number": "8 (903) 111-22-33"}, headers=_auth(u["anna"])
        )
        assert r.status == 202
        busy_id = (await r.json())["outbox_id"]
        busy = await _call_ended(client, Interaction.outcome == "busy")
    assert busy.direction == "out" and busy.client_id is None and busy.lead_id is None
    assert busy.meta["caller"] == "+79031112233" and busy.user_id == u["anna_id"]
    assert await rows(client, Lead) == []
    r = await client.get(f"/api/v1/calls/{busy_id}", headers=_auth(u["anna"]))
    assert (await r.json())["result"]["outcome"] == "busy"
    calls = await rows(client, Interaction, Interaction.channel == "call")
    assert sorted(i.outcome for i in calls) == ["answered", "busy"]


async def test_pbx_down_fails_fast_on_the_timeline(
    db_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here
    client, u = await _setup(aiohttp_client, db_url, tmp_path, port)
    async with listen(client, u["anna"]) as live:
        r = await client.post(
            "/api/v1/calls", json={"deal_id": u["deal_id"]}, headers=_auth(u["anna"])
        )
        assert r.status == 202
        outbox_id = (await r.json())["outbox_id"]

        async def failed() -> bool:
            return any(p["status"] == "failed" for p in live.of("outbox_status"))

        await until(failed, what="outbox_status failed")
    (row,) = await rows(client, OutboxCommand)
    assert row.status == "failed" and row.attempts == 2
    assert row.last_error is not None and row.last_error.startswith("PBX down")
    (inter,) = await rows(client, Interaction, Interaction.deal_id == u["deal_id"])
    assert inter.kind == "call_ended" and inter.outcome == "failed" and inter.direction == "out"
    assert inter.outbox_id == outbox_id and inter.client_id == u["client_id"]
    (pushed,) = [p for p in live.of("outbox_status") if p["status"] == "failed"]
    assert pushed["interaction_id"] == inter.id and pushed["deal_id"] == u["deal_id"]
    assert "PBX down" in pushed["error"]
    r = await client.get(f"/api/v1/calls/{outbox_id}", headers=_auth(u["anna"]))
    body = await r.json()
    assert body["status"] == "failed" and body["result"]["outcome"] == "failed"
