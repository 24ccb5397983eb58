"""The ingest pipeline on SQLite and PostgreSQL: exactly once, races, failures, sticky owners."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime

from sqlalchemy import func, select

from crm_core.db import Database
from crm_core.events import Channel, Classification, EventKind, InboundEvent
from crm_core.hub import Hub
from crm_core.models import Client, ContactPoint, InboxEvent, Interaction, Lead, Task, User


def form_event(ext: str, phone: str = "+79165551234", **kw: object) -> InboundEvent:
    base: dict = dict(
        channel=Channel.WEBFORM,
        kind=EventKind.FORM_SUBMITTED,
        external_id=ext,
        occurred_at=datetime.now(UTC),
        identities=(f"phone:{phone}",),
        display_name="Анна",
        text="Хочу демо",
        meta={"utm": {"utm_source": "yandex"}},
        source="site",
    )
    base.update(kw)
    return InboundEvent(**base)


async def add_users(db: Database, n: int = 3) -> list[int]:
    ids = []
    async with db.transaction() as s:
        for i in range(n):
            u = User(
                email=f"m{i}@example.ru",
                name=f"Manager {i}",
                role="manager",
                token_hash=secrets.token_hex(32),
            )
            s.add(u)
            await s.flush()
            ids.append(u.id)
    return ids


async def count(db: Database, model: type, *where: object) -> int:
    async with db.sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def test_form_event_creates_an_assigned_lead(db: Database) -> None:
    users = await add_users(db)
    hub = Hub(db)
    await hub.start()
    try:
        receipt = await hub(form_event("t-1"), wait=True)
    finally:
        await hub.stop()
    assert receipt.status == "processed" and receipt.lead_id is not None
    async with db.sessions() as s:
        lead = await s.get(Lead, receipt.lead_id)
        assert lead is not None
        assert lead.owner_id == users[0]
        assert lead.utm == {"utm_source": "yandex"}
        assert lead.rule_id == "default"
        cp = await s.scalar(select(ContactPoint).where(ContactPoint.value == "+79165551234"))
        assert cp is not None and cp.lead_id == lead.id
    assert await count(db, Interaction, Interaction.lead_id == receipt.lead_id) == 1


async def test_fifty_concurrent_identical_submissions_give_one_lead(db: Database) -> None:
    await add_users(db)
    hub = Hub(db)
    await hub.start()
    try:
        receipts = await asyncio.gather(*(hub(form_event("same"), wait=True) for _ in range(50)))
    finally:
        await hub.stop()
    assert len({r.event_id for r in receipts}) == 1
    assert sum(not r.duplicate for r in receipts) == 1
    assert await count(db, Lead) == 1
    assert await count(db, Interaction) == 1
    assert await count(db, InboxEvent) == 1


async def test_two_events_from_one_new_phone_at_once_give_one_lead(db: Database) -> None:
    await add_users(db)
    hub = Hub(db)
    await hub.start()
    try:
        a, b = await asyncio.gather(
            hub(form_event("e-a"), wait=True), hub(form_event("e-b"), wait=True)
        )
    finally:
        await hub.stop()
    assert a.lead_id == b.lead_id and a.lead_id is not None
    assert await count(db, Lead) == 1
    assert await count(db, Interaction, Interaction.lead_id == a.lead_id) == 2


async def test_concurrent_processors_settle_the_race_by_constraint(db: Database) -> None:
    """Two hub processes (two processors) handle two events of one new phone at once."""
    await add_users(db)
    hubs = [Hub(db), Hub(db)]
    for h in hubs:
        await h.writer.stop()  # write directly, process in parallel below
    ra = await hubs[0].writer.write_batch([form_event("p-a", phone="+79031112233")])
    rb = await hubs[1].writer.write_batch([form_event("p-b", phone="+79031112233")])
    await asyncio.gather(
        hubs[0].processor.process_ids([ra[0].event_id], fresh=True),
        hubs[1].processor.process_ids([rb[0].event_id], fresh=True),
    )
    assert await count(db, Lead) == 1
    assert await count(db, Interaction) == 2
    assert await count(db, InboxEvent, InboxEvent.status == "processed") == 2


async def test_known_client_keeps_its_owner(db: Database) -> None:
    users = await add_users(db)
    async with db.transaction() as s:
        c = Client(kind="person", name="Иван", owner_id=users[2])
        s.add(c)
        await s.flush()
        s.add(ContactPoint(kind="email", value="ivan@example.ru", client_id=c.id))
    hub = Hub(db)
    await hub.start()
    try:
        r = await hub(
            form_event("k-1", identities=("email:ivan@example.ru", "phone:+79990001122")), wait=True
        )
    finally:
        await hub.stop()
    async with db.sessions() as s:
        lead = await s.get(Lead, r.lead_id)
        assert lead is not None and lead.owner_id == users[2] and lead.client_id == c.id
        assert lead.rule_id == "sticky_owner"
        cp = await s.scalar(select(ContactPoint).where(ContactPoint.value == "+79990001122"))
        assert cp is not None and cp.client_id == c.id


async def test_failure_is_kept_as_failed_and_retried(db: Database) -> None:
    await add_users(db)
    hub = Hub(db)
    bad = InboundEvent(
        channel=Channel.TELEGRAM,
        kind=EventKind.MESSAGE_EDITED,
        external_id="bot:1:2:99",
        occurred_at=datetime.now(UTC),
        identities=("telegram:1",),
        meta={"message_key": "1:2"},
        source="bot",
    )
    await hub.start()
    try:
        r = await hub(bad, wait=True)
        assert r.status == "failed" and "not on any timeline" in (r.error or "")
        # The original message arrives; the retry of the edit then succeeds.
        orig = InboundEvent(
            channel=Channel.TELEGRAM,
            kind=EventKind.MESSAGE_RECEIVED,
            external_id="bot:1",
            occurred_at=datetime.now(UTC),
            identities=("telegram:1",),
            text="old",
            meta={"message_key": "1:2", "chat_id": 1},
            source="bot",
        )
        await hub(orig, wait=True)
        again = await hub.processor.replay(r.event_id)
    finally:
        await hub.stop()
    assert again is not None and again.status == "processed"
    async with db.sessions() as s:
        inter = await s.scalar(select(Interaction).where(Interaction.kind == "message_received"))
        assert (inter is not None and inter.body is None) or inter.body == bad.text
        assert inter is not None and inter.meta["edits"][0]["previous"] == "old"


async def test_auto_reply_creates_no_lead_and_missed_call_opens_a_task(db: Database) -> None:
    await add_users(db)
    hub = Hub(db)
    await hub.start()
    try:
        await hub(
            InboundEvent(
                channel=Channel.EMAIL,
                kind=EventKind.EMAIL_RECEIVED,
                external_id="ooo@x",
                occurred_at=datetime.now(UTC),
                identities=("email:ooo@example.com",),
                classification=Classification.AUTO_REPLY,
            ),
            wait=True,
        )
        missed = await hub(
            InboundEvent(
                channel=Channel.CALL,
                kind=EventKind.CALL_ENDED,
                external_id="pbx:1700000000.1",
                occurred_at=datetime.now(UTC),
                identities=("phone:+79165550000",),
                meta={"outcome": "missed", "direction": "in", "ring_seconds": 10},
            ),
            wait=True,
        )
    finally:
        await hub.stop()
    assert await count(db, Lead, Lead.source == "email") == 0
    assert missed.lead_id is not None
    async with db.sessions() as s:
        task = await s.scalar(select(Task).where(Task.kind == "call_back"))
        assert task is not None and task.lead_id == missed.lead_id and task.status == "open"
        assert task.due_at is not None and task.assignee_id is not None


async def test_one_failing_event_in_a_batch_does_not_hold_back_the_others(db: Database) -> None:
    await add_users(db)
    hub = Hub(db)
    await hub.writer.stop()
    bad = InboundEvent(
        channel=Channel.TELEGRAM,
        kind=EventKind.MESSAGE_EDITED,
        external_id="bot:9:9:1",
        occurred_at=datetime.now(UTC),
        identities=("telegram:9",),
        meta={"message_key": "9:9"},
        source="bot",
    )
    written = await hub.writer.write_batch(
        [form_event("b-1", phone="+79161110001"), bad, form_event("b-2", phone="+79161110002")]
    )
    await hub.processor.process_ids([w.event_id for w in written], fresh=True)
    async with db.sessions() as s:
        rows = {r.external_id: r for r in await s.scalars(select(InboxEvent))}
    assert rows["b-1"].status == "processed" and rows["b-2"].status == "processed"
    assert rows["bot:9:9:1"].status == "failed" and rows["bot:9:9:1"].attempts == 1
    assert await count(db, Lead) == 2


async def test_one_form_submission_costs_one_transaction(db: Database) -> None:
    """A lone submission that waits for its lead is persisted and processed in one
    transaction (the inbox row is written, then marked processed, before the one commit);
    no savepoint; the routing pointers read once are not read again; the users are
    cached (their version and the owners' loads are one read of ``routing_counters``)."""
    from sqlalchemy import event as sa_event

    await add_users(db)
    hub = Hub(db, poll_interval=600)  # no idle poll for due rows in between
    await hub.start()
    try:
        await hub(form_event("warm-up"), wait=True)  # first lead: pointers created
        seen: list[str] = []

        def on_execute(*args: object) -> None:
            seen.append(str(args[2]).split()[0].upper())

        def on_commit(_conn: object) -> None:
            seen.append("COMMIT")

        engine = db.engine.sync_engine
        sa_event.listen(engine, "before_cursor_execute", on_execute)
        sa_event.listen(engine, "commit", on_commit)
        try:
            receipt = await hub(form_event("t-2", phone="+79165550000"), wait=True)
        finally:
            sa_event.remove(engine, "before_cursor_execute", on_execute)
            sa_event.remove(engine, "commit", on_commit)
    finally:
        await hub.stop()
    assert receipt.status == "processed" and receipt.lead_id is not None
    assert seen.count("COMMIT") == 1, seen  # was 2 (inbox, then processing)
    assert "SAVEPOINT" not in seen, seen
    statements = [x for x in seen if x not in ("BEGIN", "COMMIT")]
    # was 17 (claim UPDATE, SAVEPOINT, RELEASE, pointer), then 13 in two transactions
    assert len(statements) <= 9, " | ".join(seen)


async def test_a_lone_event_that_fails_is_still_kept(db: Database) -> None:
    """The one-transaction path rolls back with the event; the event then takes the
    usual path: persisted, processed carefully, recorded as failed for a retry."""
    await add_users(db)
    hub = Hub(db, poll_interval=600)
    await hub.start()
    try:
        bad = InboundEvent(
            channel=Channel.TELEGRAM,
            kind=EventKind.MESSAGE_EDITED,
            external_id="bot:7:7:1",
            occurred_at=datetime.now(UTC),
            identities=("telegram:7",),
            meta={"message_key": "7:7"},
            source="bot",
        )
        receipt = await hub(bad, wait=True)
        again = await hub(bad, wait=True)
    finally:
        await hub.stop()
    assert receipt.status == "failed" and not receipt.duplicate
    assert again.duplicate and again.event_id == receipt.event_id
    async with db.sessions() as s:
        rows = list(await s.scalars(select(InboxEvent)))
    assert [(r.external_id, r.status, r.attempts) for r in rows] == [("bot:7:7:1", "failed", 1)]
