"""Handlers: the consent of a client's email addresses (the client card), and setting it.

``GET /clients/{id}/consent`` lists each address of the client and of its contact
persons with its state and latest changes; ``PUT`` records consent given or withdrawn
(audited).  Whoever sees the client may do both; a hidden client answers 404.
"""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import Field

from crm_core.services import consent as svc
from crm_core.services.clients import get_client
from crm_core.services.common import Invalid, audit
from gateway.api.common import actor, database, ok, path_id, read_body
from gateway.api.responses import Out
from gateway.api.schemas import Texts
from gateway.openapi import operation

__all__ = ["ROUTES", "ConsentOut", "ConsentPut"]


class ConsentPut(Texts):
    email: str = Field(min_length=3, max_length=320, description="one of the client's emails")
    state: Literal["granted", "withdrawn"] = Field(
        description="granted: agreed to receive campaigns; withdrawn: took it back"
    )
    note: str | None = Field(
        None,
        max_length=500,
        description="why; required to grant again an address that unsubscribed, "
        "bounced or complained",
    )


class ConsentEventOut(Out):
    id: int
    email: str
    state: str
    previous_state: str | None
    source: str = Field(description="manager, import, one_click, unsubscribe_page, bounce, arf")
    campaign_id: int | None
    user_id: int | None
    user_name: str | None
    note: str | None
    at: str | None


class ConsentItemOut(Out):
    email: str
    contact_name: str | None = Field(description="the contact person the address belongs to")
    state: str = Field(
        description="unknown (nothing recorded), granted, withdrawn, unsubscribed, "
        "bounced, complained"
    )
    source: str | None
    updated_at: str | None
    suppressed: bool = Field(description="campaigns skip this address")
    history: list[ConsentEventOut] = Field(description="the latest changes, newest first")
    history_more: bool = Field(description="older changes exist beyond these")


class ConsentOut(Out):
    items: list[ConsentItemOut]


@operation(
    summary="The consent of each of a client's email addresses, with its history",
    tag="clients",
    response=ConsentOut,
)
async def get_consent(request: web.Request) -> web.Response:
    client_id = path_id(request)
    async with database(request).sessions() as s:
        client = await get_client(s, actor(request), client_id)
        items = await svc.client_consent(s, client.id)
    return ok({"items": items})


@operation(
    summary="Record that a client's address agreed to campaigns or withdrew (audited)",
    tag="clients",
    body=ConsentPut,
    response=ConsentOut,
    errors=(401, 404, 422),
)
async def put_consent(request: web.Request) -> web.Response:
    client_id = path_id(request)
    body = await read_body(request, ConsentPut)
    who = actor(request)
    async with database(request).transaction() as s:
        client = await get_client(s, who, client_id)
        addresses = {e for e, _ in await svc.client_emails(s, client.id)}
        try:
            email = svc.normalize_address(body.email)
        except Invalid:
            raise Invalid(f"email {body.email!r} is not a valid address", "email") from None
        if email not in addresses:
            raise Invalid(f"{email} is not an email of client {client.id}", "email")
        result = await svc.set_consent(s, email, body.state, "manager", who, note=body.note)
        if result == "changed":
            await audit(
                s,
                who,
                "set_consent",
                "client",
                client.id,
                {"email": email, "state": body.state, "note": body.note},
            )
        items = await svc.client_consent(s, client.id)
    return ok({"items": items})


ROUTES = [
    ("GET", "/clients/{id}/consent", get_consent),
    ("PUT", "/clients/{id}/consent", put_consent),
]
