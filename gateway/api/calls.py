"""Handlers: click-to-call (``POST /calls``) and its status (``GET /calls/{outbox_id}``).

The call is an outbox command (``channel=call``, kind ``originate``): the caller's
extension rings first, then the client's number.  Access checks live in
``crm_core.services.outbound.start_call`` (a manager may call only their own clients:
404; a user without an extension: 422 naming ``extension``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.models import Interaction, OutboxCommand
from crm_core.services.common import Invalid, NotFound
from crm_core.services.outbound import resolve_target, start_call
from crm_core.services.timeline import recording_href
from gateway.api.common import actor, database, ok, path_id, read_body
from gateway.api.outgoing import earlier_command, idempotency_key, visible_command, wake_outbox
from gateway.keys import SETTINGS
from gateway.openapi import operation

__all__ = ["ROUTES", "CallCreate", "CallOut", "CallStatusOut"]

Id = Annotated[int, Field(ge=1, le=2**63 - 1)]  # BIGINT


class CallCreate(BaseModel):
    """Who to call: a ``number`` (any spelling) or a client, lead, deal or task id."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    number: str | None = Field(None, min_length=1, max_length=200)
    client_id: Id | None = None
    lead_id: Id | None = None
    deal_id: Id | None = None
    task_id: Id | None = None
    pbx: str | None = Field(None, min_length=1, max_length=64, description="PBX name")

    @model_validator(mode="after")
    def _something_to_call(self) -> CallCreate:
        if not (self.number or self.client_id or self.lead_id or self.deal_id or self.task_id):
            raise ValueError("give `number` or one of client_id, lead_id, deal_id, task_id")
        return self


class CallOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    call_id: str
    outbox_id: int
    status: str  # pending | sending | sent | failed


class CallResultOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    interaction_id: int
    outcome: str | None
    ring_seconds: int | None
    talk_seconds: int | None
    recording_url: str | None
    recording_href: str | None


class CallStatusOut(CallOut):
    number: str | None
    extension: str | None
    pbx: str | None
    error: str | None
    attempts: int
    client_id: int | None
    lead_id: int | None
    deal_id: int | None
    created_at: str
    sent_at: str | None
    result: CallResultOut | None = None


def _out(row: OutboxCommand) -> dict[str, Any]:
    return {
        "call_id": str(row.payload.get("crm_call_id") or row.idempotency_key),
        "outbox_id": row.id,
        "status": row.status,
    }


def _pbx(request: web.Request, name: str | None) -> None:
    names = [p.name for p in request.app[SETTINGS].asterisk]
    if not names:
        raise Invalid("no PBX is configured ([[asterisk]] settings)", "pbx")
    if name is not None and name not in names:
        raise Invalid(f"no PBX named {name!r}; configured: {', '.join(names)}", "pbx")


@operation(
    summary="Click-to-call: ring the caller's extension, then the client "
    "(number, or a client, lead, deal or task id; header Idempotency-Key)",
    tag="calls",
    body=CallCreate,
    response=CallOut,
    status=202,
    errors=(400, 401, 404, 409, 422),
)
async def create_call(request: web.Request) -> web.Response:
    body = await read_body(request, CallCreate)
    who = actor(request)
    key = idempotency_key(request)
    settings = request.app[SETTINGS]
    _pbx(request, body.pbx)
    async with database(request).transaction() as s:
        if (prev := await earlier_command(s, key, who, ("call",))) is not None:
            return ok(_out(prev), 202)
        target = await resolve_target(
            s,
            who,
            client_id=body.client_id,
            lead_id=body.lead_id,
            deal_id=body.deal_id,
            task_id=body.task_id,
        )
        row = await start_call(
            s,
            who,
            number=body.number,
            target=target,
            idempotency_key=key,
            pbx=body.pbx,
            region=settings.region,
        )
        out = _out(row)
    wake_outbox(request)
    return ok(out, 202)


async def _result(s: AsyncSession, row: OutboxCommand) -> dict[str, Any] | None:
    """The call's ``call_ended`` interaction: logged by the call tracking (its meta
    carries our call id) or by the outbox when the call could not be placed."""
    call_id = str(row.payload.get("crm_call_id") or row.idempotency_key)
    links = [Interaction.outbox_id == row.id]
    for col, value in (
        (Interaction.deal_id, row.deal_id),
        (Interaction.lead_id, row.lead_id),
        (Interaction.client_id, row.client_id),
        (Interaction.user_id, row.created_by),
    ):
        if value is not None:
            links.append(col == value)
    rows = await s.scalars(
        select(Interaction)
        .where(
            or_(*links),
            Interaction.channel == "call",
            Interaction.kind == "call_ended",
            Interaction.occurred_at >= row.created_at - timedelta(hours=1),  # PBX clock skew
        )
        .order_by(Interaction.id.desc())
        .limit(50)
    )
    for i in rows:
        if i.outbox_id == row.id or (i.meta or {}).get("crm_call_id") == call_id:
            return {
                "interaction_id": i.id,
                "outcome": i.outcome,
                "ring_seconds": i.ring_s,
                "talk_seconds": i.duration_s,
                "recording_url": i.recording_url,
                "recording_href": recording_href(i),
            }
    return None


@operation(
    summary="Status of a click-to-call (the outbox command and, once known, the call's outcome)",
    tag="calls",
    response=CallStatusOut,
)
async def get_call(request: web.Request) -> web.Response:
    outbox_id = path_id(request, "outbox_id")
    who = actor(request)
    async with database(request).sessions() as s:
        row = await s.get(OutboxCommand, outbox_id)
        if row is None or row.channel != "call" or not await visible_command(s, who, row):
            raise NotFound(f"call {outbox_id} not found", "outbox_id")
        p = row.payload
        out = {
            **_out(row),
            "number": p.get("number"),
            "extension": p.get("extension"),
            "pbx": p.get("pbx"),
            "error": row.last_error,
            "attempts": row.attempts,
            "client_id": row.client_id,
            "lead_id": row.lead_id,
            "deal_id": row.deal_id,
            "created_at": row.created_at.isoformat(),
            "sent_at": row.sent_at.isoformat() if row.sent_at else None,
            "result": await _result(s, row),
        }
    return ok(out)


ROUTES = [
    ("POST", "/calls", create_call),
    ("GET", "/calls/{outbox_id}", get_call),
]
