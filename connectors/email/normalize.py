"""``parse_message``: raw RFC 5322 bytes in, :class:`InboundEvent` out (pure, no I/O).

Never raises for anything that is a mail message at all, however broken; raises
:class:`NormalizeError` only for input with no mail headers (empty, binary junk).
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from email.message import Message
from email.utils import parsedate_to_datetime
from typing import Any

from connectors.email.classify import classify
from connectors.email.html import html_to_text, sanitize_html
from connectors.email.parse_body import Body, bounce_details, complaint_details, walk_message
from connectors.email.parse_headers import (
    header_addresses,
    header_date,
    header_text,
    message_ids,
    normalize_message_id,
    normalize_subject,
    parse_subject_token,
    raw_header,
)
from connectors.email.parse_text import preview, signature_phones
from crm_core.events import (
    Channel,
    Classification,
    Direction,
    EventKind,
    InboundEvent,
    NormalizeError,
)
from crm_core.identity import IdentityError, normalize_email

__all__ = ["DEFAULT_MAX_ATTACHMENT_BYTES", "FAST_POLICY", "parse_message", "stable_digest"]

DEFAULT_MAX_ATTACHMENT_BYTES = 25 * 2**20
_MAIL_HEADERS = {
    "from", "to", "cc", "subject", "date", "message-id", "received", "return-path",
    "content-type", "mime-version", "sender", "reply-to", "in-reply-to", "references",
    "delivered-to", "x-original-to", "envelope-to", "bcc",
}  # fmt: skip
_BLANK_RUN = re.compile(r"\n[ \t\u200b]*(?:\n[ \t\u200b]*){2,}")
_DAEMONS = ("mailer-daemon", "postmaster", "mail-daemon", "maildaemon", "mailerdaemon")
_EMAIL_IN_NAME = re.compile(r"[^\s<>\"']+@[^\s<>\"']+\.[^\s<>\"']+")


class _RawHeaderPolicy(email.policy.EmailPolicy):
    """``policy.default`` settings, but header values come back as raw strings."""

    def header_fetch_parse(self, name: str, value: str) -> str:
        return re.sub(r"\r?\n[ \t]*", " ", value) if "\n" in value else value


FAST_POLICY = _RawHeaderPolicy()


_TRACE_HEADERS = (
    b"return-path:", b"delivered-to:", b"received:", b"x-original-to:", b"envelope-to:",
    b"x-envelope-to:", b"x-delivered-to:", b"x-uid:", b"status:", b"x-status:",
    b"x-keywords:", b"content-length:", b"lines:",
)  # fmt: skip


def stable_digest(raw: bytes) -> str:
    """SHA-256 of the message as its sender wrote it, for an id when Message-ID is missing.

    The same message must get the same id however it was delivered: line endings are
    made LF, an mbox ``From `` line and the trace headers a delivery prepends
    (Return-Path, Delivered-To, Received, ...) are dropped from the top, and trailing
    blank lines and line-end whitespace are ignored.
    """
    data = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    lines = data.split(b"\n")
    i = 0
    if lines and lines[0].startswith(b"From "):
        i = 1
    while i < len(lines):
        line = lines[i]
        if line[:1] in (b" ", b"\t") and i > 0:  # continuation of a dropped header
            i += 1
            continue
        if line.lower().startswith(_TRACE_HEADERS):
            i += 1
            continue
        break
    body = b"\n".join(ln.rstrip(b" \t") for ln in lines[i:]).rstrip(b"\n")
    return hashlib.sha256(body).hexdigest()


def _parse(raw: bytes) -> Message:
    try:
        return email.message_from_bytes(raw, policy=FAST_POLICY)
    except Exception:
        try:
            return email.message_from_bytes(raw, policy=email.policy.compat32)
        except Exception as exc:
            raise NormalizeError(f"not a parsable email message: {exc}", "raw") from None


def _is_mail(msg: Message) -> bool:
    return any(str(k).strip().lower() in _MAIL_HEADERS for k, _ in msg.raw_items())


def _received_date(msg: Message) -> datetime | None:
    for key, value in msg.raw_items():
        if key.lower() != "received":
            continue
        _, sep, tail = str(value).rpartition(";")
        if not sep:
            continue
        try:
            dt = parsedate_to_datetime(" ".join(tail.split()))
        except (TypeError, ValueError, IndexError, OverflowError):
            continue
        if dt is not None and 1970 <= dt.year <= 2200:
            return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
    return None


def _occurred_at(msg: Message, received_at: datetime | None) -> tuple[datetime, str]:
    dt = header_date(msg)
    if dt is not None:
        return dt, "date"
    if received_at is not None:
        return received_at, "received_at"
    dt = _received_date(msg)
    if dt is not None:
        return dt, "received_header"
    return datetime.now(UTC), "now"


def _defects(msg: Message, body: Body) -> dict[str, Any]:
    kinds = list(body.defects)
    return {"count": len(kinds), "kinds": sorted(set(kinds))[:10]}


def _safe_walk(msg: Message, raw: bytes, limit: int) -> tuple[Body, str | None]:
    try:
        return walk_message(msg, limit), None
    except Exception as exc:  # a parser bug must not lose the message
        body = Body()
        sep = b"\r\n\r\n" if b"\r\n\r\n" in raw else b"\n\n"
        rest = raw.partition(sep)[2]
        body.text_parts.append(rest.decode("utf-8", errors="replace")[:200_000])
        return body, f"{type(exc).__name__}: {exc}"[:300]


def parse_message(
    raw: bytes | bytearray | memoryview,
    *,
    mailbox: str | None = None,
    own_addresses: Iterable[str] = frozenset(),
    region: str = "RU",
    max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES,
    received_at: datetime | None = None,
) -> InboundEvent:
    """Parse one message.

    ``own_addresses``: our managers' addresses; a message From one of them is
    ``email_sent`` (outbound, identities are the recipients).  ``received_at``: the
    IMAP INTERNALDATE, used when the Date header is missing or invalid.
    """
    if isinstance(raw, bytearray | memoryview):
        raw = bytes(raw)
    if isinstance(raw, str):
        raw = raw.encode("utf-8", errors="surrogateescape")
    if not isinstance(raw, bytes):
        raise NormalizeError(f"message must be bytes, got {type(raw).__name__}", "raw")
    if not raw.strip():
        raise NormalizeError("message is empty", "raw")
    msg = _parse(raw)
    if not _is_mail(msg):
        raise NormalizeError("not an email message: no mail headers found", "raw")

    own = _normalize_own(own_addresses)
    meta: dict[str, Any] = {"mailbox": mailbox}

    message_id = normalize_message_id(raw_header(msg, "Message-ID"))
    external_id = message_id or "sha256:" + stable_digest(raw)
    meta["message_id"] = message_id

    senders, bad_from = header_addresses(msg, "From")
    if not senders:
        senders, _ = header_addresses(msg, "Sender")
    sender_name, sender = senders[0] if senders else ("", None)
    to, bad_to = header_addresses(msg, "To")
    cc, bad_cc = header_addresses(msg, "Cc")
    reply_to, _ = header_addresses(msg, "Reply-To")
    meta["from"] = sender
    meta["to"] = [a for _, a in to]
    meta["cc"] = [a for _, a in cc]
    if reply_to:
        meta["reply_to"] = [a for _, a in reply_to]
    malformed = bad_from + bad_to + bad_cc
    if malformed:
        meta["malformed_addresses"] = malformed[:20]
    named = _EMAIL_IN_NAME.findall(sender_name or "")
    if sender and named and any(n.lower().strip(".,;") != sender for n in named):
        meta["display_name_mismatch"] = True  # "support@bank <support@bank>" <attacker@evil>

    subject = header_text(msg, "Subject")
    token = parse_subject_token(subject)
    if token:
        meta["subject_token"] = token
    meta["thread_subject"] = normalize_subject(subject)

    in_reply_to = message_ids(raw_header(msg, "In-Reply-To"))
    refs = message_ids(raw_header(msg, "References"))
    thread_refs = list(dict.fromkeys(refs + in_reply_to))
    meta["in_reply_to"] = in_reply_to[0] if in_reply_to else None

    occurred_at, date_source = _occurred_at(msg, received_at)
    if date_source == "date":
        meta["date"] = occurred_at.isoformat()
    meta["date_source"] = date_source

    body, parse_error = _safe_walk(msg, raw, max_attachment_bytes)
    if parse_error:
        meta["parse_error"] = parse_error
    meta["defects"] = _defects(msg, body)

    html: str | None = None
    html_source = "\n".join(h for h in body.html_parts if h.strip())
    if html_source:
        cleaned = sanitize_html(html_source)
        html = cleaned.html
        if cleaned.remote_images_blocked:
            meta["remote_images_blocked"] = cleaned.remote_images_blocked
    text = "\n\n".join(t.strip("\r\n") for t in body.text_parts if t.strip())
    if not text and html_source:
        text = html_to_text(html_source)
    text = _BLANK_RUN.sub("\n\n", text.replace("\r\n", "\n").replace("\r", "\n"))

    verdict = classify(msg, from_address=sender, subject=subject, has_dsn=body.has_dsn)
    meta["classification_signals"] = list(verdict.signals)
    if verdict.classification is Classification.BOUNCE:
        details = bounce_details(body)
        meta["bounced_addresses"] = details["addresses"]
        meta["bounce_status"] = details["status"]
        if details["action"]:
            meta["bounce_action"] = details["action"]
        if details["original"]:
            meta["bounced_message_id"] = normalize_message_id(details["original"])

    if body.feedback_fields:
        arf = complaint_details(body)
        meta["feedback_type"] = arf["feedback_type"]
        meta["complaint_addresses"] = arf["addresses"]
        meta["complaint_tokens"] = arf["tokens"]
        if arf["original"]:
            meta["complaint_message_id"] = normalize_message_id(arf["original"])

    meta["preview"] = preview(text) if text else ""
    phones: list[str] = []
    sent = sender is not None and sender in own
    if verdict.classification is not Classification.BOUNCE and not sent and text:
        phones = signature_phones(text, region)
    meta["signature_phones"] = phones

    if body.oversized:
        meta["oversized_attachments"] = body.oversized
    if body.parts_skipped:
        meta["parts_skipped"] = body.parts_skipped

    identities: list[str] = []
    if sent:
        identities = [f"email:{a}" for _, a in to + cc if a not in own]
    else:
        if sender and sender.partition("@")[0] not in _DAEMONS:
            identities.append(f"email:{sender}")
        if verdict.classification is Classification.REGULAR:
            identities.extend(f"phone:{p}" for p in phones)

    return InboundEvent(
        channel=Channel.EMAIL,
        kind=EventKind.EMAIL_SENT if sent else EventKind.EMAIL_RECEIVED,
        external_id=external_id,
        occurred_at=occurred_at,
        identities=tuple(identities),
        display_name=sender_name or None,
        subject=subject,
        text=text or None,
        html=html,
        thread_refs=tuple(thread_refs),
        attachments=tuple(body.attachments),
        meta=meta,
        raw=raw,
        classification=verdict.classification,
        direction=Direction.OUTBOUND if sent else Direction.INBOUND,
        source=mailbox,
    )


def _normalize_own(addresses: Iterable[str]) -> frozenset[str]:
    out: set[str] = set()
    for a in addresses:
        if not isinstance(a, str) or not a.strip():
            continue
        try:
            out.add(normalize_email(a))
        except IdentityError:
            continue
    return frozenset(out)
