"""Build the outgoing ``EmailMessage`` of a ``send_email`` outbox command (pure, no I/O
except reading attachment files)."""

from __future__ import annotations

import hashlib
import mimetypes
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, parseaddr
from pathlib import Path
from typing import Any

from connectors.email.config import SmtpSettings
from connectors.email.parse_headers import normalize_message_id
from crm_core.events import NormalizeError

__all__ = ["BuiltMessage", "bare_message_id", "build_message", "message_id_for"]


@dataclass(frozen=True, slots=True)
class BuiltMessage:
    message: EmailMessage
    sender: str  # envelope MAIL FROM
    recipients: list[str]  # envelope RCPT TO (to + cc + bcc)
    message_id: str  # with <>


_HEADER_NAME = re.compile(r"^(List-[A-Za-z-]+|X-[A-Za-z0-9-]+|Precedence|Auto-Submitted)$")


def bare_message_id(message_id: str) -> str:
    """Without ``<>``, normalized like inbound ids (``normalize_message_id``: the domain
    lower-cased), so the id we store for a sent email matches a reply's references."""
    return normalize_message_id(message_id) or message_id.strip().strip("<>").strip()


def message_id_for(idempotency_key: str, domain: str) -> str:
    """A Message-ID derived from the outbox key: a retry without one reuses the same id."""
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:32]
    return f"<crm.{digest}@{domain.lower()}>"


def _addresses(payload: Mapping[str, Any], field: str) -> list[str]:
    value = payload.get(field) or []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Sequence):
        raise NormalizeError(f"{field} must be a list of addresses", field)
    out: list[str] = []
    for item in value:
        text = str(item).strip()
        if not text:
            continue
        if any(c in text for c in "\r\n"):
            raise NormalizeError(f"{field}: line break in address {text!r}", field)
        _, addr = parseaddr(text)
        if "@" not in addr or addr.startswith("@") or addr.endswith("@"):
            raise NormalizeError(f"{field}: not an email address: {text!r}", field)
        out.append(text)
    return out


def _msgid(value: Any, field: str) -> str:
    text = str(value).strip()
    if any(c in text for c in "\r\n "):
        raise NormalizeError(f"{field}: invalid Message-ID {text!r}", field)
    bare = bare_message_id(text)
    if "@" not in bare:
        raise NormalizeError(f"{field}: invalid Message-ID {text!r}", field)
    return f"<{bare}>"


def build_message(
    payload: Mapping[str, Any],
    settings: SmtpSettings,
    *,
    idempotency_key: str = "",
    now: datetime | None = None,
) -> BuiltMessage:
    """Validate the payload and build the message.  Raises ``NormalizeError(msg, field)``."""
    to = _addresses(payload, "to")
    cc = _addresses(payload, "cc")
    bcc = _addresses(payload, "bcc")
    if not to and not cc:
        raise NormalizeError("no recipient: 'to' is empty", "to")
    subject = payload.get("subject")
    if subject is None:
        subject = ""
    if not isinstance(subject, str) or "\n" in subject or "\r" in subject:
        raise NormalizeError("subject must be a one-line string", "subject")
    text, html = payload.get("text"), payload.get("html")
    if text is not None and not isinstance(text, str):
        raise NormalizeError("text must be a string", "text")
    if html is not None and not isinstance(html, str):
        raise NormalizeError("html must be a string", "html")

    from_value = payload.get("from")
    if from_value:
        sender_header = _addresses({"from": [from_value]}, "from")[0]
    elif settings.from_name:
        sender_header = formataddr((settings.from_name, settings.from_address))
    else:
        sender_header = settings.from_address
    sender = parseaddr(sender_header)[1]

    if payload.get("message_id"):
        message_id = _msgid(payload["message_id"], "message_id")
    elif idempotency_key:
        message_id = message_id_for(idempotency_key, settings.msgid_domain)
    else:
        raise NormalizeError(
            "message_id is required (chosen before the first attempt)", "message_id"
        )

    msg = EmailMessage()
    msg["From"] = sender_header
    if to:
        msg["To"] = ", ".join(to)
    if cc:
        msg["Cc"] = ", ".join(cc)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(now or datetime.now(UTC))
    msg["Message-ID"] = message_id
    if payload.get("in_reply_to"):
        msg["In-Reply-To"] = _msgid(payload["in_reply_to"], "in_reply_to")
    refs = payload.get("references") or []
    if isinstance(refs, str):
        refs = refs.split()
    if refs:
        msg["References"] = " ".join(_msgid(r, "references") for r in refs)
    msg["MIME-Version"] = "1.0"
    headers = payload.get("headers") or {}
    if not isinstance(headers, Mapping):
        raise NormalizeError("headers must be an object", "headers")
    for name, value in headers.items():
        text_value = str(value)
        if not _HEADER_NAME.match(str(name)) or any(c in text_value for c in "\r\n"):
            raise NormalizeError(f"headers: invalid header {name!r}", "headers")
        msg[str(name)] = text_value

    if text is not None and html is not None:
        msg.set_content(text)
        msg.add_alternative(html, subtype="html")
    elif html is not None:
        msg.set_content(html, subtype="html")
    else:
        msg.set_content(text or "")

    for i, att in enumerate(payload.get("attachments") or []):
        field = f"attachments[{i}]"
        if not isinstance(att, Mapping) or not att.get("path"):
            raise NormalizeError(f"{field}: needs a 'path'", field)
        path = Path(str(att["path"]))
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise NormalizeError(f"{field}: cannot read {path}: {exc.strerror}", field) from None
        filename = str(att.get("filename") or path.name)
        guessed = mimetypes.guess_type(filename)[0]
        ctype = str(att.get("content_type") or guessed or "application/octet-stream")
        maintype, _, subtype = ctype.partition("/")
        if not subtype:
            maintype, subtype = "application", "octet-stream"
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)

    recipients = [parseaddr(a)[1] for a in (*to, *cc, *bcc)]
    recipients = list(dict.fromkeys(recipients))
    return BuiltMessage(msg, sender, recipients, message_id)
