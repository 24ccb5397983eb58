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
from collections.abc import Mapping
from email.policy import SMTP as SMTP_POLICY
from typing import Any

import aiosmtplib

from connectors.email.config import SmtpSettings, make_ssl_context
from connectors.email.smtp_message import bare_message_id, build_message
from crm_core.events import NormalizeError
from crm_core.ports import OutboundResult, OutboundStatus

__all__ = ["CampaignSmtp"]


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
            built = build_message(payload, s)
        except NormalizeError as exc:
            return OutboundResult(OutboundStatus.FAILED, detail=f"{exc.field}: {exc}")
        message_id = bare_message_id(built.message_id)
        data = built.message.as_bytes(policy=SMTP_POLICY)
        stage = "connect"
        client: aiosmtplib.SMTP | None = None
        try:
            client = await self._connection(account, slot)
            stage = "envelope"
            await client.mail(built.sender)
            for rcpt in built.recipients:
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
