"""The first answer to a lead closes its "first reply" SLA task (SQLite and PostgreSQL):
a reply from the CRM (outbox), one sent from the messenger's own interface, an answered
call.  Inbound messages and missed calls leave it open."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from crm_core.db import Database
from crm_core.events import Channel, Direction, EventKind, InboundEvent
from crm_core.hub import Hub
from crm_core.models import Task
from crm_core.outbox import OutboxWorker, enqueue
from crm_core.pipeline.rules_assigner import RulesAssigner
from crm_core.ports import OutboundCommand, OutboundResult, OutboundStatus
from routing_rules import parse_rules
from tests.support.reminders import add_users

RULES = """
rules:
  - id: everyone
    assign: {users: [USER], strategy: round_robin}
    sla_minutes: 15
"""


def _event(ext: str, kind: EventKind, *, out: bool = False, **meta: Any) -> InboundEvent:
    return InboundEvent(
        channel=Channel.CALL if kind == EventKind.CALL_ENDED else Channel.TELEGRAM,
        kind=kind,
        external_id=ext,
        occurred_at=datetime.now(UTC),
        direction=Direction.OUTBOUND if out else Direction.INBOUND,
        identities=("phone:+79165551234",) if kind == EventKind.CALL_ENDED else ("telegram:77",),
        display_name="Ирина",
        text="Здравствуйте",
        meta={"bot": "shop", "chat_id": 77, "message_key": f"77:{ext}", **meta},
        source="shop",
    )


async def _hub(db: Database) -> Hub:
    (uid,) = await add_users(db, {"email": "a@ex.ru"})
    rules = parse_rules(RULES.replace("USER", str(uid)), "test.yaml")
    hub = Hub(db, assigner=RulesAssigner(lambda: rules, postgres=db.is_postgres))
    await hub.start()
    return hub


async def _tasks(db: Database) -> dict[str, list[str]]:
    async with db.sessions() as s:
        rows = list(await s.scalars(select(Task).order_by(Task.id)))
    out: dict[str, list[str]] = {}
    for t in rows:
        out.setdefault(t.kind, []).append(t.status)
    return out


async def _ingest(hub: Hub, *events: InboundEvent) -> int | None:
    lead_id = None
    for e in events:
        r = await hub(e, wait=True)
        assert r.status == "processed", r
        lead_id = lead_id or r.lead_id
    return lead_id


async def test_a_reply_from_the_messenger_closes_the_first_reply_task(db: Database) -> None:
    hub = await _hub(db)
    try:
        await _ingest(hub, _event("m1", EventKind.MESSAGE_RECEIVED))
        assert await _tasks(db) == {"first_reply": ["open"]}
        await _ingest(hub, _event("m2", EventKind.MESSAGE_RECEIVED))
        assert await _tasks(db) == {"first_reply": ["open"]}, "the client writing again"
        # The business owner answers in Telegram itself (a business message: outbound).
        await _ingest(hub, _event("m3", EventKind.MESSAGE_SENT, out=True))
        assert await _tasks(db) == {"first_reply": ["done"]}
        async with db.sessions() as s:
            task = await s.scalar(select(Task))
            assert task is not None and task.closed_at is not None
            assert "first reply" in task.note
    finally:
        await hub.stop()


async def test_missed_call_leaves_it_open_answered_call_closes_it(db: Database) -> None:
    hub = await _hub(db)
    try:
        missed = _event("c1", EventKind.CALL_ENDED, outcome="missed", extensions_rung=["101"])
        await _ingest(hub, missed)
        # issue 10 item 15: one task for a missed call from a new number, not two; the
        # rule's SLA task becomes the "call back" and keeps its SLA
        assert await _tasks(db) == {"call_back": ["open"]}
        async with db.sessions() as s:
            (task,) = list(await s.scalars(select(Task)))
        assert task.sla_due_at is not None and task.title.startswith("Перезвонить")
        await _ingest(hub, _event("c2", EventKind.CALL_ENDED, outcome="answered"))
        assert await _tasks(db) == {"call_back": ["done"]}
    finally:
        await hub.stop()


class _Sent:
    async def execute(self, command: OutboundCommand) -> OutboundResult:
        return OutboundResult(status=OutboundStatus.SENT, external_id="501")


async def test_a_reply_sent_from_the_crm_closes_it(db: Database) -> None:
    hub = await _hub(db)
    try:
        lead_id = await _ingest(hub, _event("m1", EventKind.MESSAGE_RECEIVED))
    finally:
        await hub.stop()
    async with db.transaction() as s:
        await enqueue(
            s,
            channel="telegram",
            kind="send_message",
            payload={"bot": "shop", "chat_id": 77, "text": "Добрый день!"},
            idempotency_key="reply-1",
            lead_id=lead_id,
        )
    worker = OutboxWorker(db, {"telegram": _Sent()})
    assert await worker.run_once() == 1
    assert await _tasks(db) == {"first_reply": ["done"]}
