"""Issue 4 end to end: the whole app (``create_app``) with ``[[imap]]`` on a real Dovecot
and ``[smtp]`` on aiosmtpd.  Each scenario asserts what the CRM ends up holding."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import update

from connectors.email.normalize import parse_message
from crm_core.models import (
    AttachmentRow,
    ContactPoint,
    InboxEvent,
    Interaction,
    Lead,
    OutboxCommand,
    utcnow,
)
from gateway.api.keys import DB
from gateway.app import create_app
from gateway.wiring import OUTBOX
from tests.support.app import add_user, make_settings
from tests.support.dovecot import DovecotServer, unique_messages
from tests.support.email_flow import (
    deliver,
    email_app,
    mail,
    parse_sent,
    rules_to_user,
    user_names,
)
from tests.support.smtp_server import SmtpTestServer
from tests.support.telephony import drained, rows, until

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "email"
CLIENT = "Клиент <client@client.example>"
PDF = b"%PDF-1.4\n% test offer\n" + bytes(range(256)) * 8


@pytest.fixture
def box(dovecot: DovecotServer) -> str:
    name = next(user_names)
    dovecot.add_user(name, "secret")
    return name


@pytest.fixture
def smtp() -> Iterator[SmtpTestServer]:
    server = SmtpTestServer().start()
    yield server
    server.stop()


def _h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _one(client: TestClient, model: Any, *where: Any, what: str) -> Any:
    async def found() -> bool:
        return len(await rows(client, model, *where)) >= 1

    await until(found, what=what)
    await drained(client)
    got = await rows(client, model, *where)
    assert len(got) == 1, f"{what}: {len(got)} rows"
    return got[0]


async def _sent(
    client: TestClient, outbox_id: int, token: str, status: str = "sent", attempts: int = 1
) -> dict:
    """Waits until the command has ``status`` after at least ``attempts`` attempts (a
    command is "pending" before its first attempt too)."""
    body: dict[str, Any] = {}

    async def done() -> bool:
        nonlocal body
        r = await client.get(f"/api/v1/emails/{outbox_id}", headers=_h(token))
        body = await r.json()
        return bool(body.get("status") == status and (body.get("attempts") or 0) >= attempts)

    await until(done, what=f"email {outbox_id} {status}")
    return body


async def test_thread_flow_lead_reply_answers_and_own_mail(
    db_url: str,
    tmp_path: Path,
    aiohttp_client: Any,
    dovecot: DovecotServer,
    box: str,
    smtp: SmtpTestServer,
) -> None:
    desk_id, desk = await add_user(db_url, "desk@crm.example", "manager")
    _, other = await add_user(db_url, "other@crm.example", "manager")
    rules = rules_to_user(tmp_path / "routing.yaml", desk_id)
    client = await email_app(aiohttp_client, db_url, tmp_path, dovecot, box, smtp, rules=rules)

    # 1. An unknown sender: a lead (source email) routed by the rules, attachment on disk.
    first = mail(
        CLIENT,
        "sales@crm.example",
        "Поставка серверов",
        "Добрый день, нужна поставка 5 серверов.\n--\nИван\nтел. +7 916 555-12-34\n",
        msgid="<T1@Client.Example>",
        attachment=("ТЗ.pdf", "application/pdf", PDF),
    )
    await deliver(dovecot, box, first)
    lead = await _one(client, Lead, what="the lead")
    assert (lead.source, lead.owner_id, lead.rule_id) == ("email", desk_id, "email-desk")
    inbound = await _one(client, Interaction, Interaction.lead_id == lead.id, what="inbound")
    assert inbound.message_key == "T1@client.example" and inbound.direction == "in"
    points = {(p.kind, p.value) for p in await rows(client, ContactPoint)}
    assert points == {("email", "client@client.example"), ("phone", "+79165551234")}
    att = await _one(client, AttachmentRow, what="the attachment")
    assert att.sha256 == hashlib.sha256(PDF).hexdigest() and att.size == len(PDF)
    assert (
        att.filename == "ТЗ.pdf" and await asyncio.to_thread(Path(att.path or "").read_bytes) == PDF
    )
    r = await client.get(f"/api/v1/attachments/{att.id}", headers=_h(desk))
    assert r.status == 200 and await r.read() == PDF
    assert r.headers["Content-Type"] == "application/octet-stream"
    assert r.headers["Content-Disposition"].startswith("attachment;")
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    r = await client.get(f"/api/v1/attachments/{att.id}", headers=_h(other))
    assert r.status == 404

    # The desk converts the lead: a client and a deal.
    r = await client.post(
        f"/api/v1/leads/{lead.id}/convert",
        json={"kind": "person", "name": "Иван", "deal_title": "Серверы"},
        headers=_h(desk),
    )
    assert r.status in (200, 201), await r.text()
    conv = await r.json()
    client_id, deal_id = conv["client"]["id"], conv["deal"]["id"]

    # 2. Another manager may not send for this client; the desk replies with a file.
    r = await client.post(
        "/api/v1/emails", json={"client_id": client_id, "text": "x"}, headers=_h(other)
    )
    assert r.status == 404
    r = await client.post(
        "/api/v1/emails",
        json={
            "reply_to": inbound.id,
            "subject": "Re: Поставка серверов",
            "text": "Направляю КП.",
            "html": "<p>Направляю <b>КП</b><script>alert(1)</script></p>",
            "attachments": [
                {
                    "filename": "../КП.pdf",
                    "content_type": "application/pdf",
                    "content_base64": base64.b64encode(PDF).decode(),
                }
            ],
        },
        headers=_h(desk),
    )
    assert r.status == 202, await r.text()
    sent = await r.json()
    our_id = sent["message_id"]
    assert our_id.startswith(f"<crmhub.o{sent['outbox_id']}.") and our_id.endswith("@crm.example>")
    assert sent["to"] == ["client@client.example"] and sent["deal_id"] == deal_id
    status = await _sent(client, sent["outbox_id"], desk)
    assert len(smtp.messages) == 1
    wire = parse_sent(smtp.messages[0].data)
    assert wire["Message-ID"] == our_id
    assert wire["In-Reply-To"] == "<T1@client.example>"
    assert wire["References"] == "<T1@client.example>"
    assert wire["Subject"] == f"Re: Поставка серверов [#D-{deal_id}]"
    assert smtp.messages[0].rcpt_tos == ["client@client.example"]
    files = [p for p in wire.iter_attachments()]
    assert [f.get_filename() for f in files] == ["КП.pdf"]
    assert files[0].get_content() == PDF
    assert "<script" not in smtp.messages[0].data.decode("utf-8", "replace")
    out = await _one(client, Interaction, Interaction.outbox_id == sent["outbox_id"], what="out")
    assert status["interaction_id"] == out.id
    assert (out.direction, out.kind, out.client_id, out.deal_id) == (
        "out",
        "email_sent",
        client_id,
        deal_id,
    )
    assert out.thread_id == inbound.thread_id
    r = await client.get(f"/api/v1/clients/{client_id}/timeline", headers=_h(desk))
    kinds = [(i["kind"], i["direction"]) for i in (await r.json())["items"]]
    assert kinds == [("email_sent", "out"), ("email_received", "in")]

    # 3. The client's answer with In-Reply-To our Message-ID joins the thread and deal.
    answer = mail(
        CLIENT,
        "desk@crm.example",
        f"RE: Re: Поставка серверов [#D-{deal_id}]",
        "Спасибо, согласны. Счёт?",
        msgid="<T3@client.example>",
        in_reply_to=our_id.upper().replace("CRMHUB", "crmhub"),  # domain case differs
    )
    await deliver(dovecot, box, answer)
    t3 = await _one(client, Interaction, Interaction.message_key == "T3@client.example", what="t3")
    assert (t3.client_id, t3.deal_id, t3.thread_id) == (client_id, deal_id, inbound.thread_id)

    # 4. Headers dropped by the mail program: the subject token joins, same client only.
    lost = mail(
        CLIENT,
        "desk@crm.example",
        f"Ответ: RE: Поставка серверов [#D-{deal_id}]",
        "Когда отгрузка?",
        msgid="<T4@mobile.example>",
    )
    await deliver(dovecot, box, lost)
    t4 = await _one(client, Interaction, Interaction.message_key == "T4@mobile.example", what="t4")
    assert (t4.client_id, t4.deal_id, t4.thread_id) == (client_id, deal_id, inbound.thread_id)

    # 5. Someone else answering with the token (a forwarded newsletter) does not merge.
    stranger = mail(
        "Пётр <petr@other.example>",
        "desk@crm.example",
        f"Re: Поставка серверов [#D-{deal_id}]",
        "Мне тоже интересно",
        msgid="<S1@other.example>",
        in_reply_to=our_id,
        references=our_id,
    )
    await deliver(dovecot, box, stranger)
    s1 = await _one(client, Interaction, Interaction.message_key == "S1@other.example", what="s1")
    assert s1.client_id is None and s1.deal_id is None and s1.thread_id != inbound.thread_id
    assert s1.lead_id is not None and s1.lead_id != lead.id

    # 6. The desk wrote from their own mail program: logged outbound on the thread.
    own = mail(
        "Desk <Desk@CRM.example>",
        "client@client.example",
        "Re: Поставка серверов",
        "Счёт во вложении.",
        msgid="<own-1@crm.example>",
        in_reply_to="<T3@client.example>",
        references=f"<T1@client.example> {our_id} <T3@client.example>",
    )
    await deliver(dovecot, box, own)
    o1 = await _one(client, Interaction, Interaction.message_key == "own-1@crm.example", what="own")
    assert (o1.direction, o1.kind) == ("out", "email_sent")
    assert (o1.client_id, o1.deal_id, o1.thread_id) == (client_id, deal_id, inbound.thread_id)

    assert len(await rows(client, Lead)) == 2  # the client's and the stranger's
    assert len(smtp.messages) == 1


async def test_auto_replies_bounces_bulk_and_junk(
    db_url: str,
    tmp_path: Path,
    aiohttp_client: Any,
    dovecot: DovecotServer,
    box: str,
) -> None:
    await add_user(db_url, "desk@crm.example", "manager")
    bounce = (FIXTURES / "fl_bounce_mailbox_full.eml").read_bytes()
    bounced = parse_message(bounce).meta["bounced_addresses"]
    assert bounced
    client = await email_app(aiohttp_client, db_url, tmp_path, dovecot, box, None)
    # a lead whose address later bounces
    await deliver(
        dovecot,
        box,
        mail(f"Получатель <{bounced[0]}>", "desk@crm.example", "Hi", "x", msgid="<b0@x.example>"),
    )
    await _one(client, Lead, what="the lead")
    names = {
        "cw_auto_reply_auto_submitted.eml": "auto_reply",
        "syn_ooo_autoreply_ru.eml": "auto_reply",
        "cw_auto_reply_x_autoreply.eml": "auto_reply",
        "syn_mailing_list_bulk.eml": "bulk",
        "sp_list_id_cyrillic_from_b64.eml": "bulk",
        "fl_bounce_mailbox_full.eml": "bounce",
        "sp_bounce_malformed.eml": "bounce",
        "cw_bounce_no_from.eml": "bounce",
    }
    for name in names:
        await deliver(dovecot, box, (FIXTURES / name).read_bytes())
    junk = b"\x00\x01\x02 not a mail message at all \xff\xfe\r\n"
    await asyncio_append(dovecot, box, junk)
    after = mail(
        CLIENT, "desk@crm.example", "После мусора", "Текст", msgid="<after@client.example>"
    )
    await deliver(dovecot, box, after)

    await _one(client, Interaction, Interaction.message_key == "after@client.example", what="after")
    # the two chatwoot auto-replies share one Message-ID: the second is a duplicate
    total = len(names) + 2

    async def all_in() -> bool:
        return len(await rows(client, InboxEvent)) >= total

    await until(all_in, what="every message in the inbox")
    await drained(client)
    assert len(await rows(client, InboxEvent)) == total
    leads = await rows(client, Lead)
    assert len(leads) == 2  # the first sender and the one after the junk
    inters = await rows(client, Interaction)
    by_class: dict[str, int] = {}
    for i in inters:
        by_class[i.classification] = by_class.get(i.classification, 0) + 1
        if i.classification != "regular":
            assert i.lead_id is None and i.client_id is None
    assert by_class == {"regular": 2, "auto_reply": 2, "bulk": 2, "bounce": 3}
    point = (await rows(client, ContactPoint, ContactPoint.value == bounced[0]))[0]
    assert point.unreachable and point.unreachable_reason == "bounced"
    failed = await rows(client, InboxEvent, InboxEvent.status == "failed")
    assert len(failed) == 1 and "could not be parsed" in (failed[0].last_error or "")
    assert failed[0].external_id.startswith("sha256:")


async def asyncio_append(dovecot: DovecotServer, user: str, raw: bytes) -> None:
    await asyncio.to_thread(dovecot.append_many, user, [raw])


async def test_imap_killed_mid_sync_nothing_lost_or_doubled(
    db_url: str,
    tmp_path: Path,
    aiohttp_client: Any,
    dovecot: DovecotServer,
    box: str,
) -> None:
    await add_user(db_url, "desk@crm.example", "manager")
    msgs = unique_messages(FIXTURES, 120, f"kill-{box}")
    dovecot.append_many(box, [raw for _, raw in msgs])
    client = await email_app(aiohttp_client, db_url, tmp_path, dovecot, box, None, batch_size=10)
    kicked = 0

    async def some() -> bool:
        return len(await rows(client, InboxEvent)) >= 15

    await until(some, what="the sync under way")
    for _ in range(3):
        if len(await rows(client, InboxEvent)) < len(msgs):
            dovecot.kick(box)
            kicked += 1
        await asyncio.sleep(0.3)
    assert kicked >= 1

    async def done() -> bool:
        return len(await rows(client, InboxEvent)) >= len(msgs)

    await until(done, limit_s=60, what="every message")
    await drained(client)
    events = await rows(client, InboxEvent)
    assert sorted(e.external_id for e in events) == sorted(m for m, _ in msgs)
    inters = await rows(client, Interaction)
    assert len(inters) == len(msgs)
    assert len({i.event_id for i in inters}) == len(msgs)
    metrics = await (await client.get("/metrics")).text()
    assert f'crmhub_events_received_total{{channel="email"}} {float(len(msgs))}' in metrics


async def test_smtp_temporary_then_success_once_and_permanent_failure(
    db_url: str,
    tmp_path: Path,
    aiohttp_client: Any,
    dovecot: DovecotServer,
    box: str,
    smtp: SmtpTestServer,
) -> None:
    desk_id, desk = await add_user(db_url, "desk@crm.example", "manager")
    rules = rules_to_user(tmp_path / "routing.yaml", desk_id)
    client = await email_app(aiohttp_client, db_url, tmp_path, dovecot, box, smtp, rules=rules)
    await deliver(
        dovecot,
        box,
        mail(CLIENT, "desk@crm.example", "Вопрос", "Цена?", msgid="<q1@client.example>"),
    )
    lead = await _one(client, Lead, what="the lead")

    smtp.set_data_reply("451 4.3.0 try later")
    r = await client.post(
        "/api/v1/emails",
        json={"lead_id": lead.id, "subject": "Ответ", "text": "Цена 100"},
        headers={**_h(desk), "Idempotency-Key": "reply-1"},
    )
    assert r.status == 202, await r.text()
    sent = await r.json()
    assert sent["to"] == ["client@client.example"]
    pending = await _sent(client, sent["outbox_id"], desk, "pending")
    assert pending["attempts"] == 1 and "451 4.3.0 try later" in pending["error"]
    again = await client.post(
        "/api/v1/emails",
        json={"lead_id": lead.id, "subject": "Ответ", "text": "Цена 100"},
        headers={**_h(desk), "Idempotency-Key": "reply-1"},
    )
    assert (await again.json())["outbox_id"] == sent["outbox_id"]
    smtp.set_data_reply(None)
    async with client.app[DB].transaction() as s:  # skip the 5 s backoff
        await s.execute(
            update(OutboxCommand)
            .where(OutboxCommand.id == sent["outbox_id"])
            .values(next_attempt_at=utcnow())
        )
    client.app[OUTBOX].wake()
    done = await _sent(client, sent["outbox_id"], desk)
    assert done["attempts"] == 2 and done["error"] is None
    assert len(smtp.messages) == 1
    wire = parse_sent(smtp.messages[0].data)
    assert wire["Subject"] == f"Ответ [#L-{lead.id}]" and wire["Message-ID"] == sent["message_id"]
    assert len(await rows(client, Interaction, Interaction.outbox_id == sent["outbox_id"])) == 1

    smtp.set_data_reply("554 5.7.1 rejected by policy")
    r = await client.post(
        "/api/v1/emails",
        json={"lead_id": lead.id, "subject": "Ещё", "text": "x"},
        headers=_h(desk),
    )
    failed = await _sent(client, (await r.json())["outbox_id"], desk, "failed")
    assert failed["error"] == "SMTP 554 5.7.1 rejected by policy"
    assert failed["interaction_id"] is None and len(smtp.messages) == 1


async def test_send_email_errors(db_url: str, tmp_path: Path, aiohttp_client: Any) -> None:
    _, admin = await add_user(db_url, "boss@crm.example", "admin")
    client: TestClient = await aiohttp_client(create_app(make_settings(db_url, tmp_path)))
    r = await client.post("/api/v1/emails", json={"client_id": 1, "text": "x"}, headers=_h(admin))
    assert r.status == 503 and "[smtp]" in (await r.json())["error"]
    smtp_conf = {"host": "127.0.0.1", "port": 2525, "tls": "none", "from_address": "a@b.example"}
    client2: TestClient = await aiohttp_client(
        create_app(make_settings(db_url, tmp_path, smtp=smtp_conf))
    )
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"text": "x"}, 422, "body"),
        ({"client_id": 1}, 422, "body"),
        ({"client_id": 999, "text": "x"}, 404, "client_id"),
        (
            {
                "client_id": 1,
                "text": "x",
                "attachments": [{"filename": "a", "content_base64": "!!"}],
            },
            422,
            "attachments.0.content_base64",
        ),
    ]
    for body, code, field in cases:
        r = await client2.post("/api/v1/emails", json=body, headers=_h(admin))
        assert r.status == code, (body, await r.text())
        assert (await r.json()).get("field") == field, (body, await r.text())
