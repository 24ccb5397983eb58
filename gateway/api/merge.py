"""Merging duplicate clients: ``POST /clients/{id}/merge`` and ``GET /clients/{id}/duplicates``."""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from pydantic import Field

from crm_core.services.clients import client_dicts
from crm_core.services.merge import MERGE_FIELDS, find_duplicates, merge_clients
from gateway.api.common import actor, database, ok, path_id, read_body, read_query
from gateway.api.responses import ClientOut, Out
from gateway.api.schemas import Id, Strict
from gateway.openapi import operation

__all__ = ["ROUTES"]


class MergeBody(Strict):
    other_id: Id = Field(description="the duplicate folded into this client, then deleted")
    fields: dict[str, Literal["this", "other"]] = Field(
        default_factory=dict,
        max_length=len(MERGE_FIELDS),
        description="per field, whose value to keep; by default this client's, "
        "or the other's where this one's is empty (notes: both)",
    )


class MergeOut(ClientOut):
    merged: dict[str, Any]


class DuplicatesQuery(Strict):
    limit: int = Field(20, ge=1, le=50)


class DuplicateOut(ClientOut):
    reasons: list[str]


class DuplicatesOut(Out):
    items: list[DuplicateOut]


@operation(
    summary="Merge a duplicate into this client (timeline, contacts, deals, tasks move; "
    "the duplicate is deleted; audited)",
    tag="clients",
    body=MergeBody,
    response=MergeOut,
    errors=(401, 404, 409, 422),
)
async def merge(request: web.Request) -> web.Response:
    client_id = path_id(request)
    body = await read_body(request, MergeBody)
    async with database(request).transaction() as s:
        client, details = await merge_clients(
            s, actor(request), client_id, body.other_id, dict(body.fields)
        )
        out = (await client_dicts(s, [client]))[0]
    return ok({**out, "merged": details})


@operation(
    summary="Clients that may be duplicates of this one (same INN, phone, email or name)",
    tag="clients",
    query=DuplicatesQuery,
    response=DuplicatesOut,
)
async def duplicates(request: web.Request) -> web.Response:
    client_id = path_id(request)
    query = read_query(request, DuplicatesQuery)
    async with database(request).sessions() as s:
        found = await find_duplicates(s, actor(request), client_id, query.limit)
        dicts = await client_dicts(s, [c for c, _ in found])
    items = [{**d, "reasons": why} for d, (_, why) in zip(dicts, found, strict=True)]
    return ok({"items": items})


ROUTES = [
    ("POST", "/clients/{id}/merge", merge),
    ("GET", "/clients/{id}/duplicates", duplicates),
]
