"""``link_identities`` through the hub on SQLite and PostgreSQL: the edges of linking a
messenger chat to a client (the main path is in tests/integration/gateway/)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from crm_core.db import Database
from crm_core.events import Channel, EventKind, InboundEvent
from crm_core.hub import Hub
from crm_core.models import Client, ContactPoint, Interaction, Lead


def tg_event(ext: str, *identities: str) -> InboundEvent:
    return InboundEvent(
        channel=Channel.TELEGRAM,
        kind=EventKind.MESSAGE_RECEIVED,
        external_id=ext,
        occurred_at=datetime.now(UTC),
        identities=identities,
        display_name="Ирина",
        text="Здравствуйте",
        meta={"bot": "shop", "chat_id": 77, "chat_type": "private", "message_key": f"77:{ext}"},
        source="shop",
    )


async def _run(db: Database, *events: InboundEvent) -> None:
    hub = Hub(db)
    await hub.start()
    try:
        for e in events:
            receipt = await hub(e, wait=True)
            assert receipt.status == "processed", receipt
    finally:
        await hub.stop()


async def _points(db: Database) -> dict[str, tuple[int | None, int | None]]:
    async with db.sessions() as s:
        rows = await s.scalars(select(ContactPoint))
        return {f"{p.kind}:{p.value}": (p.client_id, p.lead_id) for p in rows}


async def test_another_clients_chat_is_never_moved(db: Database) -> None:
    async with db.transaction() as s:
        first, second = Client(kind="person", name="A"), Client(kind="person", name="B")
        s.add_all([first, second])
        await s.flush()
        s.add(ContactPoint(kind="telegram", value="77", client_id=first.id))
        s.add(ContactPoint(kind="phone", value="+79165551234", client_id=second.id))
        ids = first.id, second.id
    await _run(db, tg_event("u1", "telegram:77", "phone:+79165551234"))
    points = await _points(db)
    assert points == {"telegram:77": (ids[0], None), "phone:+79165551234": (ids[1], None)}
    async with db.sessions() as s:
        (inter,) = await s.scalars(select(Interaction))
        assert inter.client_id == ids[0]
        assert list(await s.scalars(select(Lead))) == []


async def test_a_phone_given_in_a_leads_chat_becomes_the_leads(db: Database) -> None:
    await _run(
        db, tg_event("u1", "telegram:77"), tg_event("u2", "telegram:77", "phone:+79165551234")
    )
    async with db.sessions() as s:
        (lead,) = await s.scalars(select(Lead))
        assert lead.status == "new" and lead.client_id is None
        entries = list(await s.scalars(select(Interaction).order_by(Interaction.id)))
    assert [i.lead_id for i in entries] == [lead.id, lead.id]
    assert await _points(db) == {
        "telegram:77": (None, lead.id),
        "phone:+79165551234": (None, lead.id),
    }


async def test_a_first_message_with_a_known_phone_joins_the_client(db: Database) -> None:
    async with db.transaction() as s:
        client = Client(kind="person", name="C")
        s.add(client)
        await s.flush()
        s.add(ContactPoint(kind="phone", value="+79165551234", client_id=client.id))
        client_id = client.id
    await _run(db, tg_event("u1", "telegram:77", "phone:+79165551234"))
    assert (await _points(db))["telegram:77"] == (client_id, None)
    async with db.sessions() as s:
        assert list(await s.scalars(select(Lead))) == []
        (inter,) = await s.scalars(select(Interaction))
        assert inter.client_id == client_id
