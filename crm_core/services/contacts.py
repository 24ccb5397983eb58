"""Contact persons of a company, each with their own phones and emails.

A person's phones and emails are contact points with ``contact_person_id`` set and the
company's ``client_id``, normalized like every other point (``common.add_points``): a
call or an email from them is matched to the company (``pipeline/match.py``) and the
timeline entry names them.  One person per company may be the primary contact; making
another one primary takes the mark from the previous one.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.access import Actor, visible_contact_persons
from crm_core.models import ContactPerson, ContactPoint
from crm_core.services.clients import contact_dicts, get_client
from crm_core.services.common import (
    Invalid,
    ListFilter,
    NotFound,
    Page,
    add_points,
    audit,
    identity_value,
    paginate,
)

__all__ = [
    "contact_dicts",
    "create_contact",
    "delete_contact",
    "get_contact",
    "list_contacts",
    "update_contact",
]


def _name(value: Any) -> str:
    name = (value or "").strip()
    if not name:
        raise Invalid("name must not be empty", "name")
    return name


async def _only_primary(s: AsyncSession, person: ContactPerson) -> None:
    await s.execute(
        update(ContactPerson)
        .where(ContactPerson.client_id == person.client_id, ContactPerson.id != person.id)
        .values(is_primary=False)
    )


async def create_contact(
    s: AsyncSession, actor: Actor, client_id: int, data: dict[str, Any]
) -> ContactPerson:
    """``data``: name, position, notes, is_primary, phones, emails.  The client must be
    visible to ``actor``."""
    client = await get_client(s, actor, client_id)
    person = ContactPerson(
        client_id=client.id,
        name=_name(data.get("name")),
        position=(data.get("position") or "").strip() or None,
        notes=data.get("notes") or "",
        is_primary=bool(data.get("is_primary")),
    )
    s.add(person)
    await s.flush()
    if person.is_primary:
        await _only_primary(s, person)
    await add_points(
        s, actor, phones=data.get("phones"), emails=data.get("emails"), contact_person_id=person.id
    )
    await _company_points(s, person)
    await audit(s, actor, "create", "contact_person", person.id, {"client_id": client.id, **data})
    return person


async def _company_points(s: AsyncSession, person: ContactPerson) -> None:
    """The person's points carry the company's ``client_id`` too (lookups by client)."""
    await s.execute(
        update(ContactPoint)
        .where(ContactPoint.contact_person_id == person.id)
        .values(client_id=person.client_id)
    )


async def get_contact(s: AsyncSession, actor: Actor, person_id: int) -> ContactPerson:
    person = await s.scalar(
        select(ContactPerson).where(ContactPerson.id == person_id, visible_contact_persons(actor))
    )
    if person is None:
        raise NotFound(f"contact {person_id} not found")
    return person


async def update_contact(
    s: AsyncSession, actor: Actor, person_id: int, changes: dict[str, Any]
) -> ContactPerson:
    """name, position, notes, is_primary; ``phones``/``emails`` given replace the
    person's own (points no longer listed are removed)."""
    person = await get_contact(s, actor, person_id)
    if "name" in changes and changes["name"] is not None:
        person.name = _name(changes["name"])
    if "position" in changes:
        person.position = (changes["position"] or "").strip() or None
    if "notes" in changes:
        person.notes = changes["notes"] or ""
    if changes.get("is_primary") is not None:
        person.is_primary = bool(changes["is_primary"])
        if person.is_primary:
            await _only_primary(s, person)
    for kind, name in (("phone", "phones"), ("email", "emails")):
        if changes.get(name) is None:
            continue
        keep = {identity_value(kind, raw, name)[0] for raw in changes[name]}
        await s.execute(
            delete(ContactPoint).where(
                ContactPoint.contact_person_id == person.id,
                ContactPoint.kind == kind,
                ContactPoint.value.not_in(keep) if keep else ContactPoint.kind == kind,
            )
        )
        await add_points(s, actor, contact_person_id=person.id, **{name: changes[name]})
    await _company_points(s, person)
    await s.flush()
    await audit(s, actor, "update", "contact_person", person.id, changes)
    return person


async def delete_contact(s: AsyncSession, actor: Actor, person_id: int) -> None:
    """The person and their phones and emails (the timeline keeps what they said)."""
    person = await get_contact(s, actor, person_id)
    await s.execute(delete(ContactPoint).where(ContactPoint.contact_person_id == person.id))
    await s.delete(person)
    await s.flush()
    await audit(s, actor, "delete", "contact_person", person_id, {"client_id": person.client_id})


async def list_contacts(s: AsyncSession, actor: Actor, client_id: int, flt: ListFilter) -> Page:
    client = await get_client(s, actor, client_id)
    query = (
        select(ContactPerson)
        .where(ContactPerson.client_id == client.id)
        .order_by(ContactPerson.is_primary.desc(), ContactPerson.id)
    )
    rows, total = await paginate(s, query, flt)
    return Page(await contact_dicts(s, rows), total, flt.limit, flt.offset)
