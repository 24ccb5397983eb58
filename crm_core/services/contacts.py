"""Contact persons of a client, each with their own phones and emails."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.access import Actor
from crm_core.models import ContactPerson, ContactPoint
from crm_core.services.clients import get_client
from crm_core.services.common import (
    Invalid,
    ListFilter,
    Page,
    add_points,
    audit,
    iso,
    paginate,
    points_of,
)

__all__ = ["contact_dicts", "create_contact", "list_contacts"]


async def contact_dicts(s: AsyncSession, people: list[ContactPerson]) -> list[dict[str, Any]]:
    points = await points_of(s, ContactPoint.contact_person_id, [p.id for p in people])
    return [
        {
            "id": p.id,
            "client_id": p.client_id,
            "name": p.name,
            "position": p.position,
            "phones": points[p.id]["phones"],
            "emails": points[p.id]["emails"],
            "created_at": iso(p.created_at),
        }
        for p in people
    ]


async def create_contact(
    s: AsyncSession, actor: Actor, client_id: int, data: dict[str, Any]
) -> ContactPerson:
    """``data``: name, position, phones, emails.  The client must be visible to ``actor``."""
    client = await get_client(s, actor, client_id)
    name = (data.get("name") or "").strip()
    if not name:
        raise Invalid("name must not be empty", "name")
    person = ContactPerson(client_id=client.id, name=name, position=data.get("position"))
    s.add(person)
    await s.flush()
    await add_points(
        s, actor, phones=data.get("phones"), emails=data.get("emails"), contact_person_id=person.id
    )
    await audit(s, actor, "create", "contact_person", person.id, {"client_id": client.id, **data})
    return person


async def list_contacts(s: AsyncSession, actor: Actor, client_id: int, flt: ListFilter) -> Page:
    client = await get_client(s, actor, client_id)
    query = (
        select(ContactPerson).where(ContactPerson.client_id == client.id).order_by(ContactPerson.id)
    )
    rows, total = await paginate(s, query, flt)
    return Page(await contact_dicts(s, rows), total, flt.limit, flt.offset)
