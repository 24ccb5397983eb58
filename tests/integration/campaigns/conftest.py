from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from connectors.email import SmtpSettings
from connectors.email.campaign_smtp import CampaignSmtp
from crm_core.campaigns import CampaignRunner
from crm_core.db import Database
from crm_core.models import Client, ContactPerson, ContactPoint, Segment, SegmentClient
from crm_core.services.campaigns import CampaignPolicy
from gateway.api.campaigns import CAMPAIGN_TRANSPORT
from tests.support.api import Api, make_app, seed_team
from tests.support.smtp_sink import SmtpSink


def smtp_settings(port: int, **kw: Any) -> SmtpSettings:
    base: dict[str, Any] = dict(
        host="127.0.0.1",
        port=port,
        tls="none",
        from_address="news@crm.example",
        from_name="CRM News",
        timeout=5,
        concurrency=2,
    )
    base.update(kw)
    return SmtpSettings(**base)


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    server = SmtpSink().start()
    yield server
    server.stop()


@pytest.fixture
def transport(sink: SmtpSink) -> CampaignSmtp:
    return CampaignSmtp({"default": smtp_settings(sink.port)})


@pytest.fixture
async def api(db: Database, aiohttp_client: Any, transport: CampaignSmtp) -> Api:
    users, tokens = await seed_team(db)
    app = make_app(db)
    app[CAMPAIGN_TRANSPORT] = transport
    http = await aiohttp_client(app)
    return Api(http, db, users, tokens)


@pytest.fixture
async def runner(db: Database, transport: CampaignSmtp) -> AsyncIterator[CampaignRunner]:
    r = CampaignRunner(db, transport, CampaignPolicy(), lease_seconds=5, retry_base=0.05)
    yield r
    await transport.close()


async def seed_clients(
    db: Database,
    owner_id: int | None,
    emails: list[str | None],
    *,
    segment: str | None = None,
    city: str = "Москва",
) -> tuple[list[int], int | None]:
    """Clients ``Клиент N`` with one email each (None: no email); optionally a manual
    segment holding them all.  Returns (client ids, segment id)."""
    ids: list[int] = []
    async with db.transaction() as s:
        seg_id = None
        if segment:
            seg = Segment(name=segment, kind="manual")
            s.add(seg)
            await s.flush()
            seg_id = seg.id
        for i, email in enumerate(emails):
            c = Client(kind="company", name=f"Клиент {i}", city=city, owner_id=owner_id, inn=None)
            s.add(c)
            await s.flush()
            ids.append(c.id)
            if email:
                s.add(ContactPoint(kind="email", value=email, client_id=c.id))
            if seg_id:
                s.add(SegmentClient(segment_id=seg_id, client_id=c.id))
    return ids, seg_id


async def add_contact(db: Database, client_id: int, name: str, position: str, email: str) -> int:
    async with db.transaction() as s:
        p = ContactPerson(client_id=client_id, name=name, position=position)
        s.add(p)
        await s.flush()
        s.add(ContactPoint(kind="email", value=email, client_id=client_id, contact_person_id=p.id))
        return p.id
