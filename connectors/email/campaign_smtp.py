"""``CampaignSmtp``: the SMTP side of campaigns (the core's ``CampaignTransport``).

One persistent connection per (account, slot): the campaign runner sends on ``slot``
0..concurrency-1 of the account, one message at a time per slot, so the account's
``concurrency`` bounds the connections and the messages in flight.

Outcomes, so that nothing is sent twice:

* the server answered the DATA with 2xx -> ``SENT``;
* a 4xx reply at any step (greylisting, rate limit) -> ``RETRY``; a 5xx -> ``FAILED``
  with the server's text (for that recipient only);
* the connection failed before the message text was handed over (connect, login,
  MAIL, RCPT) -> ``RETRY``: the server cannot have the message;
* the connection failed while the message text was being sent or before the server
  answered it -> ``FAILED`` with ``meta["unknown"] = True``: the server may have it,
  a person decides (never resent blindly).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formataddr, formatdate, parseaddr
from typing import Any

import aiosmtplib

from connectors.email.config import SmtpSettings, make_ssl_context
from connectors.email.smtp_message import bare_message_id
from crm_core.events import NormalizeError
from crm_core.ports import OutboundResult, OutboundStatus

__all__ = ["CampaignSmtp", "build_campaign_message"]

_UNSAFE = re.compile(r"[\r\n]")


def _header(name: str, value: str) -> str:
    if value.isascii():
        return value
    return Header(value, "utf-8", header_name=name).encode()


def build_campaign_message(payload: Mapping[str, Any]) -> tuple[str, list[str], bytes, str]:
    """(envelope sender, recipients, the message bytes, Message-ID) of one campaign
    message: From, To, Subject, Date, Message-ID and the extra (List-Unsubscribe)
    headers; text and HTML as ``multipart/alternative``, UTF-8, base64.

    The ``compat32`` MIME classes build it ten times faster than ``EmailMessage`` with
    the default policy (``build_message``, the replies' builder); every value here was
    made by the core (rendered, one-line subject, normalized address) and is checked for
    line breaks once more."""
    to = [str(a) for a in payload.get("to") or []]
    subject = str(payload.get("subject") or "")
    from_name, from_addr = parseaddr(str(payload.get("from") or ""))
    message_id = str(payload.get("message_id") or "")
    headers = dict(payload.get("headers") or {})
    values = [*to, subject, from_name, from_addr, message_id, *map(str, headers.values())]
    if not to or not from_addr or not message_id or any(_UNSAFE.search(v) for v in values):
        raise NormalizeError("a campaign message needs one-line to, from, message_id", "to")
    text, html = payload.get("text"), payload.get("html")
    msg: MIMEMultipart | MIMEText
    if text is not None and html is not None:
        msg = MIMEMultipart("alternative")
        msg.attach(MIMEText(str(text), "plain", "utf-8"))
        msg.attach(MIMEText(str(html), "html", "utf-8"))
    elif html is not None:
        msg = MIMEText(str(html), "html", "utf-8")
    else:
        msg = MIMEText(str(text or ""), "plain", "utf-8")
    msg["From"] = formataddr((from_name, from_addr), charset="utf-8") if from_name else from_addr
    msg["To"] = ", ".join(to)
    msg["Subject"] = _header("Subject", subject)
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = message_id
    for name, value in headers.items():
        msg[str(name)] = _header(str(name), str(value))
    return from_addr, to, msg.as_bytes(), message_id


class CampaignSmtp:
    def __init__(self, accounts: Mapping[str, SmtpSettings]) -> None:
        self._accounts = dict(accounts)
        self._conns: dict[tuple[str, int], aiosmtplib.SMTP] = {}

    def accounts(self) -> list[str]:
        return sorted(self._accounts)

    def settings(self, account: str) -> SmtpSettings:
        return self._accounts[account]

    def limits(self, account: str) -> dict[str, int]:
        s = self._accounts[account]
        return {
            "concurrency": s.concurrency,
            "per_minute": s.rate_per_minute,
            "per_hour": s.rate_per_hour,
            "per_day": s.rate_per_day,
        }

    def sender(self, account: str) -> tuple[str, str]:
        """(the From header, the Message-ID domain) of an account."""
        s = self._accounts[account]
        from email.utils import formataddr

        header = formataddr((s.from_name, s.from_address)) if s.from_name else s.from_address
        return header, s.msgid_domain.lower()

    def _client(self, s: SmtpSettings) -> aiosmtplib.SMTP:
        tls_context = make_ssl_context(s.ca_file, s.tls_verify) if s.tls != "none" else None
        return aiosmtplib.SMTP(
            hostname=s.host,
            port=s.port,
            username=s.username or None,
            password=s.password if s.username else None,
            timeout=s.timeout,
            use_tls=s.tls == "implicit",
            start_tls=True if s.tls == "starttls" else False,
            validate_certs=s.tls_verify,
            tls_context=tls_context,
        )

    async def check(self, account: str) -> str | None:
        """Connect and log in (the start and the test send ask first): the error, or None."""
        s = self._accounts.get(account)
        if s is None:
            return "the account is not configured"
        client = self._client(s)
        try:
            async with client:
                await client.noop()
        except aiosmtplib.SMTPAuthenticationError as exc:
            return f"login refused: {exc.code} {exc.message}"
        except aiosmtplib.SMTPResponseException as exc:
            return f"SMTP {exc.code} {exc.message}"
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            return f"cannot connect to {s.host}:{s.port}: {exc}"
        return None

    async def _connection(self, account: str, slot: int | None) -> aiosmtplib.SMTP:
        s = self._accounts[account]
        if slot is None:
            client = self._client(s)
            await client.connect()
            return client
        key = (account, slot)
        kept = self._conns.get(key)
        if kept is not None and kept.is_connected:
            return kept
        fresh = self._client(s)
        await fresh.connect()
        self._conns[key] = fresh
        return fresh

    def _drop(self, account: str, slot: int | None, client: aiosmtplib.SMTP) -> None:
        if slot is not None:
            self._conns.pop((account, slot), None)
        client.close()

    async def send(
        self, account: str, payload: Mapping[str, Any], slot: int | None = None
    ) -> OutboundResult:
        s = self._accounts.get(account)
        if s is None:
            return OutboundResult(OutboundStatus.FAILED, detail=f"SMTP account {account!r} is gone")
        try:
            sender, recipients, data, raw_id = build_campaign_message(payload)
        except NormalizeError as exc:
            return OutboundResult(OutboundStatus.FAILED, detail=f"{exc.field}: {exc}")
        message_id = bare_message_id(raw_id)
        stage = "connect"
        client: aiosmtplib.SMTP | None = None
        try:
            client = await self._connection(account, slot)
            stage = "envelope"
            await client.mail(sender)
            for rcpt in recipients:
                await client.rcpt(rcpt)
            stage = "data"
            await client.data(data)
        except aiosmtplib.SMTPResponseException as exc:
            if client is not None and stage != "connect":
                try:
                    await client.rset()
                except (TimeoutError, aiosmtplib.SMTPException, OSError):
                    self._drop(account, slot, client)
                if slot is None:
                    client.close()
            status = OutboundStatus.RETRY if 400 <= exc.code < 500 else OutboundStatus.FAILED
            return OutboundResult(status, detail=f"SMTP {exc.code} {exc.message}"[:1000])
        except (
            TimeoutError,
            aiosmtplib.SMTPException,
            OSError,
            asyncio.IncompleteReadError,
        ) as exc:
            if client is not None:
                self._drop(account, slot, client)
            detail = f"SMTP connection problem ({stage}): {type(exc).__name__}: {exc}"[:1000]
            if stage == "data":
                return OutboundResult(OutboundStatus.FAILED, detail=detail, meta={"unknown": True})
            return OutboundResult(OutboundStatus.RETRY, detail=detail)
        if slot is None:
            try:
                await client.quit()
            except (TimeoutError, aiosmtplib.SMTPException, OSError):
                client.close()
        return OutboundResult(OutboundStatus.SENT, external_id=message_id)

    async def close(self) -> None:
        conns, self._conns = list(self._conns.values()), {}
        for client in conns:
            try:
                await asyncio.wait_for(client.quit(), 2)
            except (TimeoutError, aiosmtplib.SMTPException, OSError):
                client.close()
