"""Shared pieces of the services: errors, list filters and pages, audit, contact points."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.access import (
    Actor,
    can_assign_to,
    visible_clients,
    visible_contact_persons,
    visible_leads,
)
from crm_core.audit_trail import take_changes
from crm_core.identity import IdentityError, normalize_email, normalize_phone
from crm_core.models import AuditEntry, Client, ContactPerson, ContactPoint, Lead, User

__all__ = [
    "COUNT_CAP",
    "MAX_LIMIT",
    "Conflict",
    "Forbidden",
    "Invalid",
    "ListFilter",
    "NotFound",
    "Page",
    "ServiceError",
    "add_points",
    "audit",
    "check_assignee",
    "clients_with_identity",
    "count_capped",
    "identity_value",
    "iso",
    "jsonable",
    "page_by_id",
    "paginate",
    "parse_after_id",
    "points_of",
]

MAX_LIMIT = 200
# Lists count their filtered rows no further than this; a total equal to the cap means
# "this many or more" (``total_capped`` says so).
COUNT_CAP = 10_000


class ServiceError(ValueError):
    """A request the services refuse; ``field`` names the offending input if any."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(ServiceError):
    """The row does not exist or the actor may not see it (ids do not leak)."""


class Conflict(ServiceError):
    """The change collides with existing data (a duplicate, a closed record)."""


class Invalid(ServiceError):
    """A value is not acceptable."""


class Forbidden(ServiceError):
    """The actor may not do this (e.g. assign work to someone outside their reach)."""


@dataclass(slots=True)
class ListFilter:
    """Filters and pagination shared by the list endpoints (all optional)."""

    limit: int = 50
    offset: int = 0
    phone: str | None = None  # raw; normalized by the service
    email: str | None = None
    owner_id: int | None = None
    status: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None  # exclusive
    q: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    after: str | None = None  # keyset cursor: the ``next_after`` of the previous page


@dataclass(slots=True)
class Page:
    items: list[dict[str, Any]]
    total: int
    limit: int
    offset: int
    next_after: str | None = None  # pass as ``after`` for the next page (keyset)
    total_capped: bool = False  # ``total`` is the count cap: there are at least that many

    def as_dict(self) -> dict[str, Any]:
        return {
            "items": self.items,
            "total": self.total,
            "limit": self.limit,
            "offset": self.offset,
            "next_after": self.next_after,
            "total_capped": self.total_capped,
        }


def iso(value: datetime | date | None) -> str | None:
    return value.isoformat() if value is not None else None


def jsonable(value: Any) -> Any:
    """Make audit details JSON-able (datetimes to ISO, decimals to strings)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    return value


async def paginate(s: AsyncSession, query: Select[Any], flt: ListFilter) -> tuple[list[Any], int]:
    """Run ``query`` for one page and count its rows (up to :data:`COUNT_CAP`)."""
    rows = list(await s.scalars(query.limit(flt.limit).offset(flt.offset)))
    return rows, await count_capped(s, query, COUNT_CAP)


def parse_after_id(flt: ListFilter) -> int | None:
    """The keyset cursor of a list ordered by id, newest first."""
    if flt.after is None:
        return None
    try:
        return int(flt.after)
    except ValueError:
        raise Invalid("after must be the next_after of a previous page", "after") from None


async def page_by_id(
    s: AsyncSession, query: Select[Any], flt: ListFilter, id_column: Any, dicts: Any
) -> Page:
    """One page of ``query`` (filtered, not yet ordered) newest id first.

    With ``flt.after`` the page starts after that id (keyset: an index seek, however
    deep); ``flt.offset`` then skips within what follows.  The total counts the whole
    filtered set up to :data:`COUNT_CAP`."""
    after = parse_after_id(flt)
    total = await count_capped(s, query, COUNT_CAP)
    page_q = query.order_by(id_column.desc())
    if after is not None:
        page_q = page_q.where(id_column < after)
    rows = list(await s.scalars(page_q.limit(flt.limit).offset(flt.offset)))
    nxt = str(rows[-1].id) if len(rows) == flt.limit else None
    return Page(await dicts(s, rows), total, flt.limit, flt.offset, nxt, total >= COUNT_CAP)


async def count_capped(s: AsyncSession, query: Select[Any], cap: int) -> int:
    """The number of rows of ``query``, counting no further than ``cap`` (a total of
    ``cap`` means "``cap`` or more"): a bounded count whatever the table's size."""
    # Only a constant is selected (the FROMs stay): the database may count index entries
    # (a covering index, an index-only scan) instead of reading whole rows.
    inner = (
        query.order_by(None)
        .with_only_columns(literal_column("1"), maintain_column_froms=True)
        .limit(cap)
        .subquery()
    )
    return int(await s.scalar(select(func.count()).select_from(inner)) or 0)


async def audit(
    s: AsyncSession,
    actor: Actor | None,
    action: str,
    entity: str,
    entity_id: int | None,
    details: dict[str, Any] | None = None,
) -> None:
    """One audit entry; the row's old and new values changed since its last entry in this
    session (flushed before the call) go in ``details["changes"]`` (``audit_trail``)."""
    details = dict(details or {})
    changes = take_changes(s.sync_session, entity, entity_id)
    if changes and "changes" not in details:
        details["changes"] = changes
    s.add(
        AuditEntry(
            user_id=actor.user_id if actor else None,
            action=action,
            entity=entity,
            entity_id=entity_id,
            details=jsonable(details),
        )
    )


async def check_assignee(s: AsyncSession, actor: Actor, user_id: int, field_name: str) -> User:
    """The user ``actor`` wants to give work to, if they may."""
    user = await s.get(User, user_id)
    if user is None:
        raise Invalid(f"user {user_id} does not exist", field_name)
    if not can_assign_to(actor, user):
        if not user.active:
            raise Invalid(f"user {user_id} is not active", field_name)
        raise Forbidden(f"you may not assign work to user {user_id}", field_name)
    return user


def identity_value(kind: str, raw: str, field_name: str) -> tuple[str, str | None]:
    """Normalize one phone or email; (value, phone extension)."""
    try:
        if kind == "phone":
            parsed = normalize_phone(raw)
            return parsed.e164, parsed.extension
        return normalize_email(raw), None
    except IdentityError as exc:
        raise Invalid(f"{field_name}: {exc}", field_name) from None


async def _hidden_holder(s: AsyncSession, actor: Actor, cp: ContactPoint) -> bool:
    """Does ``cp`` belong to a client, contact person or lead that ``actor`` cannot see?"""
    if actor.is_admin:
        return False
    checks: list[Any] = []
    if cp.client_id is not None:
        checks.append(select(Client.id).where(Client.id == cp.client_id, visible_clients(actor)))
    if cp.contact_person_id is not None:
        checks.append(
            select(ContactPerson.id).where(
                ContactPerson.id == cp.contact_person_id, visible_contact_persons(actor)
            )
        )
    if cp.lead_id is not None:
        checks.append(select(Lead.id).where(Lead.id == cp.lead_id, visible_leads(actor)))
    for query in checks:
        if await s.scalar(query) is None:
            return True
    return False


async def add_points(
    s: AsyncSession,
    actor: Actor,
    *,
    phones: list[str] | None = None,
    emails: list[str] | None = None,
    client_id: int | None = None,
    contact_person_id: int | None = None,
    lead_id: int | None = None,
) -> None:
    """Attach normalized phones/emails to one party, on behalf of ``actor``.

    A point already held by another client or contact person is a conflict naming the
    field; a point known only from a lead is taken over by the party, but only by an
    actor who sees that lead.  A point held by a record the actor cannot see is a
    conflict that names neither that record nor its owner (and changes nothing: the
    caller's transaction rolls back).
    """
    for kind, field_name, raws in (("phone", "phones", phones), ("email", "emails", emails)):
        for raw in raws or []:
            value, ext = identity_value(kind, raw, field_name)
            cp = await s.scalar(
                select(ContactPoint).where(ContactPoint.kind == kind, ContactPoint.value == value)
            )
            if cp is None:
                s.add(
                    ContactPoint(
                        kind=kind,
                        value=value,
                        extension=ext,
                        client_id=client_id,
                        contact_person_id=contact_person_id,
                        lead_id=lead_id,
                    )
                )
                continue
            same = (
                (client_id is not None and cp.client_id == client_id)
                or (contact_person_id is not None and cp.contact_person_id == contact_person_id)
                or (lead_id is not None and cp.lead_id == lead_id)
            )
            if same:
                continue
            if await _hidden_holder(s, actor, cp):
                raise Conflict(
                    f"{kind} {value} already belongs to another client or lead", field_name
                )
            if cp.client_id is not None or cp.contact_person_id is not None:
                raise Conflict(f"{kind} {value} already belongs to another party", field_name)
            if lead_id is not None and cp.lead_id is not None:
                raise Conflict(f"{kind} {value} already belongs to lead {cp.lead_id}", field_name)
            cp.client_id = client_id if contact_person_id is None else cp.client_id
            cp.contact_person_id = contact_person_id or cp.contact_person_id
            cp.lead_id = cp.lead_id or lead_id
    await s.flush()


async def points_of(
    s: AsyncSession, column: Any, ids: list[int]
) -> dict[int, dict[str, list[str]]]:
    """{id: {"phones": [...], "emails": [...]}} for the contact points whose ``column``
    (``ContactPoint.client_id``, ``.lead_id``, ``.contact_person_id``) is in ``ids``."""
    out: dict[int, dict[str, list[str]]] = {i: {"phones": [], "emails": []} for i in ids}
    if not ids:
        return out
    query = select(ContactPoint).where(column.in_(ids))
    if column is ContactPoint.client_id:
        # A company's own points: its contact persons' (which carry the company's
        # client_id too) are listed under each person.
        query = query.where(ContactPoint.contact_person_id.is_(None))
    rows = await s.scalars(query.order_by(ContactPoint.id))
    for cp in rows:
        key = {"phone": "phones", "email": "emails"}.get(cp.kind)
        owner = getattr(cp, column.key)
        if key is not None and owner in out and cp.value not in out[owner][key]:
            out[owner][key].append(cp.value)
    return out


def clients_with_identity(kind: str, value: str) -> Any:
    """Ids of clients holding ``kind:value`` directly or through a contact person."""
    direct = select(ContactPoint.client_id).where(
        ContactPoint.kind == kind, ContactPoint.value == value, ContactPoint.client_id.is_not(None)
    )
    via_person = (
        select(ContactPerson.client_id)
        .join(ContactPoint, ContactPoint.contact_person_id == ContactPerson.id)
        .where(ContactPoint.kind == kind, ContactPoint.value == value)
    )
    return direct.union(via_person)
