"""Handlers: sending email (``POST /emails``) and its status (``GET /emails/{outbox_id}``).

An email goes from a client, lead, deal or task (or as a reply to an email interaction)
through the outbox (``crm_core.services.outbound.send_email``) and the ``[smtp]`` relay;
it carries our Message-ID, In-Reply-To/References of the thread and the subject token,
and appears on the timeline once the server accepted it.  Managers send only for their
own clients (404 otherwise).  Attachments come base64 in the JSON body, size-limited,
stored content-addressed under ``attachments_dir/outgoing``; the command carries paths.
``GET /attachments/{id}`` serves a stored attachment as a download, never inline.
"""

from __future__ import annotations

import asyncio
import base64
import re
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select

from crm_core.access import visible_interactions
from crm_core.models import AttachmentRow, Interaction, OutboxCommand
from crm_core.services.common import Invalid, NotFound
from crm_core.services.outbound import resolve_target, send_email
from gateway.api.common import actor, database, ok, parse_body, path_id
from gateway.api.outgoing import (
    UploadedFile,
    decode_file,
    earlier_command,
    idempotency_key,
    safe_name,
    store_outgoing,
    visible_command,
    wake_outbox,
)
from gateway.errors import ApiError
from gateway.keys import SETTINGS
from gateway.openapi import operation

__all__ = [
    "MAX_ATTACHMENT_BYTES",
    "MAX_TOTAL_ATTACHMENT_BYTES",
    "ROUTES",
    "EmailAttachment",
    "EmailCreate",
    "EmailOut",
    "EmailStatusOut",
]

Id = Annotated[int, Field(ge=1, le=2**63 - 1)]  # BIGINT
MAX_ATTACHMENT_BYTES = 10 * 2**20
MAX_TOTAL_ATTACHMENT_BYTES = 20 * 2**20
# base64 grows by 4/3; plus the text, HTML and JSON around it
MAX_BODY_BYTES = MAX_TOTAL_ATTACHMENT_BYTES * 4 // 3 + 4 * 2**20
_CTYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$", re.IGNORECASE)
Address = Annotated[str, Field(min_length=3, max_length=320)]


class EmailAttachment(UploadedFile):
    content_type: str = Field(default="application/octet-stream", max_length=120)


class EmailCreate(BaseModel):
    """An email from a client, lead, deal or task, or a reply to an email interaction."""

    model_config = ConfigDict(extra="forbid")

    client_id: Id | None = None
    lead_id: Id | None = None
    deal_id: Id | None = None
    task_id: Id | None = None
    reply_to: Id | None = Field(default=None, description="the interaction id answered")
    to: list[Address] = Field(default_factory=list, max_length=50)
    cc: list[Address] = Field(default_factory=list, max_length=50)
    subject: str = Field(default="", max_length=900)
    text: str | None = Field(default=None, max_length=1_000_000)
    html: str | None = Field(default=None, max_length=2_000_000)
    attachments: list[EmailAttachment] = Field(default_factory=list, max_length=20)

    @model_validator(mode="after")
    def _complete(self) -> EmailCreate:
        if not (self.client_id or self.lead_id or self.deal_id or self.task_id or self.reply_to):
            raise ValueError("give one of client_id, lead_id, deal_id, task_id, reply_to")
        if not ((self.text or "").strip() or (self.html or "").strip()):
            raise ValueError("an email needs text or html")
        if "\n" in self.subject or "\r" in self.subject:
            raise ValueError("subject must be one line")
        return self


class EmailOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outbox_id: int
    message_id: str | None  # <...@domain>
    status: str  # pending | sending | sent | failed
    subject: str | None
    to: list[str]
    client_id: int | None
    lead_id: int | None
    deal_id: int | None


class EmailStatusOut(EmailOut):
    error: str | None
    attempts: int
    created_at: str
    sent_at: str | None
    interaction_id: int | None


def _out(row: OutboxCommand) -> dict[str, Any]:
    p = row.payload or {}
    return {
        "outbox_id": row.id,
        "message_id": p.get("message_id"),
        "status": row.status,
        "subject": p.get("subject"),
        "to": list(p.get("to") or []),
        "client_id": row.client_id,
        "lead_id": row.lead_id,
        "deal_id": row.deal_id,
    }


def _decode(items: list[EmailAttachment]) -> list[tuple[str, str, bytes]]:
    out: list[tuple[str, str, bytes]] = []
    total = 0
    for i, a in enumerate(items):
        field = f"attachments.{i}.content_base64"
        content = decode_file(a.content_base64, field, MAX_ATTACHMENT_BYTES)
        total += len(content)
        if total > MAX_TOTAL_ATTACHMENT_BYTES:
            raise Invalid(
                f"attachments larger than {MAX_TOTAL_ATTACHMENT_BYTES // 2**20} MiB in all",
                "attachments",
            )
        ctype = a.content_type.strip().lower() or "application/octet-stream"
        if not _CTYPE.match(ctype):
            where = f"attachments.{i}.content_type"
            raise Invalid(f"not a content type: {a.content_type!r}", where)
        out.append((safe_name(a.filename), ctype, content))
    return out


def _store(root: Path, files: list[tuple[str, str, bytes]]) -> list[dict[str, Any]]:
    """Content-addressed: ``outgoing/<sha[:2]>/<sha>/<name>``; the same file is kept once."""
    out = []
    for name, ctype, content in files:
        path, digest = store_outgoing(root, name, content)
        out.append(
            {
                "path": str(path),
                "filename": name,
                "content_type": ctype,
                "size": len(content),
                "sha256": digest,
            }
        )
    return out


async def _read(request: web.Request) -> EmailCreate:
    """The JSON body, with a limit of its own (attachments exceed the app-wide one)."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise ApiError(413, f"the body is larger than {MAX_BODY_BYTES // 2**20} MiB")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ApiError(413, f"the body is larger than {MAX_BODY_BYTES // 2**20} MiB")
        chunks.append(chunk)
    return parse_body(b"".join(chunks), EmailCreate)


@operation(
    summary="Send an email from a client, lead, deal or task, or reply to an email "
    "interaction (threading headers and subject token set); attachments as base64; "
    "header Idempotency-Key; 503 when no [smtp] relay is configured",
    tag="emails",
    body=EmailCreate,
    response=EmailOut,
    status=202,
    errors=(400, 401, 404, 409, 413, 422, 503),
)
async def create_email(request: web.Request) -> web.Response:
    smtp = request.app[SETTINGS].smtp
    if smtp is None:
        raise ApiError(503, "email sending is not configured: add an [smtp] section", "smtp")
    body = await _read(request)
    who = actor(request)
    key = idempotency_key(request)
    files = _decode(body.attachments)
    async with database(request).transaction() as s:
        if (prev := await earlier_command(s, key, who, ("email",))) is not None:
            return ok(_out(prev), 202)
        target = await resolve_target(
            s,
            who,
            client_id=body.client_id,
            lead_id=body.lead_id,
            deal_id=body.deal_id,
            task_id=body.task_id,
        )
        stored: list[dict[str, Any]] = []
        if files:
            root = Path(request.app[SETTINGS].attachments_dir)
            stored = await asyncio.to_thread(_store, root, files)
        row = await send_email(
            s,
            who,
            target=target,
            to=body.to,
            cc=body.cc,
            subject=body.subject,
            text=body.text,
            html=body.html,
            reply_to=body.reply_to,
            attachments=stored,
            from_address=smtp.from_address,
            idempotency_key=key,
        )
        out = _out(row)
    wake_outbox(request)
    return ok(out, 202)


@operation(
    summary="Status of a sent email (the outbox command, the server's error, and its "
    "timeline entry once accepted)",
    tag="emails",
    response=EmailStatusOut,
)
async def get_email(request: web.Request) -> web.Response:
    outbox_id = path_id(request, "outbox_id")
    who = actor(request)
    async with database(request).sessions() as s:
        row = await s.get(OutboxCommand, outbox_id)
        if row is None or row.channel != "email" or not await visible_command(s, who, row):
            raise NotFound(f"email {outbox_id} not found", "outbox_id")
        inter = await s.scalar(select(Interaction.id).where(Interaction.outbox_id == row.id))
        out = {
            **_out(row),
            "error": row.last_error,
            "attempts": row.attempts,
            "created_at": row.created_at.isoformat(),
            "sent_at": row.sent_at.isoformat() if row.sent_at else None,
            "interaction_id": inter,
        }
    return ok(out)


@operation(
    summary="Download an attachment of an interaction you may see: always as a download "
    "(Content-Disposition: attachment, application/octet-stream, nosniff, sandboxed), "
    "never rendered inline",
    tag="emails",
    errors=(401, 404),
)
async def get_attachment(request: web.Request) -> web.StreamResponse:
    att_id = path_id(request, "attachment_id")
    who = actor(request)
    async with database(request).sessions() as s:
        row = await s.scalar(
            select(AttachmentRow)
            .join(Interaction, Interaction.id == AttachmentRow.interaction_id)
            .where(AttachmentRow.id == att_id, visible_interactions(who))
        )
        if row is None or not row.path:
            raise NotFound(f"attachment {att_id} not found", "attachment_id")
        path, name, digest = Path(row.path), row.filename, row.sha256
    if not await asyncio.to_thread(path.is_file):
        raise NotFound(f"attachment {att_id} is not stored", "attachment_id")
    ascii_name = safe_name(name).encode("ascii", "replace").decode().replace("?", "_")
    headers = {
        "Content-Type": "application/octet-stream",
        "Content-Disposition": f'attachment; filename="{ascii_name}"; '
        f"filename*=UTF-8''{quote(name, safe='')}",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox; default-src 'none'",
        "Cache-Control": "private, no-store",
    }
    if digest:
        headers["Digest"] = "sha-256=" + base64.b64encode(bytes.fromhex(digest)).decode()
    return web.FileResponse(path, headers=headers)


ROUTES = [
    ("POST", "/emails", create_email),
    ("GET", "/emails/{outbox_id}", get_email),
    ("GET", "/attachments/{attachment_id}", get_attachment),
]
