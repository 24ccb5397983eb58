"""Handlers: messenger replies (``POST /messages``) and their status (``GET /messages/{id}``).

A reply goes by the messenger the client (or lead, or the deal's client) last wrote
from, Telegram or VK, through the outbox (``crm_core.services.outbound.send_message``).
Managers reply only in their own conversations (404 otherwise).  Files come in the JSON
body as base64 (sent as Telegram documents or VK message documents); they are stored
under ``attachments_dir/outgoing`` and the outbox command carries their paths.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select

from crm_core.models import Interaction, OutboxCommand
from crm_core.services.common import Invalid, NotFound
from crm_core.services.outbound import resolve_target, send_message
from gateway.api.common import actor, database, ok, parse_body, path_id, read_capped
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
from gateway.keys import SETTINGS
from gateway.openapi import operation

__all__ = ["ROUTES", "MessageCreate", "MessageFile", "MessageOut", "MessageStatusOut"]

Id = Annotated[int, Field(ge=1, le=2**63 - 1)]  # BIGINT
CHANNELS = ("telegram", "vk")
MAX_FILE_BYTES = 20 * 2**20  # Telegram bots upload up to 50 MB, VK documents more
MAX_TOTAL_FILE_BYTES = MAX_FILE_BYTES  # all files of one reply together
# The JSON body carries the files as base64 (4/3 of their size) plus the text: its own
# limit, above the API's default (common.MAX_BODY_BYTES), so a 20 MiB file fits.
MAX_BODY_BYTES = 28 * 2**20
_BODY_NOTE = f": files up to {MAX_TOTAL_FILE_BYTES // 2**20} MiB in all"


class MessageFile(UploadedFile):
    """A file sent with a messenger reply."""


class MessageCreate(BaseModel):
    """A reply in a conversation: a client, lead or deal id, the text, optional files."""

    model_config = ConfigDict(extra="forbid")

    client_id: Id | None = None
    lead_id: Id | None = None
    deal_id: Id | None = None
    text: str = Field(min_length=1, max_length=4096)
    files: list[MessageFile] = Field(default_factory=list, max_length=10)

    @model_validator(mode="after")
    def _someone(self) -> MessageCreate:
        if not (self.client_id or self.lead_id or self.deal_id):
            raise ValueError("give one of client_id, lead_id, deal_id")
        if not self.text.strip():
            raise ValueError("text is empty")
        return self


class MessageOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outbox_id: int
    channel: str  # telegram | vk
    status: str  # pending | sending | sent | failed
    client_id: int | None
    lead_id: int | None
    deal_id: int | None


class MessageStatusOut(MessageOut):
    error: str | None
    attempts: int
    created_at: str
    sent_at: str | None
    interaction_id: int | None


def _out(row: OutboxCommand) -> dict[str, Any]:
    return {
        "outbox_id": row.id,
        "channel": row.channel,
        "status": row.status,
        "client_id": row.client_id,
        "lead_id": row.lead_id,
        "deal_id": row.deal_id,
    }


def _decode(files: list[MessageFile]) -> list[tuple[str, bytes]]:
    out = []
    total = 0
    for i, f in enumerate(files):
        content = decode_file(f.content_base64, f"files.{i}.content_base64", MAX_FILE_BYTES)
        total += len(content)
        if total > MAX_TOTAL_FILE_BYTES:
            raise Invalid(f"files larger than {MAX_TOTAL_FILE_BYTES // 2**20} MiB in all", "files")
        out.append((safe_name(f.filename), content))
    return out


def _store(root: Path, files: list[tuple[str, bytes]]) -> list[str]:
    return [str(store_outgoing(root, name, content)[0]) for name, content in files]


@operation(
    summary="Reply by Telegram or VK (the channel the client last wrote from) to a client, "
    "lead or deal; files as base64 (VK: sent as documents); header Idempotency-Key",
    tag="messages",
    body=MessageCreate,
    response=MessageOut,
    status=202,
    errors=(400, 401, 404, 409, 413, 422),
)
async def create_message(request: web.Request) -> web.Response:
    raw = await read_capped(request, MAX_BODY_BYTES, _BODY_NOTE)
    body = parse_body(raw, MessageCreate)
    who = actor(request)
    key = idempotency_key(request)
    files = _decode(body.files)
    async with database(request).transaction() as s:
        if (prev := await earlier_command(s, key, who, CHANNELS)) is not None:
            return ok(_out(prev), 202)
        target = await resolve_target(
            s, who, client_id=body.client_id, lead_id=body.lead_id, deal_id=body.deal_id
        )
        paths: list[str] = []
        if files:
            root = Path(request.app[SETTINGS].attachments_dir)
            paths = await asyncio.to_thread(_store, root, files)
        row = await send_message(
            s, who, target=target, text=body.text, files=paths or None, idempotency_key=key
        )
        out = _out(row)
    wake_outbox(request)
    return ok(out, 202)


@operation(
    summary="Status of a messenger reply (the outbox command and its timeline entry once sent)",
    tag="messages",
    response=MessageStatusOut,
)
async def get_message(request: web.Request) -> web.Response:
    outbox_id = path_id(request, "outbox_id")
    who = actor(request)
    async with database(request).sessions() as s:
        row = await s.get(OutboxCommand, outbox_id)
        if row is None or row.channel not in CHANNELS or not await visible_command(s, who, row):
            raise NotFound(f"message {outbox_id} not found", "outbox_id")
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


ROUTES = [
    ("POST", "/messages", create_message),
    ("GET", "/messages/{outbox_id}", get_message),
]
