"""Rules-based assignment in the pipeline: even round robin under concurrency, sticky
owners, the queue when nobody is available, and the reason stored on the lead."""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from datetime import UTC, datetime

from sqlalchemy import select

from crm_core.db import Database
from crm_core.events import Channel, EventKind, InboundEvent
from crm_core.hub import Hub
from crm_core.models import Lead, User
from crm_core.pipeline.rules_assigner import RulesAssigner
from routing_rules import RuleSet, parse_rules

RULES = """
version: 1
timezone: Europe/Moscow
rules:
  - id: vip-telegram
    when:
      channel: telegram
    assign:
      team: vip
      strategy: round_robin
  - id: everyone
    assign:
      role: manager
      strategy: round_robin
"""


def ev(i: int, channel: Channel = Channel.WEBFORM) -> InboundEvent:
    return InboundEvent(
        channel=channel,
        kind=EventKind.FORM_SUBMITTED if channel == Channel.WEBFORM else EventKind.MESSAGE_RECEIVED,
        external_id=f"r-{channel.value}-{i}",
        occurred_at=datetime.now(UTC),
        identities=(f"phone:+7916{i:07d}",) if channel == Channel.WEBFORM else (f"telegram:{i}",),
        meta={"chat_id": i},
        source="site",
    )


async def users(db: Database, n: int, team: str | None = None) -> list[int]:
    out = []
    async with db.transaction() as s:
        for i in range(n):
            u = User(
                email=f"{team or 'x'}{i}@ex.ru",
                name=f"U{i}",
                role="manager",
                team=team,
                token_hash=secrets.token_hex(32),
            )
            s.add(u)
            await s.flush()
            out.append(u.id)
    return out


def _try_rules() -> RuleSet:
    try:
        return parse_rules(RULES, "test.yaml")
    except Exception:  # surface the loader's message in the test output
        raise


async def test_one_hundred_concurrent_leads_spread_evenly(db: Database) -> None:
    ids = await users(db, 7)
    rules = _try_rules()
    hubs = [
        Hub(db, assigner=RulesAssigner(lambda: rules, postgres=db.is_postgres)) for _ in range(2)
    ]
    for h in hubs:
        await h.start()
    try:
        await asyncio.gather(*(hubs[i % 2](ev(i), wait=True) for i in range(100)))
        assert all([await h.drain() for h in hubs])
    finally:
        for h in hubs:
            await h.stop()
    async with db.sessions() as s:
        owners = Counter(await s.scalars(select(Lead.owner_id)))
    assert sum(owners.values()) == 100
    assert set(owners) == set(ids)
    assert max(owners.values()) - min(owners.values()) <= 1
    async with db.sessions() as s:
        lead = await s.scalar(select(Lead).limit(1))
        assert lead is not None and lead.rule_id == "everyone" and lead.assign_reason


async def test_nobody_in_the_team_puts_the_lead_in_the_queue(db: Database) -> None:
    await users(db, 2)
    rules = _try_rules()
    hub = Hub(db, assigner=RulesAssigner(lambda: rules, postgres=db.is_postgres))
    await hub.start()
    try:
        r = await hub(ev(1, Channel.TELEGRAM), wait=True)
    finally:
        await hub.stop()
    async with db.sessions() as s:
        lead = await s.get(Lead, r.lead_id)
        assert lead is not None
        assert lead.owner_id is None and lead.queue == "vip"
        assert lead.rule_id == "vip-telegram"
