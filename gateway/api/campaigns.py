"""Handlers: campaigns (``/campaigns``): create and edit drafts, the audience count,
preview, a test send to yourself, start / pause / resume / cancel, the recipient list.

Sending runs in the background (``crm_core.campaigns.CampaignRunner``); the SMTP side
is ``connectors.email.CampaignSmtp``.  Both are set up in ``gateway.wiring``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field

from crm_core.campaigns import CampaignRunner, CampaignTransport, test_send
from crm_core.services import campaigns as svc
from crm_core.services.common import Invalid, jsonable
from gateway.api.common import actor, database, ok, path_id, read_body, read_query
from gateway.api.schemas import Empty, Id, PageQuery, Strict
from gateway.keys import SETTINGS
from gateway.openapi import operation

__all__ = ["CAMPAIGN_RUNNER", "CAMPAIGN_TRANSPORT", "ROUTES", "policy_of"]

CAMPAIGN_RUNNER = web.AppKey("campaign_runner", CampaignRunner)
CAMPAIGN_TRANSPORT = web.AppKey("campaign_transport", CampaignTransport)
W = (400, 401, 403, 404, 409, 422)
Ids = Field(None, max_length=svc.MAX_IDS)


class _Audience(Strict):
    segment_ids: list[Id] | None = Ids
    filter: dict[str, Any] | None = Field(
        None, description="the clients list's filters (as GET /clients takes them)"
    )
    client_ids: list[Id] | None = Ids
    exclude_segment_ids: list[Id] | None = Ids
    exclude_client_ids: list[Id] | None = Ids
    exclude_contacted_days: int | None = Field(None, ge=1, le=3650)
    addresses: Literal["primary", "all", "contacts"] | None = None
    positions: list[str] | None = Field(
        None, max_length=50, description="contacts: contact persons whose position contains one"
    )
    smtp_account: str | None = Field(None, max_length=100)
    send_at: datetime | None = Field(None, description="ISO time with zone; none: at start")


class CampaignCreate(_Audience):
    name: str = Field(min_length=1, max_length=200)
    subject: str = Field(max_length=2000)
    html: str = Field("", max_length=200_000, description="HTML template (html or text)")
    text: str = Field("", max_length=200_000, description="plain text template")


class CampaignPatch(_Audience):
    name: str | None = Field(None, min_length=1, max_length=200)
    subject: str | None = Field(None, max_length=2000)
    html: str | None = Field(None, max_length=200_000)
    text: str | None = Field(None, max_length=200_000)


class PreviewIn(Strict):
    client_id: Id
    contact_person_id: Id | None = None


class TestIn(Strict):
    client_id: Id | None = Field(None, description="whose data fills the templates")
    to: str | None = Field(None, max_length=320, description="default: your own address")


class CampaignOut(BaseModel):
    id: int
    name: str
    status: str
    subject: str
    html: str
    text: str
    segment_ids: list[int] | None
    filter: dict[str, Any] | None
    client_ids: list[int] | None
    exclude_segment_ids: list[int] | None
    exclude_client_ids: list[int] | None
    exclude_contacted_days: int | None
    addresses: str | None
    positions: list[str] | None
    smtp_account: str
    send_at: str | None
    created_by: int | None
    started_by: int | None
    total: int
    counts: dict[str, int] = Field(description="recipients per status")
    error: str | None
    created_at: str | None
    started_at: str | None
    finished_at: str | None


class ListIn(PageQuery):
    status: Literal["draft", "scheduled", "sending", "paused", "cancelled", "done"] | None = None


class RecipientsIn(PageQuery):
    status: (
        Literal[
            "pending",
            "sending",
            "sent",
            "failed",
            "bounced",
            "unsubscribed",
            "replied",
            "suppressed",
            "unknown",
        ]
        | None
    ) = None


class RecipientOut(BaseModel):
    id: int
    client_id: int | None
    contact_person_id: int | None
    email: str
    status: str
    error: str | None
    attempts: int
    message_id: str | None
    interaction_id: int | None
    sent_at: str | None
    updated_at: str | None


class AudienceOut(BaseModel):
    clients: int
    addresses: int = Field(description="messages the campaign would send (one per address)")
    suppressed: int


class PreviewOut(BaseModel):
    email: str | None
    subject: str
    html: str
    text: str


def _filters(raw: dict[str, Any]) -> dict[str, Any]:
    """The clients list's filters, checked and parsed as ``GET /clients`` takes them,
    JSON-ready for storage (the service applies the list's own conditions)."""
    from gateway.api.schemas import ClientListQuery

    flt = ClientListQuery.model_validate(raw).to_filter()
    values: dict[str, Any] = {
        "q": flt.q,
        "status": flt.status,
        "owner_id": flt.owner_id,
        "phone": flt.phone,
        "email": flt.email,
        "created_from": flt.created_from,
        "created_to": flt.created_to,
        **flt.extra,
    }
    return {k: jsonable(v) for k, v in values.items() if v is not None}


def _data(body: BaseModel, *, partial: bool) -> dict[str, Any]:
    data = body.model_dump(exclude_unset=partial)
    if data.get("filter") is not None:
        data["filter"] = _filters(data["filter"])
    return data


def policy_of(app: web.Application) -> svc.CampaignPolicy:
    settings = app.get(SETTINGS)
    if settings is None:  # an API-only app (tests)
        return svc.CampaignPolicy()
    return svc.CampaignPolicy(
        public_url=settings.public_url or f"http://{settings.host}:{settings.port}",
        managers_allowed=settings.campaigns_managers_allowed,
        secret=settings.secret_key or "",
    )


def _transport(request: web.Request) -> CampaignTransport | None:
    return request.app.get(CAMPAIGN_TRANSPORT)


def _accounts(request: web.Request) -> list[str]:
    t = _transport(request)
    return t.accounts() if t is not None else []


async def _out(s: Any, row: Any) -> dict[str, Any]:
    counts = await svc.status_counts(s, [row.id])
    return svc.campaign_dict(row, counts[row.id])


def _wake(request: web.Request) -> None:
    runner = request.app.get(CAMPAIGN_RUNNER)
    if runner is not None:
        runner.wake()


@operation(
    summary="List campaigns (newest first)",
    tag="campaigns",
    query=ListIn,
    response=CampaignOut,
    many=True,
)
async def list_campaigns(request: web.Request) -> web.Response:
    q = read_query(request, ListIn)
    async with database(request).sessions() as s:
        out = await svc.list_campaigns(
            s, actor(request), limit=q.limit, offset=q.offset, status=q.status
        )
    return ok(out)


@operation(
    summary="Create a campaign (a draft; templates are checked now)",
    tag="campaigns",
    body=CampaignCreate,
    response=CampaignOut,
    status=201,
    errors=W,
)
async def create_campaign(request: web.Request) -> web.Response:
    body = await read_body(request, CampaignCreate)
    async with database(request).transaction() as s:
        row = await svc.create_campaign(
            s,
            actor(request),
            policy_of(request.app),
            _data(body, partial=False),
            _accounts(request),
        )
        out = await _out(s, row)
    return ok(out, 201)


@operation(
    summary="A campaign: its status and recipients per status",
    tag="campaigns",
    response=CampaignOut,
)
async def get_campaign(request: web.Request) -> web.Response:
    async with database(request).sessions() as s:
        row = await svc.get_campaign(s, actor(request), path_id(request))
        out = await _out(s, row)
    return ok(out)


@operation(
    summary="Edit a draft campaign",
    tag="campaigns",
    body=CampaignPatch,
    response=CampaignOut,
    errors=W,
)
async def patch_campaign(request: web.Request) -> web.Response:
    cid = path_id(request)
    body = await read_body(request, CampaignPatch)
    async with database(request).transaction() as s:
        row = await svc.update_campaign(
            s,
            actor(request),
            policy_of(request.app),
            cid,
            _data(body, partial=True),
            _accounts(request),
        )
        out = await _out(s, row)
    return ok(out)


@operation(
    summary="How many clients and addresses the campaign reaches",
    tag="campaigns",
    response=AudienceOut,
    errors=W,
)
async def audience(request: web.Request) -> web.Response:
    async with database(request).sessions() as s:
        row = await svc.get_campaign(s, actor(request), path_id(request))
        out = await svc.audience_count(s, actor(request), row)
    return ok(out)


@operation(
    summary="The messages as one client (or contact person) would get them",
    tag="campaigns",
    body=PreviewIn,
    response=PreviewOut,
    errors=W,
)
async def preview(request: web.Request) -> web.Response:
    cid = path_id(request)
    body = await read_body(request, PreviewIn)
    async with database(request).transaction() as s:
        out = await svc.preview(
            s, actor(request), policy_of(request.app), cid, body.client_id, body.contact_person_id
        )
    return ok(out)


@operation(
    summary="Send the campaign's message to yourself (filled for one client)",
    tag="campaigns",
    body=TestIn,
    errors=W,
)
async def test(request: web.Request) -> web.Response:
    cid = path_id(request)
    body = await read_body(request, TestIn)
    transport = _transport(request)
    if transport is None:
        raise Invalid("no SMTP account is configured", "smtp_account")
    out = await test_send(
        database(request),
        transport,
        actor(request),
        policy_of(request.app),
        cid,
        client_id=body.client_id,
        to=body.to,
    )
    return ok(out)


async def _smtp_error(request: web.Request, account: str) -> str | None:
    transport = _transport(request)
    if transport is None:
        return "no SMTP account is configured"
    if account not in transport.accounts():
        return "the account is not configured"
    return await transport.check(account)


@operation(
    summary="Start sending (now, or at send_at)",
    tag="campaigns",
    body=Empty,
    response=CampaignOut,
    errors=W,
)
async def start(request: web.Request) -> web.Response:
    cid = path_id(request)
    async with database(request).sessions() as s:
        row = await svc.get_campaign(s, actor(request), cid)
        account = row.smtp_account
    smtp_error = await _smtp_error(request, account)
    async with database(request).transaction() as s:
        row = await svc.start(s, actor(request), policy_of(request.app), cid, smtp_error)
        out = await _out(s, row)
    _wake(request)
    return ok(out)


def _state(name: str, fn: Any) -> Any:
    @operation(
        summary=f"{name.capitalize()} the campaign",
        tag="campaigns",
        body=Empty,
        response=CampaignOut,
        errors=W,
    )
    async def handle(request: web.Request) -> web.Response:
        cid = path_id(request)
        async with database(request).transaction() as s:
            row = await fn(s, actor(request), policy_of(request.app), cid)
            out = await _out(s, row)
        _wake(request)
        return ok(out)

    handle.__name__ = f"campaign_{name}"
    return handle


@operation(
    summary="The campaign's recipients (paged, by status)",
    tag="campaigns",
    query=RecipientsIn,
    response=RecipientOut,
    many=True,
    errors=W,
)
async def recipients(request: web.Request) -> web.Response:
    cid = path_id(request)
    q = read_query(request, RecipientsIn)
    after = None
    if q.after:
        try:
            after = int(q.after)
        except ValueError:
            raise Invalid("after must be the next_after of a previous page", "after") from None
    async with database(request).sessions() as s:
        out = await svc.recipients_page(
            s, actor(request), cid, limit=q.limit, offset=q.offset, status=q.status, after=after
        )
    return ok(out)


ROUTES = [
    ("GET", "/campaigns", list_campaigns),
    ("POST", "/campaigns", create_campaign),
    ("GET", "/campaigns/{id}", get_campaign),
    ("PATCH", "/campaigns/{id}", patch_campaign),
    ("GET", "/campaigns/{id}/audience", audience),
    ("POST", "/campaigns/{id}/preview", preview),
    ("POST", "/campaigns/{id}/test", test),
    ("POST", "/campaigns/{id}/start", start),
    ("POST", "/campaigns/{id}/pause", _state("pause", svc.pause)),
    ("POST", "/campaigns/{id}/resume", _state("resume", svc.resume)),
    ("POST", "/campaigns/{id}/cancel", _state("cancel", svc.cancel)),
    ("GET", "/campaigns/{id}/recipients", recipients),
]
