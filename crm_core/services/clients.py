"""Clients (companies and people): create, read, change, list with filters and sorting.

The business profile: a company has its full legal name, INN, KPP (``''`` for the
head office: branches share the head office's INN with their own KPP), OGRN, legal and
actual addresses, city, region, industry, kind of activity, headcount, annual revenue,
website and a parent company (holding -> branches); a person has a birthday; both have
a status from the admin-editable list ``client_statuses`` (by default ``cold``,
``thinking``, ``ready``, ``active``, ``regular``, ``lost``), an owner, tags, notes, a
source and the values of the admin's custom fields (:mod:`crm_core.services.custom_fields`).
"""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.access import Actor, visible_clients
from crm_core.models import Client, ClientTag, ContactPerson, ContactPoint
from crm_core.services import segments as seg_svc
from crm_core.services.common import (
    COUNT_CAP,
    Conflict,
    Invalid,
    ListFilter,
    NotFound,
    Page,
    add_points,
    audit,
    check_assignee,
    clients_with_identity,
    count_capped,
    identity_value,
    iso,
    page_by_id,
    points_of,
)
from crm_core.services.custom_fields import client_fields, custom_filter, validate_custom
from crm_core.services.requisites import (
    normalize_website,
    validate_inn,
    validate_kpp,
    validate_ogrn,
)
from crm_core.services.search import client_ids_matching
from crm_core.services.statuses import DEFAULT_STATUSES, default_status, require_active_status

__all__ = [
    "CLIENT_KINDS",
    "CLIENT_STATUSES",
    "LIST_FILTER_KEYS",
    "SORT_FIELDS",
    "TEXT_FIELDS",
    "client_conditions",
    "client_dicts",
    "contact_dicts",
    "create_client",
    "get_client",
    "list_clients",
    "list_filter",
    "update_client",
    "validate_inn",
]

CLIENT_KINDS = ("company", "person")
# The default statuses' keys (the list itself is editable: services/statuses.py).
CLIENT_STATUSES = tuple(key for key, *_ in DEFAULT_STATUSES)
# Free-text profile fields and their longest length; an empty string clears them.
TEXT_FIELDS = {
    "full_name": 500,
    "legal_address": 2000,
    "actual_address": 2000,
    "city": 100,
    "region": 100,
    "industry": 200,
    "activity": 300,
    "source": 100,
}
MAX_TAGS = 50
# List parameters that order or page the list but do not narrow it.
PAGING_KEYS = frozenset({"limit", "offset", "after", "sort", "order"})
MAX_REVENUE = Decimal("1e16")
# ?sort= keys (``-key`` for descending) and their columns.
SORT_FIELDS: dict[str, Any] = {
    "id": Client.id,
    "name": Client.name,
    "created_at": Client.created_at,
    "updated_at": Client.updated_at,
    "status": Client.status,
    "city": Client.city,
    "region": Client.region,
    "industry": Client.industry,
    "headcount": Client.headcount,
    "revenue": Client.revenue,
    "last_contact_at": Client.last_contact_at,
    "inn": Client.inn,
}


def _check_fields(data: dict[str, Any]) -> None:
    if "kind" in data and data["kind"] not in CLIENT_KINDS:
        raise Invalid(f"kind must be one of {', '.join(CLIENT_KINDS)}", "kind")
    if "name" in data and not (data["name"] or "").strip():
        raise Invalid("name must not be empty", "name")


def _text(name: str, value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    if len(text) > TEXT_FIELDS[name]:
        raise Invalid(f"{name} is longer than {TEXT_FIELDS[name]} characters", name)
    return text or None


def _headcount(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 10**9:
        raise Invalid("headcount must be a whole number, 0 or more", "headcount")
    return value


def _revenue(value: Any) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise Invalid("revenue must be a number, 0 or more", "revenue")
    try:
        amount = Decimal(str(value).replace(" ", "").replace(",", "."))
    except InvalidOperation:
        raise Invalid("revenue must be a number, 0 or more", "revenue") from None
    if not amount.is_finite() or amount < 0 or amount >= MAX_REVENUE:
        raise Invalid("revenue must be a number, 0 or more", "revenue")
    return amount.quantize(Decimal("0.01"))


def _birthday(value: Any) -> date | None:
    if value is None or value == "":
        return None
    try:
        day = value if isinstance(value, date) else date.fromisoformat(str(value))
    except ValueError:
        raise Invalid("birthday must be a date (YYYY-MM-DD)", "birthday") from None
    if day.year < 1900 or day > date.today():
        raise Invalid("birthday must be a date between 1900 and today", "birthday")
    return day


def _tags(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise Invalid("tags must be a list of strings", "tags")
    out: list[str] = []
    for raw in value:
        tag = raw.strip()
        if not tag:
            continue
        if len(tag) > 100:
            raise Invalid("tags: a tag is longer than 100 characters", "tags")
        if tag not in out:
            out.append(tag)
    if len(out) > MAX_TAGS:
        raise Invalid(f"tags: at most {MAX_TAGS}", "tags")
    return out


async def _unique_inn(s: AsyncSession, inn: str, kpp: str, client_id: int | None) -> None:
    other = await s.scalar(select(Client.id).where(Client.inn == inn, Client.kpp == kpp))
    if other is not None and other != client_id:
        if kpp:
            raise Conflict(f"inn {inn} with kpp {kpp} already belongs to another client", "kpp")
        raise Conflict(f"inn {inn} already belongs to another client", "inn")


async def _check_parent(
    s: AsyncSession, actor: Actor, client_id: int | None, parent_id: int
) -> None:
    """The parent must be a company the actor sees, and not the client or its branch."""
    parent = await s.scalar(select(Client).where(Client.id == parent_id, visible_clients(actor)))
    if parent is None:
        raise Invalid(f"parent_id: client {parent_id} not found", "parent_id")
    if parent.kind != "company":
        raise Invalid("parent_id must be a company", "parent_id")
    seen: set[int] = set()
    node: int | None = parent_id
    while node is not None and node not in seen:
        if node == client_id:
            raise Invalid("parent_id would make a cycle of companies", "parent_id")
        seen.add(node)
        node = await s.scalar(select(Client.parent_id).where(Client.id == node))


def _check_kind(c: Client) -> None:
    """Fields that belong to one kind only, on the client as it will be saved."""
    if c.kind == "person":
        if c.kpp:
            raise Invalid("kpp is only for a company", "kpp")
        if c.parent_id is not None:
            raise Invalid("parent_id is only for a company", "parent_id")
    elif c.birthday is not None:
        raise Invalid("birthday is only for a person", "birthday")
    if c.kpp and not c.inn:
        raise Invalid("kpp needs an inn", "kpp")
    if c.kpp and c.inn and len(c.inn) != 10:
        raise Invalid("kpp is only for an organisation (a 10-digit inn)", "kpp")


async def _apply_profile(
    s: AsyncSession, actor: Actor, c: Client, data: dict[str, Any], *, creating: bool
) -> None:
    """Set the profile fields present in ``data`` on ``c`` (checked); ``None`` clears."""
    for name in TEXT_FIELDS:
        if name in data:
            setattr(c, name, _text(name, data[name]))
    if "inn" in data:
        c.inn = validate_inn(data["inn"]) if data["inn"] else None
    if "kpp" in data:
        c.kpp = validate_kpp(data["kpp"]) if data["kpp"] else ""
    if "ogrn" in data:
        c.ogrn = validate_ogrn(data["ogrn"]) if data["ogrn"] else None
    if "website" in data:
        c.website = normalize_website(data["website"]) if data["website"] else None
    if "headcount" in data:
        c.headcount = _headcount(data["headcount"])
    if "revenue" in data:
        c.revenue = _revenue(data["revenue"])
    if "birthday" in data:
        c.birthday = _birthday(data["birthday"])
    if "status" in data and (creating or data["status"] != c.status):
        c.status = await require_active_status(s, data["status"])
    if "parent_id" in data:
        if data["parent_id"] is not None:
            await _check_parent(s, actor, None if creating else c.id, int(data["parent_id"]))
        c.parent_id = data["parent_id"]
    if "custom" in data:
        c.custom = await validate_custom(
            s, data["custom"] or {}, None if creating else c.custom, creating=creating
        )
    _check_kind(c)
    if c.inn is not None and ("inn" in data or "kpp" in data):
        await _unique_inn(s, c.inn, c.kpp, None if creating else c.id)


async def _set_tags(s: AsyncSession, client_id: int, tags: list[str]) -> None:
    have = set(await s.scalars(select(ClientTag.tag).where(ClientTag.client_id == client_id)))
    gone = have - set(tags)
    if gone:
        await s.execute(
            delete(ClientTag).where(ClientTag.client_id == client_id, ClientTag.tag.in_(gone))
        )
    for tag in tags:
        if tag not in have:
            s.add(ClientTag(client_id=client_id, tag=tag))
    await s.flush()


async def contact_dicts(s: AsyncSession, people: list[ContactPerson]) -> list[dict[str, Any]]:
    points = await points_of(s, ContactPoint.contact_person_id, [p.id for p in people])
    return [
        {
            "id": p.id,
            "client_id": p.client_id,
            "name": p.name,
            "position": p.position,
            "notes": p.notes or "",
            "is_primary": bool(p.is_primary),
            "phones": points[p.id]["phones"],
            "emails": points[p.id]["emails"],
            "created_at": iso(p.created_at),
        }
        for p in people
    ]


async def client_dicts(
    s: AsyncSession, clients: list[Client], actor: Actor | None = None
) -> list[dict[str, Any]]:
    """The clients as the API shows them: the whole profile, tags, custom values, contact
    persons, the parent (its name when ``actor`` may see it) and the branches ``actor``
    sees (all of them when no actor is given)."""
    ids = [c.id for c in clients]
    points = await points_of(s, ContactPoint.client_id, ids)
    segs = await seg_svc.segment_fields(s, ids)
    tags: dict[int, list[str]] = {i: [] for i in ids}
    people: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    branches: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    parents: dict[int, str] = {}
    if ids:
        for cid, tag in await s.execute(
            select(ClientTag.client_id, ClientTag.tag)
            .where(ClientTag.client_id.in_(ids))
            .order_by(ClientTag.tag)
        ):
            tags[cid].append(tag)
        persons = list(
            await s.scalars(
                select(ContactPerson)
                .where(ContactPerson.client_id.in_(ids))
                .order_by(ContactPerson.is_primary.desc(), ContactPerson.id)
            )
        )
        for d in await contact_dicts(s, persons):
            people[d["client_id"]].append(d)
        seen = visible_clients(actor) if actor is not None else None
        branch_q = select(Client.id, Client.name, Client.kpp, Client.parent_id).where(
            Client.parent_id.in_(ids)
        )
        if seen is not None:
            branch_q = branch_q.where(seen)
        for bid, bname, bkpp, pid in await s.execute(branch_q.order_by(Client.name)):
            if pid is not None:
                branches[pid].append({"id": bid, "name": bname, "kpp": bkpp or ""})
        parent_ids = {c.parent_id for c in clients if c.parent_id is not None}
        if parent_ids:
            parent_q = select(Client.id, Client.name).where(Client.id.in_(parent_ids))
            if seen is not None:
                parent_q = parent_q.where(seen)
            parents = {pid: pname for pid, pname in await s.execute(parent_q)}
    return [
        {
            "id": c.id,
            "kind": c.kind,
            "name": c.name,
            "full_name": c.full_name,
            "inn": c.inn,
            "kpp": c.kpp or "",
            "ogrn": c.ogrn,
            "segment": segs[c.id]["segment"],
            "segments": segs[c.id]["segments"],
            "status": c.status,
            "owner_id": c.owner_id,
            "parent_id": c.parent_id,
            "parent": (
                {"id": c.parent_id, "name": parents.get(c.parent_id)}
                if c.parent_id is not None
                else None
            ),
            "branches": branches[c.id],
            "legal_address": c.legal_address,
            "actual_address": c.actual_address,
            "city": c.city,
            "region": c.region,
            "industry": c.industry,
            "activity": c.activity,
            "headcount": c.headcount,
            "revenue": str(c.revenue) if c.revenue is not None else None,
            "website": c.website,
            "birthday": iso(c.birthday),
            "source": c.source,
            "tags": tags[c.id],
            "custom": dict(c.custom or {}),
            "contacts": people[c.id],
            "last_contact_at": iso(c.last_contact_at),
            "notes": c.notes,
            "phones": points[c.id]["phones"],
            "emails": points[c.id]["emails"],
            "created_at": iso(c.created_at),
            "updated_at": iso(c.updated_at),
        }
        for c in clients
    ]


async def create_client(s: AsyncSession, actor: Actor, data: dict[str, Any]) -> Client:
    """``data``: kind, name, status, owner_id, segment, notes, phones, emails, tags, the
    profile fields (:data:`TEXT_FIELDS`, inn, kpp, ogrn, website, headcount, revenue,
    birthday, parent_id) and ``custom``.  Required custom fields are enforced when
    ``custom`` is given (the API and the form always give it; a lead's conversion does
    not, so a new required field never blocks converting a lead)."""
    data = {k: v for k, v in data.items() if v is not None}
    data.setdefault("kind", "company")
    if "status" not in data:
        data["status"] = await default_status(s)
    if "name" not in data:
        raise Invalid("name is required", "name")
    _check_fields(data)
    owner_id = data.get("owner_id", actor.user_id)
    await check_assignee(s, actor, owner_id, "owner_id")
    client = Client(
        kind=data["kind"],
        name=data["name"].strip(),
        owner_id=owner_id,
        notes=data.get("notes") or "",
        kpp="",
        custom={},
    )
    await _apply_profile(s, actor, client, data, creating=True)
    tags = _tags(data["tags"]) if "tags" in data else []
    s.add(client)
    await s.flush()
    if data.get("segment"):
        await seg_svc.add_to_named_segment(s, actor, client.id, data["segment"])
    if tags:
        await _set_tags(s, client.id, tags)
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
    """Apply the fields present in ``changes``: profile fields given as null are cleared;
    ``tags`` replaces the tags; ``custom`` sets the keys it names (null removes one);
    phones/emails given are added."""
    client = await get_client(s, actor, client_id)
    _check_fields(changes)
    seg_before = await seg_svc.managed_segments_of(s, client.id)
    if changes.get("owner_id") is not None and changes["owner_id"] != client.owner_id:
        await check_assignee(s, actor, changes["owner_id"], "owner_id")
        client.owner_id = changes["owner_id"]
    if "segment" in changes:
        await seg_svc.add_to_named_segment(s, actor, client.id, changes["segment"])
    for key in ("kind", "name", "notes"):
        if key in changes and changes[key] is not None:
            setattr(client, key, changes[key].strip() if key == "name" else changes[key])
    profile = {k: v for k, v in changes.items() if k != "status" or v is not None}
    await _apply_profile(s, actor, client, profile, creating=False)
    if changes.get("tags") is not None:
        await _set_tags(s, client.id, _tags(changes["tags"]))
    await add_points(
        s, actor, phones=changes.get("phones"), emails=changes.get("emails"), client_id=client.id
    )
    await s.flush()
    await audit(s, actor, "update", "client", client.id, changes)
    owner_given = changes.get("owner_id") is not None
    await seg_svc.assign_entering(s, actor, client, seg_before, owner_given=owner_given)
    return client


def _parse_decimal(name: str, value: Any) -> Decimal:
    try:
        out = Decimal(str(value))
    except InvalidOperation:
        raise Invalid(f"{name} must be a number", name) from None
    if not out.is_finite():
        raise Invalid(f"{name} must be a number", name)
    return out


# Every filter of the clients list: ListFilter's own fields, then the profile filters
# kept in ``ListFilter.extra`` (``cf``: {custom field key: value}).  The list, the export
# and the mass operations (crm_core/services/bulk.py) all read them with _conditions.
BASE_FILTER_KEYS = ("q", "status", "owner_id", "phone", "email", "created_from", "created_to")
EXTRA_FILTER_KEYS = (
    "kind",
    "city",
    "region",
    "industry",
    "source",
    "tag",
    "parent_id",
    "headcount_min",
    "headcount_max",
    "revenue_min",
    "revenue_max",
    "cf",
    "segment",
)
LIST_FILTER_KEYS = BASE_FILTER_KEYS + EXTRA_FILTER_KEYS


def _moment(name: str, value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        raise Invalid(f"{name} must be an ISO datetime", name) from None


def list_filter(filters: dict[str, Any], field_prefix: str = "filters.") -> ListFilter:
    """The list's filters from a stored dict (``LIST_FILTER_KEYS``; empty values and the
    paging keys skipped); an unknown key is refused, naming it."""
    base: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in filters.items():
        if value is None or value == "" or value == {} or key in PAGING_KEYS:
            continue
        if key not in LIST_FILTER_KEYS:
            raise Invalid(
                f"{field_prefix}{key} is not a filter of the clients list", f"{field_prefix}{key}"
            )
        if key in ("created_from", "created_to"):
            base[key] = _moment(f"{field_prefix}{key}", value)
        elif key == "owner_id":
            base[key] = int(value)
        elif key in BASE_FILTER_KEYS:
            base[key] = str(value)
        elif key == "cf":
            if not isinstance(value, dict):
                raise Invalid(f"{field_prefix}cf must be an object", f"{field_prefix}cf")
            extra[key] = {str(k): str(v) for k, v in value.items()}
        else:
            extra[key] = value
    return ListFilter(**base, extra=extra)


async def client_conditions(
    s: AsyncSession, actor: Actor, flt: ListFilter
) -> list[ColumnElement[bool]]:
    """The WHERE of the clients list: what ``actor`` sees, narrowed by ``flt``."""
    return [visible_clients(actor), *await _conditions(s, flt)]


async def _conditions(s: AsyncSession, flt: ListFilter) -> list[ColumnElement[bool]]:
    """The WHERE conditions of the list's filters (each on an indexed column where one
    exists: status, city, region, industry, owner, parent, created_at; tags through
    ``client_tags``; custom fields read the JSON column)."""
    x = flt.extra
    conds: list[ColumnElement[bool]] = []
    if flt.phone:
        value, _ = identity_value("phone", flt.phone, "phone")
        conds.append(Client.id.in_(clients_with_identity("phone", value)))
    if flt.email:
        value, _ = identity_value("email", flt.email, "email")
        conds.append(Client.id.in_(clients_with_identity("email", value)))
    if flt.owner_id is not None:
        conds.append(Client.owner_id == flt.owner_id)
    if flt.status:
        conds.append(Client.status == flt.status)
    if flt.created_from is not None:
        conds.append(Client.created_at >= flt.created_from)
    if flt.created_to is not None:
        conds.append(Client.created_at < flt.created_to)
    if flt.q and flt.q.strip():
        found = client_ids_matching(s, flt.q)
        conds.append(Client.id.in_(select(found.c[0])))
    for name in ("kind", "city", "region", "industry", "source"):
        if x.get(name):
            conds.append(getattr(Client, name) == str(x[name]).strip())
    if x.get("parent_id") is not None:
        conds.append(Client.parent_id == int(x["parent_id"]))
    if x.get("tag"):
        tagged = select(ClientTag.client_id).where(ClientTag.tag == str(x["tag"]).strip())
        conds.append(Client.id.in_(tagged))
    for name, col, op in (
        ("headcount_min", Client.headcount, "ge"),
        ("headcount_max", Client.headcount, "le"),
        ("revenue_min", Client.revenue, "ge"),
        ("revenue_max", Client.revenue, "le"),
    ):
        if x.get(name) is not None:
            bound = _parse_decimal(name, x[name])
            conds.append(col >= bound if op == "ge" else col <= bound)
    custom = x.get("cf") or {}
    if custom:
        defs = await client_fields(s)
        dialect = s.get_bind().dialect.name
        for key, raw in custom.items():
            conds.append(custom_filter(dialect, defs, key, str(raw)))
    if x.get("segment") is not None:  # manual membership or the compiled rules
        conds.append(await seg_svc.in_segment(s, int(x["segment"])))
    return conds


async def list_clients(s: AsyncSession, actor: Actor, flt: ListFilter) -> Page:
    """One page of the clients ``actor`` sees, filtered (see :func:`_conditions`) and
    sorted by ``flt.extra["sort"]`` (a :data:`SORT_FIELDS` key, ``-key`` descending;
    newest first by default), keyset-paged with ``after``."""
    query = select(Client).where(*await client_conditions(s, actor, flt))

    async def dicts(s: AsyncSession, rows: list[Client]) -> list[dict[str, Any]]:
        return await client_dicts(s, rows, actor)

    sort = str(flt.extra.get("sort") or "").strip()
    if not sort or sort == "-id":
        return await page_by_id(s, query, flt, Client.id, dicts)
    return await _page_sorted(s, query, flt, sort, dicts)


def _cursor_value(column: Any, raw: Any) -> Any:
    if raw is None:
        return None
    ptype = getattr(column.type, "impl", column.type).python_type  # UTCDateTime: datetime
    if ptype is datetime:
        return datetime.fromisoformat(raw)
    if ptype is Decimal:
        return Decimal(raw)
    if ptype is int:
        return int(raw)
    return str(raw)


def _encode_cursor(column: Any, row: Client) -> str:
    value = getattr(row, column.key)
    if isinstance(value, datetime | date):
        value = value.isoformat()
    elif isinstance(value, Decimal):
        value = str(value)
    return json.dumps([value, row.id], ensure_ascii=False)


async def _page_sorted(
    s: AsyncSession, query: Select[Any], flt: ListFilter, sort: str, dicts: Any
) -> Page:
    """Keyset paging on ``(column, id)``: empty values last in either direction (NULLS
    LAST spelled out: SQLite and PostgreSQL differ by default), ties broken by id in the
    same direction.  A column with an index (created_at, status, city, region, industry,
    last_contact_at) is read in its order; the page stops at ``limit``."""
    desc = sort.startswith("-")
    column = SORT_FIELDS.get(sort.lstrip("-"))
    if column is None:
        raise Invalid(f"sort must be one of {', '.join(SORT_FIELDS)} (- for descending)", "sort")
    total = await count_capped(s, query, COUNT_CAP)
    key = column.desc() if desc else column.asc()
    if column.nullable:
        key = key.nulls_last()
    page_q = query.order_by(key, Client.id.desc() if desc else Client.id.asc())
    if flt.after is not None:
        try:
            raw, after_id = json.loads(flt.after)
            value = _cursor_value(column, raw)
            after_id = int(after_id)
        except (ValueError, TypeError, ArithmeticError):
            raise Invalid("after must be the next_after of a previous page", "after") from None
        later = Client.id < after_id if desc else Client.id > after_id
        if value is None:
            page_q = page_q.where(column.is_(None), later)
        else:
            beyond = column < value if desc else column > value
            after_row = [beyond, and_(column == value, later)]
            if column.nullable:
                after_row.append(column.is_(None))
            page_q = page_q.where(or_(*after_row))
    rows = list(await s.scalars(page_q.limit(flt.limit).offset(flt.offset)))
    nxt = _encode_cursor(column, rows[-1]) if len(rows) == flt.limit else None
    return Page(await dicts(s, rows), total, flt.limit, flt.offset, nxt, total >= COUNT_CAP)
