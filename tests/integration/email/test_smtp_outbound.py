"""SmtpOutbound against an in-process aiosmtpd server (and Dovecot for the Sent copy)."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from connectors.email import ImapSettings, SmtpOutbound, SmtpSettings
from crm_core.ports import OutboundCommand, OutboundStatus
from tests.support.dovecot import DovecotServer, free_port
from tests.support.smtp_server import SmtpTestServer, make_self_signed_cert


@pytest.fixture
def smtp() -> Iterator[SmtpTestServer]:
    server = SmtpTestServer().start()
    yield server
    server.stop()


def settings(port: int, **kw: Any) -> SmtpSettings:
    base: dict[str, Any] = dict(
        host="127.0.0.1",
        port=port,
        tls="none",
        from_address="manager@crm.example",
        from_name="Иван Менеджер",
        timeout=5,
    )
    base.update(kw)
    return SmtpSettings(**base)


def command(
    payload: dict[str, Any], key: str = "outbox-1", kind: str = "send_email"
) -> OutboundCommand:
    return OutboundCommand(id=1, channel="email", kind=kind, idempotency_key=key, payload=payload)


def payload(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "to": ["Клиент <client@example.ru>"],
        "cc": [],
        "subject": "Re: Счёт [#D-123]",
        "text": "Добрый день!\nСчёт во вложении.",
        "html": None,
        "attachments": [],
        "message_id": "<crm.i42.abc@crm.example>",
        "in_reply_to": "<thread-3@client.example>",
        "references": [
            "<thread-1@client.example>",
            "<thread-2@crm.example>",
            "<thread-3@client.example>",
        ],
    }
    base.update(kw)
    return base


def content(part: Any) -> str:
    return str(part.get_content()).replace("\r\n", "\n")


def parsed(data: bytes) -> EmailMessage:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


async def test_thread_headers_are_exact(smtp: SmtpTestServer) -> None:
    result = await SmtpOutbound(settings(smtp.port)).execute(command(payload()))
    assert result.status is OutboundStatus.SENT
    assert result.external_id == "crm.i42.abc@crm.example"
    assert result.meta["message_id"] == "<crm.i42.abc@crm.example>"
    (got,) = smtp.messages
    assert got.mail_from == "manager@crm.example"
    assert got.rcpt_tos == ["client@example.ru"]
    assert b"\r\nMessage-ID: <crm.i42.abc@crm.example>\r\n" in got.data
    assert b"\r\nIn-Reply-To: <thread-3@client.example>\r\n" in got.data
    msg = parsed(got.data)
    assert msg["References"].split() == [
        "<thread-1@client.example>",
        "<thread-2@crm.example>",
        "<thread-3@client.example>",
    ]
    assert len(msg.get_all("References") or []) == 1
    assert msg["Subject"] == "Re: Счёт [#D-123]"
    assert msg["From"].addresses[0].display_name == "Иван Менеджер"
    assert msg["To"].addresses[0].addr_spec == "client@example.ru"
    assert msg.get_content_type() == "text/plain"
    assert content(msg) == "Добрый день!\nСчёт во вложении.\n"


async def test_text_and_html_make_multipart_alternative(smtp: SmtpTestServer) -> None:
    p = payload(
        html="<p>Добрый <b>день</b></p>", cc=["boss@crm.example"], bcc=["audit@crm.example"]
    )
    result = await SmtpOutbound(settings(smtp.port)).execute(command(p))
    assert result.status is OutboundStatus.SENT
    (got,) = smtp.messages
    assert got.rcpt_tos == ["client@example.ru", "boss@crm.example", "audit@crm.example"]
    msg = parsed(got.data)
    assert msg.get_content_type() == "multipart/alternative"
    parts = [(p.get_content_type(), content(p)) for p in msg.iter_parts()]
    assert parts == [
        ("text/plain", "Добрый день!\nСчёт во вложении.\n"),
        ("text/html", "<p>Добрый <b>день</b></p>\n"),
    ]
    assert msg["Cc"] == "boss@crm.example"
    assert "Bcc" not in msg
    assert b"audit@crm.example" not in got.data


async def test_html_only(smtp: SmtpTestServer) -> None:
    result = await SmtpOutbound(settings(smtp.port)).execute(
        command(payload(text=None, html="<p>Привет</p>"))
    )
    assert result.status is OutboundStatus.SENT
    msg = parsed(smtp.messages[0].data)
    assert msg.get_content_type() == "text/html"
    assert content(msg) == "<p>Привет</p>\n"


async def test_attachments(smtp: SmtpTestServer, tmp_path: Path) -> None:
    pdf = tmp_path / "a.pdf"
    pdf.write_bytes(b"%PDF-1.4\x00\xff binary")
    csv = tmp_path / "b.csv"
    csv.write_text("a;b\n1;2\n")
    p = payload(
        attachments=[
            {"filename": "Счёт №5.pdf", "content_type": "application/pdf", "path": str(pdf)},
            {"filename": "data.csv", "content_type": "text/csv", "path": str(csv)},
        ]
    )
    result = await SmtpOutbound(settings(smtp.port)).execute(command(p))
    assert result.status is OutboundStatus.SENT
    msg = parsed(smtp.messages[0].data)
    assert msg.get_content_type() == "multipart/mixed"
    atts = [
        (a.get_filename(), a.get_content_type(), a.get_payload(decode=True))
        for a in msg.iter_attachments()
    ]
    assert atts == [
        ("Счёт №5.pdf", "application/pdf", b"%PDF-1.4\x00\xff binary"),
        ("data.csv", "text/csv", b"a;b\n1;2\n"),
    ]
    body = msg.get_body(("plain",))
    assert body is not None and content(body) == "Добрый день!\nСчёт во вложении.\n"


@pytest.mark.parametrize(
    "reply,status",
    [
        ("554 5.7.1 Message rejected as spam", OutboundStatus.FAILED),
        ("552 5.3.4 Message too big", OutboundStatus.FAILED),
        ("451 4.3.0 Try again later", OutboundStatus.RETRY),
        ("421 4.7.0 Too many connections", OutboundStatus.RETRY),
    ],
)
async def test_data_reply_maps_to_status(
    smtp: SmtpTestServer, reply: str, status: OutboundStatus
) -> None:
    smtp.set_data_reply(reply)
    result = await SmtpOutbound(settings(smtp.port)).execute(command(payload()))
    assert result.status is status
    assert result.detail is not None and reply[4:] in result.detail
    assert result.meta["smtp_code"] == int(reply[:3])
    assert result.external_id is None


async def test_some_recipients_refused_is_sent_with_refusals(smtp: SmtpTestServer) -> None:
    smtp.refuse["gone@example.ru"] = "550 5.1.1 No such user"
    p = payload(to=["client@example.ru", "gone@example.ru"])
    result = await SmtpOutbound(settings(smtp.port)).execute(command(p))
    assert result.status is OutboundStatus.SENT
    assert result.meta["refused"] == {"gone@example.ru": "550 5.1.1 No such user"}
    assert smtp.messages[0].rcpt_tos == ["client@example.ru"]


@pytest.mark.parametrize(
    "reply,status",
    [
        ("550 5.1.1 No such user", OutboundStatus.FAILED),
        ("450 4.2.0 Greylisted, come back later", OutboundStatus.RETRY),
    ],
)
async def test_all_recipients_refused(
    smtp: SmtpTestServer, reply: str, status: OutboundStatus
) -> None:
    smtp.refuse["client@example.ru"] = reply
    result = await SmtpOutbound(settings(smtp.port)).execute(command(payload()))
    assert result.status is status
    assert result.meta["refused"] == {"client@example.ru": reply}
    assert smtp.messages == []


async def test_connection_refused_is_retry() -> None:
    result = await SmtpOutbound(settings(free_port())).execute(command(payload()))
    assert result.status is OutboundStatus.RETRY
    assert result.detail is not None and "SMTP connection problem" in result.detail
    assert result.meta["message_id"] == "<crm.i42.abc@crm.example>"


async def test_message_id_from_idempotency_key_is_stable(smtp: SmtpTestServer) -> None:
    out = SmtpOutbound(settings(smtp.port))
    first = await out.execute(command(payload(message_id=None), key="outbox-77"))
    second = await out.execute(command(payload(message_id=None), key="outbox-77"))
    assert first.external_id == second.external_id
    assert first.external_id is not None and first.external_id.endswith("@crm.example")
    ids = [parsed(m.data)["Message-ID"] for m in smtp.messages]
    assert ids == [f"<{first.external_id}>"] * 2


@pytest.mark.parametrize(
    "change,field",
    [
        ({"to": []}, "to"),
        ({"to": ["not an address"]}, "to"),
        ({"subject": "two\r\nBcc: x@y.z"}, "subject"),
        ({"in_reply_to": "no-at-sign"}, "in_reply_to"),
        ({"attachments": [{"filename": "x.pdf", "path": "/nonexistent/x.pdf"}]}, "attachments[0]"),
    ],
)
async def test_bad_payload_fails_naming_the_field(
    smtp: SmtpTestServer, change: dict[str, Any], field: str
) -> None:
    result = await SmtpOutbound(settings(smtp.port)).execute(command(payload(**change)))
    assert result.status is OutboundStatus.FAILED
    assert result.meta["field"] == field
    assert result.detail is not None and result.detail.startswith(field)
    assert smtp.messages == []


async def test_other_command_kind_fails(smtp: SmtpTestServer) -> None:
    result = await SmtpOutbound(settings(smtp.port)).execute(command(payload(), kind="originate"))
    assert result.status is OutboundStatus.FAILED


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_self_signed_cert(tmp_path_factory.mktemp("tls"))


async def test_starttls(cert: tuple[Path, Path]) -> None:
    server = SmtpTestServer(tls_cert=cert[0], tls_key=cert[1], require_starttls=True).start()
    try:
        s = settings(server.port, tls="starttls", ca_file=str(cert[0]))
        result = await SmtpOutbound(s).execute(command(payload()))
        assert result.status is OutboundStatus.SENT, result.detail
        assert server.messages[0].tls is True
        # without trusting the certificate the handshake fails: retry, nothing sent
        bad = await SmtpOutbound(settings(server.port, tls="starttls")).execute(command(payload()))
        assert bad.status is OutboundStatus.RETRY
        assert len(server.messages) == 1
        # plain text is refused by a server that requires STARTTLS
        plain = await SmtpOutbound(settings(server.port)).execute(command(payload()))
        assert plain.status is not OutboundStatus.SENT
        assert len(server.messages) == 1
    finally:
        server.stop()


@pytest.mark.dovecot
async def test_sent_copy_is_appended_to_sent_folder(smtp: SmtpTestServer) -> None:
    dovecot = DovecotServer.start()
    try:
        dovecot.add_user("mgr", "secret")
        imap = ImapSettings(
            name="mgr",
            port=dovecot.port,
            tls="none",
            username="mgr",
            password="secret",
            sent_folder="Sent",
        )
        result = await SmtpOutbound(settings(smtp.port), imap).execute(command(payload()))
        assert result.status is OutboundStatus.SENT
        assert result.meta["sent_copy"] == "appended"
        flags = list(dovecot.flags("mgr", "Sent").values())
        assert len(flags) == 1 and "\\Seen" in flags[0].split()
        out = dovecot.doveadm("fetch", "-u", "mgr", "hdr.message-id", "mailbox", "Sent", "all")
        assert "<crm.i42.abc@crm.example>" in out
        # a broken IMAP side never fails the send
        broken = imap.model_copy(update={"port": free_port()})
        again = await SmtpOutbound(settings(smtp.port), broken).execute(command(payload()))
        assert again.status is OutboundStatus.SENT
        assert str(again.meta["sent_copy"]).startswith("failed:")
    finally:
        dovecot.stop()


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("<crmhub.o7.ab12@CRM.Example>", "crmhub.o7.ab12@crm.example"),
        ("crmhub.o7.ab12@crm.example", "crmhub.o7.ab12@crm.example"),
        ("<Part.Case@Mail.CRM.example>", "Part.Case@mail.crm.example"),
    ],
)
async def test_outbound_message_id_is_normalized_like_inbound(
    smtp: SmtpTestServer, given: str, stored: str
) -> None:
    from connectors.email.normalize import parse_message

    result = await SmtpOutbound(settings(smtp.port)).execute(command(payload(message_id=given)))
    assert result.status is OutboundStatus.SENT
    assert result.external_id == stored
    (got,) = smtp.messages
    # what we store is exactly what a reply's In-Reply-To/References normalize to
    reply = (
        f"From: client@example.ru\r\nMessage-ID: <r@example.ru>\r\n"
        f"In-Reply-To: {parsed(got.data)['Message-ID'].upper()}\r\n\r\nok\r\n"
    ).encode()
    assert parse_message(reply).thread_refs[-1].lower() == stored.lower()
    assert parse_message(got.data).external_id == stored
