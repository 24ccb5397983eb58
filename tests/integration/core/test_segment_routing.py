"""Segments in the ingest pipeline: the routing condition ``client_segment`` matches any
segment the client is in (manual or by rules), and a known client in a segment with
managers gets one of them as owner, who receives its new leads."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from sqlalchemy import select

from crm_core.access import Actor
from crm_core.db import Database
from crm_core.events import Channel, EventKind, InboundEvent
from crm_core.hub import Hub
from crm_core.models import AuditEntry, Client, ContactPoint, Lead, User
from crm_core.pipeline.rules_assigner import RulesAssigner
from crm_core.services.segments import create_segment, set_managers
from routing_rules import parse_rules

RULES = """
version: 1
timezone: Europe/Moscow
rules:
  - id: banks
    when:
      client_segment: [Банки]
    assign:
      team: bank
      strategy: round_robin
  - id: key
    when:
      client_segment: [Ключевые]
    assign:
      team: key
      strategy: round_robin
  - id: everyone
    assign:
      team: rest
      strategy: round_robin
"""


def ev(phone: str, i: int) -> InboundEvent:
    return InboundEvent(
        channel=Channel.WEBFORM,
        kind=EventKind.FORM_SUBMITTED,
        external_id=f"seg-{i}",
        occurred_at=datetime.now(UTC),
        identities=(f"phone:{phone}",),
        meta={},
        source="site",
    )


async def _setup(db: Database) -> tuple[dict[str, int], dict[str, int]]:
    users: dict[str, int] = {}
    clients: dict[str, int] = {}
    async with db.transaction() as s:
        for name, team, role in (
            ("admin", None, "admin"),
            ("bank", "bank", "manager"),
            ("key", "key", "manager"),
            ("rest", "rest", "manager"),
            ("m1", "rest", "manager"),
            ("m2", "rest", "manager"),
        ):
            u = User(
                email=f"{name}@ex.ru",
                name=name,
                role=role,
                team=team,
                token_hash=secrets.token_hex(32),
            )
            s.add(u)
            await s.flush()
            users[name] = u.id
        for i, (name, industry) in enumerate(
            (("bank_co", "Банки"), ("key_co", "Опт"), ("plain", "Опт"), ("managed", "Нефть"))
        ):
            c = Client(kind="company", name=name, status="cold", industry=industry)
            s.add(c)
            await s.flush()
            s.add(ContactPoint(kind="phone", value=f"+7916555000{i}", client_id=c.id))
            clients[name] = c.id
        admin = Actor(users["admin"], "admin")
        await create_segment(
            s,
            admin,
            {
                "name": "Банки",
                "rules": {"all": [{"field": "industry", "op": "eq", "value": "Банки"}]},
            },
        )
        await create_segment(s, admin, {"name": "Ключевые", "client_ids": [clients["key_co"]]})
        oil = await create_segment(
            s,
            admin,
            {
                "name": "Нефть",
                "rules": {"any": [{"field": "industry", "op": "eq", "value": "Нефть"}]},
            },
        )
        await set_managers(s, admin, oil.id, [users["m1"], users["m2"]], "least_loaded")
    return users, clients


async def test_client_segment_matches_rule_and_manual_segments(db: Database) -> None:
    users, _ = await _setup(db)
    rules = parse_rules(RULES, "test.yaml")
    hub = Hub(db, assigner=RulesAssigner(lambda: rules, postgres=db.is_postgres))
    await hub.start()
    try:
        results = {}
        for i, name in enumerate(("bank_co", "key_co", "plain", "managed")):
            results[name] = await hub(ev(f"+7916555000{i}", i), wait=True)
    finally:
        await hub.stop()
    async with db.sessions() as s:
        leads = {n: await s.get(Lead, r.lead_id) for n, r in results.items()}
        assert all(lead is not None for lead in leads.values())
        got = {n: (lead.rule_id, lead.owner_id) for n, lead in leads.items() if lead}
        assert got["bank_co"] == ("banks", users["bank"])
        assert got["key_co"] == ("key", users["key"])
        assert got["plain"][0] == "everyone"
        # the managed segment's client had no owner: one of its managers took it, and
        # the lead went to them
        managed = await s.scalar(select(Client).where(Client.name == "managed"))
        assert managed is not None and managed.owner_id in (users["m1"], users["m2"])
        assert got["managed"] == ("segment_owner", managed.owner_id)
        audit = await s.scalar(
            select(AuditEntry).where(
                AuditEntry.action == "segment_assign", AuditEntry.entity_id == managed.id
            )
        )
        assert audit is not None
