"""The MIME walk: body text and HTML, attachments, delivery-status reports (pure)."""

from __future__ import annotations

import hashlib
import mimetypes
import re
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

from connectors.email.parse_headers import decode_bytes, decode_header_text, raw_header
from crm_core.events import Attachment
from crm_core.identity import IdentityError, normalize_email

__all__ = ["Body", "bounce_details", "complaint_details", "walk_message"]

MAX_DEPTH = 30
MAX_PARTS = 500
MAX_TEXT_CHARS = 2_000_000
_REPORT_PARTS = {
    "message/feedback-report",
    "message/delivery-status",
    "message/global-delivery-status",
    "message/disposition-notification",
    "text/rfc822-headers",
    "message/rfc822-headers",
    "message/global-headers",
}
_EXT_FALLBACK = {
    "message/rfc822": ".eml",
    "text/plain": ".txt",
    "text/html": ".html",
    "image/jpeg": ".jpg",
    "application/octet-stream": ".bin",
}


@dataclass
class Body:
    text_parts: list[str] = field(default_factory=list)
    html_parts: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    oversized: list[str] = field(default_factory=list)
    dsn_fields: list[dict[str, str]] = field(default_factory=list)
    feedback_fields: list[dict[str, str]] = field(default_factory=list)  # ARF (RFC 5965)
    returned_headers: list[str] = field(default_factory=list)
    has_dsn: bool = False
    defects: list[str] = field(default_factory=list)
    parts_skipped: int = 0


def _content_type(part: Message) -> str:
    try:
        return part.get_content_type().lower()
    except Exception:
        return "application/octet-stream"


def _disposition(part: Message) -> str:
    raw = raw_header(part, "Content-Disposition") or ""
    return raw.split(";", 1)[0].strip().lower()


def _filename(part: Message) -> str:
    try:
        name = part.get_filename()
    except Exception:
        name = None
    if not name:
        try:
            name = part.get_param("name", header="content-type")  # type: ignore[assignment]
            if isinstance(name, tuple):
                name = decode_bytes(str(name[2]).encode("latin-1", "replace"), name[0])
        except Exception:
            name = None
    if not name:
        return ""
    name = decode_header_text(str(name))
    name = re.sub(r"[\\/]", "_", name)
    name = re.sub(r"[\x00-\x1f\x7f]", "", name).strip().strip(".") or ""
    if len(name) > 200:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: 200 - len(ext) - 1] + "." + ext) if dot and len(ext) < 12 else name[:200]
    return name


def _as_bytes(msg: Message) -> bytes:
    try:
        return msg.as_bytes()
    except Exception:
        try:
            return msg.as_string().encode("utf-8", "surrogateescape")
        except Exception:
            return b""


def _payload_bytes(part: Message) -> bytes:
    raw = part.get_payload()
    if isinstance(raw, list):  # message/* parts hold sub-messages
        return b"\n".join(_as_bytes(m) for m in raw if isinstance(m, Message))
    try:
        data = part.get_payload(decode=True)
    except Exception:
        data = None
    if isinstance(data, bytes):
        return data
    if isinstance(raw, str):
        return raw.encode("utf-8", errors="surrogateescape")
    return b""


def _generated_name(n: int, ctype: str) -> str:
    ext = _EXT_FALLBACK.get(ctype) or mimetypes.guess_extension(ctype, strict=False) or ".bin"
    return f"attachment-{n}{ext}"


def _dsn_blocks(part: Message) -> list[dict[str, str]]:
    blocks: list[dict[str, str]] = []
    payload = part.get_payload()
    if isinstance(payload, list):
        for sub in payload:
            if isinstance(sub, Message):
                blocks.append({k.lower(): str(v).strip() for k, v in sub.raw_items()})
        if any("final-recipient" in b or "original-recipient" in b for b in blocks):
            return blocks
    text = _payload_bytes(part).decode("utf-8", errors="replace")
    block: dict[str, str] = {}
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z-]+):\s*(.*)$", line)
        if m:
            block[m.group(1).lower()] = m.group(2).strip()
        elif not line.strip() and block:
            blocks.append(block)
            block = {}
    if block:
        blocks.append(block)
    return blocks


class _Walker:
    def __init__(self, max_attachment_bytes: int) -> None:
        self.body = Body()
        self.max_bytes = max_attachment_bytes
        self.count = 0
        self.in_report = False

    def walk(self, part: Message, depth: int = 0) -> None:
        self.count += 1
        if self.count > MAX_PARTS or depth > MAX_DEPTH:
            self.body.parts_skipped += 1
            return
        self.body.defects.extend(type(d).__name__ for d in getattr(part, "defects", ()))
        ctype = _content_type(part)
        if ctype.startswith("multipart/"):
            if ctype == "multipart/report":
                self.in_report = True
            payload = part.get_payload()
            if isinstance(payload, list):
                for sub in payload:
                    if isinstance(sub, Message):
                        self.walk(sub, depth + 1)
            elif isinstance(payload, str) and payload.strip():
                # A multipart without parts (missing boundary): read it as text.
                self.body.text_parts.append(decode_bytes(_payload_bytes(part), None))
            return
        self.leaf(part, ctype)

    def leaf(self, part: Message, ctype: str) -> None:
        disp = _disposition(part)
        name = _filename(part)
        if ctype in ("message/delivery-status", "message/global-delivery-status"):
            self.body.has_dsn = True
            self.body.dsn_fields.extend(_dsn_blocks(part))
        if ctype == "message/feedback-report" and self.in_report:
            self.body.feedback_fields.extend(_dsn_blocks(part))
        if ctype in ("text/rfc822-headers", "message/rfc822-headers", "message/rfc822"):
            if self.in_report:
                self.body.returned_headers.append(
                    _payload_bytes(part)[:20_000].decode("utf-8", "replace")
                    if ctype != "message/rfc822"
                    else _rfc822_text(part)
                )
        if ctype in ("text/plain", "text/html") and disp != "attachment" and not name:
            charset = None
            try:
                charset = part.get_content_charset()
            except Exception:
                charset = None
            text = decode_bytes(_payload_bytes(part), charset)[:MAX_TEXT_CHARS]
            (self.body.text_parts if ctype == "text/plain" else self.body.html_parts).append(text)
            return
        if not name and (ctype in _REPORT_PARTS or (self.in_report and ctype == "message/rfc822")):
            return  # machinery of a delivery report, summarized in meta
        self.attachment(part, ctype, disp, name)

    def attachment(self, part: Message, ctype: str, disp: str, name: str) -> None:
        if ctype == "message/rfc822":
            data = _rfc822_bytes(part)
        else:
            data = _payload_bytes(part)
        if not name:
            name = _generated_name(len(self.body.attachments) + 1, ctype)
        cid_raw = raw_header(part, "Content-ID")
        cid = cid_raw.strip().strip("<>").strip() if cid_raw else None
        inline = disp == "inline" or (bool(cid) and disp != "attachment")
        keep = len(data) <= self.max_bytes
        if not keep:
            self.body.oversized.append(name)
        self.body.attachments.append(
            Attachment(
                filename=name,
                content_type=ctype,
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                content_id=cid or None,
                inline=inline,
                content=data if keep else None,
            )
        )


def _rfc822_bytes(part: Message) -> bytes:
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        return _as_bytes(payload[0])
    return _payload_bytes(part)


def _rfc822_text(part: Message) -> str:
    return _rfc822_bytes(part)[:20_000].decode("utf-8", "replace")


def walk_message(msg: Message, max_attachment_bytes: int) -> Body:
    walker = _Walker(max_attachment_bytes)
    walker.walk(msg)
    return walker.body


def bounce_details(body: Body) -> dict[str, Any]:
    """Bounced addresses, status and the returned message's Message-ID from a DSN."""
    addresses: list[str] = []
    status: str | None = None
    action: str | None = None
    for block in body.dsn_fields:
        for key in ("final-recipient", "original-recipient"):
            value = block.get(key)
            if not value:
                continue
            addr = value.split(";", 1)[-1].strip().strip("<>")
            try:
                norm = normalize_email(addr)
            except IdentityError:
                continue
            if norm not in addresses:
                addresses.append(norm)
        if status is None and block.get("status"):
            status = block["status"].split()[0]
        if action is None and block.get("action"):
            action = block["action"].split()[0].lower()
    original: str | None = None
    for text in body.returned_headers:
        m = re.search(r"^Message-ID:\s*(<[^>\r\n]+>)", text, re.IGNORECASE | re.MULTILINE)
        if m:
            original = m.group(1)
            break
    return {"addresses": addresses, "status": status, "action": action, "original": original}


# The link of a crmhub unsubscribe token in a returned message's List-Unsubscribe header.
_UNSUB_TOKEN = re.compile(r"/u/([0-9A-Za-z_-]+\.[0-9A-Za-z_-]+\.[0-9]*\.[0-9A-Za-z_-]+)")


def complaint_details(body: Body) -> dict[str, Any]:
    """An ARF feedback report (RFC 5965, a mail provider's "this is spam" report): its
    ``feedback-type``, the complained recipients (``Original-Rcpt-To``), the returned
    message's Message-ID and the unsubscribe tokens of its ``List-Unsubscribe`` header
    (signed by crmhub: the pipeline trusts an address only through a valid token)."""
    feedback_type: str | None = None
    addresses: list[str] = []
    for block in body.feedback_fields:
        if feedback_type is None and block.get("feedback-type"):
            feedback_type = block["feedback-type"].split()[0].lower()[:40]
        value = block.get("original-rcpt-to")
        if value:
            try:
                norm = normalize_email(value.strip().strip("<>"))
            except IdentityError:
                continue
            if norm not in addresses:
                addresses.append(norm)
    original: str | None = None
    tokens: list[str] = []
    for text in body.returned_headers:
        head = text.split("\n\n", 1)[0].split("\r\n\r\n", 1)[0]
        if original is None:
            m = re.search(r"^Message-ID:\s*(<[^>\r\n]+>)", head, re.IGNORECASE | re.MULTILINE)
            original = m.group(1) if m else None
        # the header, unfolded (a long List-Unsubscribe is folded over lines)
        m = re.search(
            r"^List-Unsubscribe:(.*(?:\r?\n[ \t].*)*)", head, re.IGNORECASE | re.MULTILINE
        )
        if m:
            for token in _UNSUB_TOKEN.findall(re.sub(r"\r?\n[ \t]+", "", m.group(1))):
                if token not in tokens and len(tokens) < 5:
                    tokens.append(token)
    return {
        "feedback_type": feedback_type,
        "addresses": addresses[:20],
        "original": original,
        "tokens": tokens,
    }
