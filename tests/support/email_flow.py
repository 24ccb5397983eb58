"""Helpers for the email end-to-end tests: the whole app (``create_app``) with ``[[imap]]``
pointing at a real Dovecot and ``[smtp]`` at an in-process aiosmtpd, and mail builders."""

from __future__ import annotations

import asyncio
import email
import email.policy
import itertools
from email.message import EmailMessage, Message
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from gateway.app import create_app
from tests.support.app import make_settings
from tests.support.dovecot import DovecotServer
from tests.support.smtp_server import SmtpTestServer

__all__ = ["OWN", "deliver", "email_app", "mail", "parse_sent", "rules_to_user", "user_names"]

OWN = ["desk@crm.example", "sales@crm.example"]
user_names = (f"crm{n}" for n in itertools.count(1))


def rules_to_user(path: Path, user_id: int) -> str:
    path.write_text(
        "version: 1\n"
        "rules:\n"
        "  - id: email-desk\n"
        "    when:\n"
        "      channel: email\n"
        "    assign:\n"
        f"      user: {user_id}\n",
        encoding="utf-8",
    )
    return str(path)


async def email_app(
    aiohttp_client: Any,
    db_url: str,
    tmp_path: Path,
    dovecot: DovecotServer,
    user: str,
    smtp: SmtpTestServer | None,
    *,
    rules: str | None = None,
    **imap: Any,
) -> TestClient:
    box: dict[str, Any] = {
        "name": f"mb-{user}",
        "host": "127.0.0.1",
        "port": dovecot.port,
        "tls": "none",
        "username": user,
        "password": dovecot.users[user],
        "own_addresses": OWN,
        "command_timeout": 10,
        "backoff_initial": 0.05,
        "backoff_max": 0.3,
        "idle_timeout": 30,
    }
    box.update(imap)
    extra: dict[str, Any] = {"imap": [box]}
    if smtp is not None:
        extra["smtp"] = {
            "host": "127.0.0.1",
            "port": smtp.port,
            "tls": "none",
            "from_address": "desk@CRM.example",
            "timeout": 5,
        }
    settings = make_settings(db_url, tmp_path, routing_rules_path=rules, **extra)
    client: TestClient = await aiohttp_client(create_app(settings))
    return client


def mail(
    frm: str,
    to: str,
    subject: str,
    body: str,
    *,
    msgid: str | None = None,
    in_reply_to: str | None = None,
    references: str | None = None,
    headers: dict[str, str] | None = None,
    attachment: tuple[str, str, bytes] | None = None,
) -> bytes:
    """A message as a mail program would send it (CRLF, RFC 2047 where needed)."""
    msg = EmailMessage()
    msg["From"] = frm
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = "Fri, 18 Apr 2025 09:00:00 +0300"
    if msgid:
        msg["Message-ID"] = msgid
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = references
    for k, v in (headers or {}).items():
        msg[k] = v
    msg.set_content(body)
    if attachment is not None:
        name, ctype, data = attachment
        main, _, sub = ctype.partition("/")
        msg.add_attachment(data, maintype=main, subtype=sub, filename=name)
    return msg.as_bytes(policy=email.policy.SMTP)


def parse_sent(data: bytes) -> Message:
    return email.message_from_bytes(data, policy=email.policy.default)


async def deliver(dovecot: DovecotServer, user: str, raw: bytes) -> None:
    await asyncio.to_thread(dovecot.deliver, user, raw)
