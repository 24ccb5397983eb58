"""Handlers: messenger replies (``POST /messages``) and their status (``GET /messages/{id}``).

A reply goes by the messenger the client (or lead, or the deal's client) last wrote
from, Telegram or VK, through the outbox (``crm_core.services.outbound.send_message``).
Managers reply only in their own conversations (404 otherwise).  Files come in the JSON
body as base64 (sent as Telegram documents or VK message documents); they are stored
under ``attachments_dir/outgoing`` and the outbox command carries their paths.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import re
from pathlib import Path
from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.access import Actor
from crm_core.models import Interaction, OutboxCommand, User
from crm_core.services.common import Conflict, Invalid, NotFound
from crm_core.services.outbound import resolve_target, send_message
from gateway.api.common import actor, database, ok, path_id, read_body
from gateway.errors import ApiError
from gateway.keys import SETTINGS
from gateway.openapi import operation

__all__ = ["ROUTES", "MessageCreate", "MessageFile", "MessageOut", "MessageStatusOut"]

Id = Annotated[int, Field(ge=1)]
IDEMPOTENCY_HEADER = "Idempotency-Key"
CHANNELS = ("telegram", "vk")
_UNSAFE = re.compile(r"[^\w.\- ()]+", re.UNICODE)


class MessageFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filename: str = Field(min_length=1, max_length=200)
    content_base64: str = Field(min_length=1, description="the file's bytes, base64")


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


def _safe_name(name: str) -> str:
    base = Path(name.replace("\\", "/")).name.strip()
    return _UNSAFE.sub("_", base).strip("._ ")[:150] or "file"


def _decode(files: list[MessageFile]) -> list[tuple[str, bytes]]:
    out = []
    for i, f in enumerate(files):
        try:
            content = base64.b64decode(f.content_base64, validate=True)
        except (binascii.Error, ValueError):
            raise Invalid("not valid base64", f"files.{i}.content_base64") from None
        if not content:
            raise Invalid("the file is empty", f"files.{i}.content_base64")
        out.append((_safe_name(f.filename), content))
    return out


def _store(root: Path, files: list[tuple[str, bytes]]) -> list[str]:
    """Content-addressed: ``outgoing/<sha[:2]>/<sha>/<name>``; the same file is kept once."""
    paths = []
    for name, content in files:
        digest = hashlib.sha256(content).hexdigest()
        path = root / "outgoing" / digest[:2] / digest / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".part")
            tmp.write_bytes(content)
            tmp.replace(path)
        paths.append(str(path.resolve()))
    return paths


@operation(
    summary="Reply by Telegram or VK (the channel the client last wrote from) to a client, "
    "lead or deal; files as base64 (VK: sent as documents); header Idempotency-Key",
    tag="messages",
    body=MessageCreate,
    response=MessageOut,
    status=202,
    errors=(400, 401, 404, 409, 422),
)
async def create_message(request: web.Request) -> web.Response:
    body = await read_body(request, MessageCreate)
    who = actor(request)
    key = request.headers.get(IDEMPOTENCY_HEADER, "").strip() or None
    if key is not None and len(key) > 150:
        raise ApiError(422, f"{IDEMPOTENCY_HEADER} longer than 150 characters", "Idempotency-Key")
    files = _decode(body.files)
    async with database(request).transaction() as s:
        if key is not None:
            prev = await s.scalar(select(OutboxCommand).where(OutboxCommand.idempotency_key == key))
            if prev is not None:
                if prev.created_by != who.user_id or prev.channel not in CHANNELS:
                    raise Conflict(
                        f"{IDEMPOTENCY_HEADER} {key!r} is already used", "Idempotency-Key"
                    )
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
    from gateway.wiring import OUTBOX

    worker = request.app.get(OUTBOX)
    if worker is not None:
        worker.wake()
    return ok(out, 202)


async def _visible(s: AsyncSession, who: Actor, row: OutboxCommand) -> bool:
    if who.is_admin or row.created_by == who.user_id:
        return True
    if who.is_supervisor and who.team is not None and row.created_by is not None:
        creator = await s.get(User, row.created_by)
        return creator is not None and creator.team == who.team
    return False


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
        if row is None or row.channel not in CHANNELS or not await _visible(s, who, row):
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
