"""``SmtpOutbound``: the outbox executor of ``send_email`` commands.

Result mapping (the outbox worker retries RETRY with backoff, stops on FAILED):

* accepted by the server -> ``SENT``, ``external_id`` = Message-ID without ``<>``;
  recipients refused one by one -> ``meta["refused"]`` (the rest got it: no retry);
* all recipients refused -> ``FAILED`` when any refusal is permanent (5xx),
  ``RETRY`` when all are temporary (4xx, greylisting);
* 4xx replies, timeouts, connection errors -> ``RETRY``; 5xx -> ``FAILED`` with the
  server's text; a bad payload -> ``FAILED`` naming the field.

Never twice: the Message-ID comes from the payload (chosen by the core before the
first attempt) or from the idempotency key, so a retry after an unknown outcome sends
the same Message-ID and the receiving side can tell.  After SENT a copy goes to the
mailbox's ``sent_folder`` over IMAP (flag ``\\Seen``); a failed copy never fails the send.
"""

from __future__ import annotations

import asyncio
import logging
from email.policy import SMTP
from typing import Any

import aiosmtplib

from connectors.email.config import ImapSettings, SmtpSettings, make_ssl_context
from connectors.email.imap_session import ImapError, ImapSession
from connectors.email.smtp_message import BuiltMessage, bare_message_id, build_message
from crm_core.events import NormalizeError
from crm_core.ports import OutboundCommand, OutboundResult, OutboundStatus

__all__ = ["SEND_EMAIL", "SmtpOutbound"]

log = logging.getLogger(__name__)
SEND_EMAIL = "send_email"


def _status_for(code: int) -> OutboundStatus:
    return OutboundStatus.RETRY if 400 <= code < 500 else OutboundStatus.FAILED


class SmtpOutbound:
    """``OutboundExecutor`` for channel ``email``."""

    channel = "email"

    def __init__(self, smtp: SmtpSettings, imap: ImapSettings | None = None) -> None:
        self.smtp = smtp
        self.imap = imap

    def _client(self) -> aiosmtplib.SMTP:
        s = self.smtp
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

    async def execute(self, command: OutboundCommand) -> OutboundResult:
        if command.kind != SEND_EMAIL:
            return OutboundResult(
                OutboundStatus.FAILED, detail=f"unsupported command kind {command.kind!r}"
            )
        try:
            built = await asyncio.to_thread(
                build_message, command.payload, self.smtp, idempotency_key=command.idempotency_key
            )
        except NormalizeError as exc:
            return OutboundResult(
                OutboundStatus.FAILED, detail=f"{exc.field}: {exc}", meta={"field": exc.field}
            )
        result = await self.send(built)
        if result.status is OutboundStatus.SENT and self.imap and self.imap.sent_folder:
            meta = dict(result.meta)
            meta["sent_copy"] = await self._append_sent(built)
            result = OutboundResult(result.status, result.external_id, result.detail, None, meta)
        return result

    async def send(self, built: BuiltMessage) -> OutboundResult:
        message_id = bare_message_id(built.message_id)
        base_meta: dict[str, Any] = {"message_id": built.message_id}
        client = self._client()
        try:
            async with client:
                errors, response = await client.send_message(
                    built.message, sender=built.sender, recipients=built.recipients
                )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = {r.recipient: f"{r.code} {r.message}" for r in exc.recipients}
            permanent = any(r.code >= 500 for r in exc.recipients)
            return OutboundResult(
                OutboundStatus.FAILED if permanent else OutboundStatus.RETRY,
                detail="all recipients refused: "
                + "; ".join(f"{k}: {v}" for k, v in refused.items()),
                meta={**base_meta, "refused": refused},
            )
        except aiosmtplib.SMTPAuthenticationError as exc:
            return OutboundResult(
                _status_for(exc.code),
                detail=f"SMTP authentication failed: {exc.code} {exc.message}",
                meta={**base_meta, "smtp_code": exc.code},
            )
        except aiosmtplib.SMTPResponseException as exc:
            return OutboundResult(
                _status_for(exc.code),
                detail=f"SMTP {exc.code} {exc.message}",
                meta={**base_meta, "smtp_code": exc.code},
            )
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            # connection refused/lost, timeouts, TLS errors: unknown outcome, same Message-ID
            return OutboundResult(
                OutboundStatus.RETRY,
                detail=f"SMTP connection problem: {exc.__class__.__name__}: {exc}",
                meta=base_meta,
            )
        meta = dict(base_meta)
        meta["smtp_response"] = response
        if errors:
            meta["refused"] = {addr: f"{r.code} {r.message}" for addr, r in errors.items()}
        return OutboundResult(OutboundStatus.SENT, external_id=message_id, meta=meta)

    async def _append_sent(self, built: BuiltMessage) -> str:
        assert self.imap is not None and self.imap.sent_folder is not None
        session = ImapSession(self.imap)
        try:
            await session.connect()
            await session.append(self.imap.sent_folder, built.message.as_bytes(policy=SMTP))
            return "appended"
        except (ImapError, OSError) as exc:
            log.warning("email: copy to %s failed: %s", self.imap.sent_folder, exc)
            return f"failed: {exc}"
        finally:
            await session.close()
