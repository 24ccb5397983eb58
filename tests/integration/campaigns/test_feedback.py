"""Replies and bounces of campaign messages, parsed by the email connector and run
through the ingest pipeline: matched back to their recipient."""

from __future__ import annotations

from sqlalchemy import select

from connectors.email.normalize import parse_message
from crm_core.campaigns import CampaignRunner
from crm_core.hub import Hub
from crm_core.models import CampaignRecipient, Interaction, Lead, Task
from crm_core.services import consent
from tests.support.api import Api
from tests.support.smtp_sink import SmtpSink

from .conftest import seed_clients
from .test_campaigns_api import body


def reply(msgid: str, sender: str) -> bytes:
    return (
        f"From: Клиент <{sender}>\r\nTo: news@crm.example\r\nSubject: Re: Предложение\r\n"
        f"Message-ID: <reply-{sender}>\r\nIn-Reply-To: <{msgid}>\r\nReferences: <{msgid}>\r\n"
        "Date: Thu, 03 Dec 2026 12:00:00 +0000\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        "Интересно, пришлите счёт.\r\n"
    ).encode()


def bounce(msgid: str, rcpt: str) -> bytes:
    return (
        "From: MAILER-DAEMON@mx.example\r\nTo: news@crm.example\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <dsn-1@mx.example>\r\n"
        "Date: Thu, 03 Dec 2026 12:00:00 +0000\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example\r\n\r\n"
        f"Final-Recipient: rfc822; {rcpt}\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: news@crm.example\r\nTo: {rcpt}\r\nMessage-ID: <{msgid}>\r\n\r\n"
        "--B--\r\n"
    ).encode()


async def test_reply_and_bounce_find_their_recipient(
    api: Api, sink: SmtpSink, runner: CampaignRunner
) -> None:
    admin = api.as_("admin")
    owner = api.users["a1"].id
    ids, _ = await seed_clients(api.db, owner, ["answer@example.ru", "nobody@example.ru"])
    status, c = await admin.post("/campaigns", body(client_ids=ids))
    assert status == 201
    status, _ = await admin.post(f"/campaigns/{c['id']}/start")
    assert status == 200
    await runner.run_once()
    async with api.db.sessions() as s:
        recs = {r.email: r for r in await s.scalars(select(CampaignRecipient))}
    hub = Hub(api.db)
    await hub.start()
    try:
        await hub(
            parse_message(reply(recs["answer@example.ru"].message_id or "", "answer@example.ru")),
            wait=True,
        )
        await hub(
            parse_message(bounce(recs["nobody@example.ru"].message_id or "", "nobody@example.ru")),
            wait=True,
        )
    finally:
        await hub.stop()
    _status, page = await admin.get(f"/campaigns/{c['id']}/recipients")
    by = {i["email"]: i for i in page["items"]}
    assert by["answer@example.ru"]["status"] == "replied"
    assert by["nobody@example.ru"]["status"] == "bounced"
    async with api.db.transaction() as s:
        assert await consent.suppressed(s, ["nobody@example.ru"]) == {"nobody@example.ru"}
        sent = await s.scalar(
            select(Interaction).where(Interaction.outbox_id == recs["answer@example.ru"].outbox_id)
        )
        assert sent is not None
        answer = await s.scalar(
            select(Interaction).where(
                Interaction.direction == "in", Interaction.client_id == ids[0]
            )
        )
        assert answer is not None and answer.thread_id == sent.thread_id  # in the thread
        leads = list(await s.scalars(select(Lead).where(Lead.client_id == ids[0])))
        tasks = list(await s.scalars(select(Task).where(Task.client_id == ids[0])))
    # the owner has something to act on: a lead (with its task) or a task
    assert leads or tasks
    if not leads:
        assert tasks[0].assignee_id == owner and "рассылке" in tasks[0].title
    else:
        assert leads[0].owner_id == owner
