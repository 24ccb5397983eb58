"""Issue 10 item 15, through the whole app and the recorded AMI calls: a new caller's lead
belongs to the operator who answered (routing strategy ``answered_by``, the default for
answered calls), the answered call records that user, and a missed call from a new number
opens exactly one task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from crm_core.models import AuditEntry, Interaction, Lead, Task
from gateway.app import create_app
from tests.support.ami_server import AMIServer, load_transcript
from tests.support.ami_truth import AMI_FIXTURES
from tests.support.app import add_user, make_settings
from tests.support.telephony import ami_settings, drained, rows, until

A = AMI_FIXTURES / "a_inbound_answered.ami"  # +74951234567 -> 101 answers
B = AMI_FIXTURES / "b_inbound_missed_noanswer.ami"  # +79165551234 -> 103 never answers

# The rules of the issue: new leads go round robin to the managers with a 15-minute SLA
# task ("contact the new lead").
RULES = """
version: 1
rules:
  - id: calls
    when: {channel: call}
    assign: {role: manager, strategy: round_robin}
    sla_minutes: 15
    task: {kind: first_reply, title: "Связаться с новым лидом"}
"""


def variant(
    script: list[tuple[float, dict[str, str]]], k: int
) -> list[tuple[float, dict[str, str]]]:
    """The recorded call ``A`` as the k-th of a series: its own ids and caller number."""
    caller = f"+7495123{k:04d}"

    def fix(v: str) -> str:
        return v.replace("1795839552.", f"{1795839552 + k}.").replace("+74951234567", caller)

    return [(t, {key: fix(val) for key, val in msg.items()}) for t, msg in script]


async def _app(
    aiohttp_client: Any, db_url: str, tmp_path: Path, port: int, rules: str | None = RULES
) -> TestClient:
    extra: dict[str, Any] = {}
    if rules is not None:
        path = tmp_path / "routing.yaml"
        path.write_text(rules, encoding="utf-8")
        extra["routing_rules_path"] = str(path)
    settings = make_settings(db_url, tmp_path, asterisk=[ami_settings(port)], **extra)
    client: TestClient = await aiohttp_client(create_app(settings))

    async def up() -> bool:
        body = await (await client.get("/readyz")).json()
        return any(c["state"] == "connected" for c in body["connectors"])

    await until(up, what="AMI link connected")
    return client


async def _ended(client: TestClient, n: int) -> list[Interaction]:
    async def done() -> bool:
        return len(await rows(client, Interaction, Interaction.kind == "call_ended")) >= n

    await until(done, limit_s=40, what=f"{n} call_ended interactions")
    await drained(client)
    return await rows(client, Interaction, Interaction.kind == "call_ended")


async def test_calls_answered_by_101_give_101_every_new_lead_and_its_tasks(
    db_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    anna, anna_token = await add_user(db_url, "anna@example.ru", "manager", extension="101")
    boris, _ = await add_user(db_url, "boris@example.ru", "manager", extension="102")
    calls = 6
    script = load_transcript(A)
    async with AMIServer(speed=0.0) as srv:
        client = await _app(aiohttp_client, db_url, tmp_path, srv.port)
        for k in range(calls):
            srv.push(variant(script, k))
        ended = await _ended(client, calls)

    leads = await rows(client, Lead)
    assert len(leads) == calls and len(ended) == calls
    # the rules put every other lead on Boris while the call rang; the answer moved them
    assert {lead.owner_id for lead in leads} == {anna}
    moved = [lead for lead in leads if lead.rule_id == "answered_calls"]
    assert len(moved) == calls // 2
    for lead in moved:
        assert lead.assign_reason is not None
        assert "answered call" in lead.assign_reason and "звонок принят" in lead.assign_reason
        assert "Anna" in lead.assign_reason or f"#{anna}" in lead.assign_reason
    tasks = await rows(client, Task)
    assert len(tasks) == calls  # one "contact the new lead" per lead, none for answered calls
    assert {t.assignee_id for t in tasks} == {anna}
    assert boris not in {t.assignee_id for t in tasks}
    # the answered inbound call records the user who answered
    assert {i.user_id for i in ended} == {anna}
    assert {i.outcome for i in ended} == {"answered"}
    audit = await rows(client, AuditEntry, AuditEntry.action == "reassign")
    assert len(audit) == calls // 2 and {a.details["to"] for a in audit} == {anna}
    assert {a.details["from"] for a in audit} == {boris}

    # Anna sees her leads and the call's user through the API
    r = await client.get(
        f"/api/v1/leads/{moved[0].id}/timeline", headers={"Authorization": f"Bearer {anna_token}"}
    )
    assert r.status == 200, await r.text()
    (entry,) = [e for e in (await r.json())["items"] if e["kind"] == "call_ended"]
    assert entry["user_id"] == anna and entry["recording_href"] is None


async def test_a_lead_a_person_already_took_stays_with_them(
    db_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    """The lead is reassigned only when nobody touched it: here the supervisor moved it to
    Boris while the call rang, so Anna's answer leaves it with Boris."""
    anna, _ = await add_user(db_url, "anna@example.ru", "manager", extension="101")
    boris, _ = await add_user(db_url, "boris@example.ru", "manager", extension="102")
    _, admin = await add_user(db_url, "boss@example.ru", "admin")
    script = load_transcript(A)
    dial_end = next(i for i, (_, m) in enumerate(script) if m.get("Event") == "DialEnd")
    async with AMIServer(speed=0.0) as srv:
        client = await _app(aiohttp_client, db_url, tmp_path, srv.port, rules=None)
        srv.push(script[:dial_end])

        async def lead_exists() -> bool:
            return len(await rows(client, Lead)) == 1

        await until(lead_exists, what="the ringing call's lead")
        await drained(client)
        (lead,) = await rows(client, Lead)
        r = await client.patch(
            f"/api/v1/leads/{lead.id}",
            json={"owner_id": boris},
            headers={"Authorization": f"Bearer {admin}"},
        )
        assert r.status == 200, await r.text()
        srv.push(script[dial_end:])
        (ended,) = await _ended(client, 1)
    (lead,) = await rows(client, Lead)
    assert lead.owner_id == boris and lead.rule_id != "answered_calls"
    assert ended.user_id == anna  # the call itself still records who answered


async def test_missed_call_from_a_new_number_opens_one_task(
    db_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    for ext in ("101", "102", "103"):
        await add_user(db_url, f"op{ext}@example.ru", "manager", extension=ext)
    async with AMIServer(speed=0.0) as srv:
        client = await _app(aiohttp_client, db_url, tmp_path, srv.port)
        srv.push(load_transcript(B))
        (missed,) = await _ended(client, 1)
    (lead,) = await rows(client, Lead)
    (task,) = await rows(client, Task)
    assert missed.outcome == "missed" and missed.user_id is None
    assert lead.rule_id == "calls"  # missed calls keep what the rules decided
    assert task.kind == "call_back" and task.title == "Перезвонить +79165551234"
    assert task.assignee_id == lead.owner_id and task.lead_id == lead.id
    assert task.interaction_id == missed.id and task.status == "open"
    assert task.sla_due_at is not None  # the rule's SLA still runs on it
