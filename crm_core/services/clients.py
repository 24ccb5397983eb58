"""Clients (companies and people): create, read, change, list with filters.

Statuses come from the admin-editable list ``client_statuses``; by default, from the
first touch to a lasting relation: ``cold`` (no contact yet), ``thinking`` (in contact,
deciding), ``ready`` (ready to buy), ``active`` (buying now), ``regular`` (repeat
customer), ``lost`` (gone).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.access import Actor, visible_clients
from crm_core.models import Client, ContactPoint
from crm_core.services import segments as seg_svc
from crm_core.services.common import (
    Conflict,
    Invalid,
    ListFilter,
    NotFound,
    Page,
    add_points,
    audit,
    check_assignee,
    clients_with_identity,
    identity_value,
    iso,
    page_by_id,
    points_of,
)
from crm_core.services.search import client_ids_matching

__all__ = [
    "CLIENT_KINDS",
    "CLIENT_STATUSES",
    "client_dicts",
    "create_client",
    "get_client",
    "list_clients",
    "update_client",
    "validate_inn",
]

CLIENT_KINDS = ("company", "person")
CLIENT_STATUSES = ("cold", "thinking", "ready", "active", "regular", "lost")
_INN10 = (2, 4, 10, 3, 5, 9, 4, 6, 8)
_INN11 = (7, 2, 4, 10, 3, 5, 9, 4, 6, 8)
_INN12 = (3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8)


def _check_digit(digits: str, weights: tuple[int, ...]) -> int:
    return sum(int(d) * w for d, w in zip(digits, weights, strict=False)) % 11 % 10


def validate_inn(inn: str) -> str:
    """A Russian INN: 10 digits (organisation) or 12 (person, sole trader), checksummed."""
    value = inn.strip()
    if not (value.isascii() and value.isdigit()) or len(value) not in (10, 12):
        raise Invalid("inn must be 10 or 12 digits", "inn")
    if len(value) == 10:
        ok = _check_digit(value, _INN10) == int(value[9])
    else:
        ok = _check_digit(value, _INN11) == int(value[10]) and _check_digit(value, _INN12) == int(
            value[11]
        )
    if not ok:
        raise Invalid(f"inn {value} fails its checksum", "inn")
    return value


def _check_fields(data: dict[str, Any]) -> None:
    if "kind" in data and data["kind"] not in CLIENT_KINDS:
        raise Invalid(f"kind must be one of {', '.join(CLIENT_KINDS)}", "kind")
    if "status" in data and data["status"] not in CLIENT_STATUSES:
        raise Invalid(f"status must be one of {', '.join(CLIENT_STATUSES)}", "status")
    if "name" in data and not (data["name"] or "").strip():
        raise Invalid("name must not be empty", "name")


async def _unique_inn(s: AsyncSession, inn: str, client_id: int | None) -> None:
    other = await s.scalar(select(Client.id).where(Client.inn == inn))
    if other is not None and other != client_id:
        raise Conflict(f"inn {inn} already belongs to another client", "inn")


async def client_dicts(s: AsyncSession, clients: list[Client]) -> list[dict[str, Any]]:
    ids = [c.id for c in clients]
    points = await points_of(s, ContactPoint.client_id, ids)
    segs = await seg_svc.segment_fields(s, ids)
    return [
        {
            "id": c.id,
            "kind": c.kind,
            "name": c.name,
            "inn": c.inn,
            "segment": segs[c.id]["segment"],
            "segments": segs[c.id]["segments"],
            "status": c.status,
            "owner_id": c.owner_id,
            "region": c.region,
            "notes": c.notes,
            "phones": points[c.id]["phones"],
            "emails": points[c.id]["emails"],
            "created_at": iso(c.created_at),
            "updated_at": iso(c.updated_at),
        }
        for c in clients
    ]


async def create_client(s: AsyncSession, actor: Actor, data: dict[str, Any]) -> Client:
    """``data``: kind, name, inn, segment, status, owner_id, region, notes, phones, emails."""
    data = {k: v for k, v in data.items() if v is not None}
    data.setdefault("kind", "company")
    data.setdefault("status", "cold")
    if "name" not in data:
        raise Invalid("name is required", "name")
    _check_fields(data)
    owner_id = data.get("owner_id", actor.user_id)
    await check_assignee(s, actor, owner_id, "owner_id")
    inn = validate_inn(data["inn"]) if data.get("inn") else None
    if inn is not None:
        await _unique_inn(s, inn, None)
    client = Client(
        kind=data["kind"],
        name=data["name"].strip(),
        inn=inn,
        status=data["status"],
        owner_id=owner_id,
        region=data.get("region"),
        notes=data.get("notes") or "",
    )
    s.add(client)
    await s.flush()
    if data.get("segment"):
        await seg_svc.add_to_named_segment(s, actor, client.id, data["segment"])
    await add_points(
        s, actor, phones=data.get("phones"), emails=data.get("emails"), client_id=client.id
    )
    await audit(s, actor, "create", "client", client.id, data)
    await seg_svc.assign_entering(s, actor, client, owner_given="owner_id" in data)
    return client


async def get_client(s: AsyncSession, actor: Actor, client_id: int) -> Client:
    client = await s.scalar(select(Client).where(Client.id == client_id, visible_clients(actor)))
    if client is None:
        raise NotFound(f"client {client_id} not found")
    return client


async def update_client(
    s: AsyncSession, actor: Actor, client_id: int, changes: dict[str, Any]
) -> Client:
    """Apply the fields present in ``changes``; phones/emails given are added."""
    client = await get_client(s, actor, client_id)
    _check_fields(changes)
    seg_before = await seg_svc.managed_segments_of(s, client.id)
    if changes.get("owner_id") is not None and changes["owner_id"] != client.owner_id:
        await check_assignee(s, actor, changes["owner_id"], "owner_id")
        client.owner_id = changes["owner_id"]
    if "inn" in changes:
        inn = validate_inn(changes["inn"]) if changes["inn"] else None
        if inn is not None:
            await _unique_inn(s, inn, client.id)
        client.inn = inn
    if "segment" in changes:
        await seg_svc.add_to_named_segment(s, actor, client.id, changes["segment"])
    for key in ("kind", "name", "status", "region", "notes"):
        if key in changes and (changes[key] is not None or key == "region"):
            setattr(client, key, changes[key].strip() if key == "name" else changes[key])
    await add_points(
        s, actor, phones=changes.get("phones"), emails=changes.get("emails"), client_id=client.id
    )
    await s.flush()
    await audit(s, actor, "update", "client", client.id, changes)
    owner_given = changes.get("owner_id") is not None
    await seg_svc.assign_entering(s, actor, client, seg_before, owner_given=owner_given)
    return client


async def list_clients(s: AsyncSession, actor: Actor, flt: ListFilter) -> Page:
    query = select(Client).where(visible_clients(actor))
    if flt.phone:
        value, _ = identity_value("phone", flt.phone, "phone")
        query = query.where(Client.id.in_(clients_with_identity("phone", value)))
    if flt.email:
        value, _ = identity_value("email", flt.email, "email")
        query = query.where(Client.id.in_(clients_with_identity("email", value)))
    if flt.owner_id is not None:
        query = query.where(Client.owner_id == flt.owner_id)
    if flt.status:
        query = query.where(Client.status == flt.status)
    if flt.created_from is not None:
        query = query.where(Client.created_at >= flt.created_from)
    if flt.created_to is not None:
        query = query.where(Client.created_at < flt.created_to)
    if flt.q and flt.q.strip():
        found = client_ids_matching(s, flt.q)
        query = query.where(Client.id.in_(select(found.c[0])))
    if flt.extra.get("kind"):
        query = query.where(Client.kind == flt.extra["kind"])
    if flt.extra.get("segment") is not None:
        query = query.where(await seg_svc.in_segment(s, flt.extra["segment"]))
    return await page_by_id(s, query, flt, Client.id, client_dicts)
