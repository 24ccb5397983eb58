"""ARF spam complaints (RFC 5965) through the real email parser and pipeline, on SQLite
and PostgreSQL: a report about a campaign message suppresses its recipient
(``complained``, with the campaign), once; a forged report changes nothing."""

from __future__ import annotations

from sqlalchemy import func, select

from connectors.email.normalize import parse_message
from crm_core.db import Database
from crm_core.hub import Hub
from crm_core.models import EmailConsentEvent, InboxEvent
from crm_core.pipeline.process import PipelineConfig
from crm_core.services import consent


def arf_report(list_unsubscribe: str, *, feedback_type: str = "abuse", rcpt: str = "") -> bytes:
    """A feedback report as Mail.ru's FBL sends them: a human part, the machine part,
    the returned message's headers."""
    rcpt_line = f"Original-Rcpt-To: {rcpt}\r\n" if rcpt else ""
    return (
        "From: fbl@corp.mail.ru\r\n"
        "To: fbl@crm.example\r\n"
        "Subject: Complaint about message from 203.0.113.5\r\n"
        "Message-ID: <fbl-1@corp.mail.ru>\r\n"
        "Date: Thu, 03 Dec 2026 10:00:00 +0300\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="b1"\r\n'
        "\r\n"
        "--b1\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        "This is an email abuse report for an email message received from IP 203.0.113.5\r\n"
        "--b1\r\n"
        "Content-Type: message/feedback-report\r\n\r\n"
        f"Feedback-Type: {feedback_type}\r\n"
        "User-Agent: Mail.Ru FBL/1.0\r\n"
        "Version: 1\r\n"
        f"{rcpt_line}"
        "Arrival-Date: Thu, 03 Dec 2026 09:58:00 +0300\r\n"
        "\r\n"
        "--b1\r\n"
        "Content-Type: text/rfc822-headers\r\n\r\n"
        "From: sales@crm.example\r\n"
        "To: redacted@mail.ru\r\n"
        "Subject: Новое предложение\r\n"
        "Message-ID: <crmhub.c12.r7@crm.example>\r\n"
        f"List-Unsubscribe: {list_unsubscribe}\r\n"
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
        "\r\n"
        "--b1--\r\n"
    ).encode()


def _header(token: str) -> str:
    url = consent.unsubscribe_url("https://crm.example.ru", token)
    value = consent.list_unsubscribe_headers(url, "unsub@crm.example")["List-Unsubscribe"]
    return value.replace(", ", ",\r\n ")  # folded the way mail servers fold a long header


async def _process(db: Database, raw: bytes) -> None:
    hub = Hub(db, cfg=PipelineConfig())
    await hub.start()
    try:
        await hub(parse_message(raw, mailbox="fbl"), wait=True)
    finally:
        await hub.stop()


def test_parser_reads_the_report() -> None:
    token = consent.make_unsubscribe_token("k" * 32, "ivan@mail.ru", 12)
    long = f"<mailto:unsub@crm.example>,\r\n <https://crm.example.ru/u/{token}>"
    event = parse_message(arf_report(long, rcpt="ivan@mail.ru"), mailbox="fbl")
    assert event.classification == "auto_reply"  # machine mail: no lead
    assert event.meta["feedback_type"] == "abuse"
    assert event.meta["complaint_tokens"] == [token]
    assert event.meta["complaint_addresses"] == ["ivan@mail.ru"]
    assert event.meta["complaint_message_id"] == "crmhub.c12.r7@crm.example"
    assert not event.attachments  # the report's machinery is not kept as files


async def test_complaint_suppresses_once(db: Database) -> None:
    async with db.transaction() as s:
        secret = await consent.signing_secret(s)
    token = consent.make_unsubscribe_token(secret, "ivan@mail.ru", 12)
    raw = arf_report(_header(token))
    await _process(db, raw)
    await _process(db, raw.replace(b"fbl-1@", b"fbl-2@"))  # the provider reports it again
    async with db.sessions() as s:
        assert await consent.suppressed(s, ["ivan@mail.ru"]) == {"ivan@mail.ru"}
        events = list(await s.scalars(select(EmailConsentEvent)))
        statuses = list(await s.scalars(select(InboxEvent.status)))
    assert [(e.email, e.state, e.source, e.campaign_id) for e in events] == [
        ("ivan@mail.ru", "complained", "arf", 12)
    ]
    assert statuses == ["processed", "processed"]


async def test_forged_or_not_spam_reports_change_nothing(db: Database) -> None:
    async with db.transaction() as s:
        secret = await consent.signing_secret(s)
    forged = consent.make_unsubscribe_token("another-installation-key", "olga@mail.ru", 3)
    good = consent.make_unsubscribe_token(secret, "petr@mail.ru", 3)
    for raw in (
        arf_report(_header(forged), rcpt="olga@mail.ru"),  # a token we did not sign
        arf_report("<mailto:unsub@crm.example>", rcpt="olga@mail.ru"),  # no token at all
        arf_report(_header(good), feedback_type="not-spam"),  # not a complaint
    ):
        await _process(db, raw)
    async with db.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(EmailConsentEvent)) == 0
        assert set(await s.scalars(select(InboxEvent.status))) == {"processed"}
