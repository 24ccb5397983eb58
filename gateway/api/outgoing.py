"""What the three outgoing endpoints share (``POST /calls``, ``/emails``, ``/messages``):
the ``Idempotency-Key`` header, finding the command an earlier request with that key
created, who may see a command, waking the outbox worker, and storing uploaded files
content-addressed under ``attachments_dir/outgoing``."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Container
from pathlib import Path

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.access import Actor
from crm_core.files import write_durable
from crm_core.models import OutboxCommand, User
from crm_core.services.common import Conflict, Invalid
from gateway.errors import ApiError

__all__ = [
    "IDEMPOTENCY_HEADER",
    "UploadedFile",
    "decode_file",
    "earlier_command",
    "idempotency_key",
    "safe_name",
    "store_outgoing",
    "visible_command",
    "wake_outbox",
]

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_KEY = 128
# A key travels into AMI actions (ActionID, channel variables) and SMTP/messenger ids:
# only a safe token, never commas, semicolons, spaces or line breaks.
_KEY = re.compile(rf"[A-Za-z0-9._:-]{{1,{MAX_KEY}}}")
_UNSAFE = re.compile(r"[^\w.\- ()]+", re.UNICODE)


class UploadedFile(BaseModel):
    """A file in a JSON request body."""

    model_config = ConfigDict(extra="forbid")

    filename: str = Field(min_length=1, max_length=200)
    content_base64: str = Field(min_length=1, description="the file's bytes, base64")


def idempotency_key(request: web.Request) -> str | None:
    """The request's ``Idempotency-Key`` (None when absent); 400 unless it is a safe
    token of 1-128 characters ``A-Z a-z 0-9 . _ : -``."""
    key = request.headers.get(IDEMPOTENCY_HEADER, "").strip() or None
    if key is not None and not _KEY.fullmatch(key):
        raise ApiError(
            400,
            f"{IDEMPOTENCY_HEADER} must be 1-{MAX_KEY} characters of A-Z a-z 0-9 . _ : -",
            IDEMPOTENCY_HEADER,
        )
    return key


async def earlier_command(
    s: AsyncSession, key: str | None, who: Actor, channels: Container[str]
) -> OutboxCommand | None:
    """The command an earlier request with the same key created (answer it again), or
    None; 409 when the key was used by someone else or for another kind of command."""
    if key is None:
        return None
    prev = await s.scalar(select(OutboxCommand).where(OutboxCommand.idempotency_key == key))
    if prev is None:
        return None
    if prev.created_by != who.user_id or prev.channel not in channels:
        raise Conflict(f"{IDEMPOTENCY_HEADER} {key!r} is already used", IDEMPOTENCY_HEADER)
    return prev


async def visible_command(s: AsyncSession, who: Actor, row: OutboxCommand) -> bool:
    """Admins see every command, supervisors their team's, others their own."""
    if who.is_admin or row.created_by == who.user_id:
        return True
    if who.is_supervisor and who.team is not None and row.created_by is not None:
        creator = await s.get(User, row.created_by)
        return creator is not None and creator.team == who.team
    return False


def wake_outbox(request: web.Request) -> None:
    from gateway.wiring import OUTBOX  # the wiring imports the API: import late

    worker = request.app.get(OUTBOX)
    if worker is not None:
        worker.wake()


def decode_file(content_base64: str, field: str, max_bytes: int) -> bytes:
    """An uploaded file's base64 -> its bytes; 422 naming ``field`` when it is not base64,
    empty, or larger than ``max_bytes`` (checked before decoding, too)."""
    too_big = Invalid(f"larger than {max_bytes // 2**20} MiB", field)
    if len(content_base64) > max_bytes * 4 // 3 + 8:
        raise too_big
    try:
        content = base64.b64decode(content_base64, validate=True)
    except (binascii.Error, ValueError):
        raise Invalid("not valid base64", field) from None
    if not content:
        raise Invalid("the file is empty", field)
    if len(content) > max_bytes:
        raise too_big
    return content


def safe_name(name: str) -> str:
    """A file name from a client, reduced to a safe base name (never a path)."""
    base = Path(name.replace("\\", "/")).name.strip()
    return _UNSAFE.sub("_", base).strip("._ ")[:150] or "file"


def store_outgoing(root: Path, name: str, content: bytes) -> tuple[Path, str]:
    """``outgoing/<sha[:2]>/<sha>/<name>``: the same file is kept once.  Returns the
    resolved path and the SHA-256.  Blocking: run it in a thread."""
    digest = hashlib.sha256(content).hexdigest()
    path = root / "outgoing" / digest[:2] / digest / name
    write_durable(path, content)  # fsynced with its directories before the row commits
    return path.resolve(), digest
