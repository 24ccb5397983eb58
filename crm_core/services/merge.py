"""Merge two duplicate clients, and find the candidates.

:func:`merge_clients` keeps one client and folds the other into it, in the caller's one
transaction: every row that points at the other client (its timeline, contact points,
contact persons, leads, deals, tasks, tags, segment memberships, outbox commands,
branches, import links) is moved to the kept one, the kept client's empty
fields are filled from the other (or each field is taken from the side chosen), the
other is deleted and one audit entry records what moved.

The rows are moved with ``UPDATE ... SET client_id``: contact points keep their
``(kind, value)`` (unique across the CRM, so nothing can collide), the interactions keep
``user_id``/``occurred_at``/``channel``... so the ``interaction_monthly`` counters (kept by
triggers on those columns) do not change, and the name-search (FTS/trigram) follows the
client's ``name`` through its own triggers.  Tables keyed by ``(client_id, x)`` (tags,
segment memberships) move only the rows the kept client does not already have; the
rest go with the other client.  The other client is deleted before its INN/KPP is
given to the kept one, so the unique ``(inn, kpp)`` never sees both.

Who may merge: both clients must be visible to the actor (an admin: any; a supervisor:
their team's; a manager: only two clients they own).
"""

from __future__ import annotations

import re
from typing import Any, cast

from sqlalchemy import CursorResult, and_, delete, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.access import Actor, visible_clients
from crm_core.models import (
    Base,
    Client,
    ContactPerson,
    ContactPoint,
    ImportLink,
    utcnow,
)
from crm_core.services.common import Invalid, NotFound, audit, jsonable

__all__ = ["MERGE_FIELDS", "find_duplicates", "merge_clients", "name_core"]

# Fields a merge may take from either side (``inn`` brings its ``kpp`` along).
MERGE_FIELDS = (
    "name",
    "full_name",
    "kind",
    "inn",
    "ogrn",
    "legal_address",
    "actual_address",
    "city",
    "region",
    "industry",
    "activity",
    "headcount",
    "revenue",
    "website",
    "birthday",
    "source",
    "status",
    "owner_id",
    "parent_id",
    "segment_id",
    "notes",
    "custom",
)
SIDES = ("this", "other")


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == {} or value == []


def _chosen(
    keep: Client, other: Client, choices: dict[str, str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(final values of the kept client, the values that came from the other)."""
    final: dict[str, Any] = {}
    taken: dict[str, Any] = {}
    for f in MERGE_FIELDS:
        mine, theirs = getattr(keep, f), getattr(other, f)
        choice = choices.get(f)
        value: Any
        if f == "notes" and choice is None:
            parts = [n for n in (mine, theirs) if n and n.strip()]
            value = "\n\n".join(dict.fromkeys(parts))
        elif f == "custom":
            mine_d = {k: v for k, v in (mine or {}).items() if not _empty(v)}
            theirs_d = {k: v for k, v in (theirs or {}).items() if not _empty(v)}
            if choice == "this":
                value = dict(mine or {})
            elif choice == "other":
                value = {**mine_d, **theirs_d}
            else:
                value = {**theirs_d, **mine_d}
        elif choice == "other" or (choice is None and _empty(mine)):
            value = theirs
        else:
            value = mine
        if value != mine:
            final[f] = value
            taken[f] = value
    if "inn" in final or (choices.get("inn") == "other" and other.kpp != keep.kpp):
        final["kpp"] = other.kpp
        taken["kpp"] = other.kpp
    if final.get("parent_id") in (keep.id, other.id):
        final["parent_id"] = None
    if keep.parent_id == other.id and "parent_id" not in final:
        final["parent_id"] = None
    return final, taken


def _check_choices(choices: dict[str, str]) -> None:
    for f, side in choices.items():
        if f not in MERGE_FIELDS:
            if f == "kpp":
                raise Invalid("fields.kpp: the KPP follows the INN (choose inn)", "fields.kpp")
            raise Invalid(
                f"fields.{f}: unknown field (known: {', '.join(MERGE_FIELDS)})", f"fields.{f}"
            )
        if side not in SIDES:
            raise Invalid(f"fields.{f}: must be 'this' or 'other'", f"fields.{f}")


async def _move(s: AsyncSession, keep_id: int, other_id: int) -> dict[str, int]:
    """Point every reference to ``other_id`` at ``keep_id``; {table: rows moved}."""
    moved: dict[str, int] = {}
    for table in Base.metadata.sorted_tables:
        for fk in table.foreign_keys:
            if fk.column.table.name != "clients" or fk.column.name != "id":
                continue
            col = fk.parent
            stmt = update(table).where(col == other_id)
            if table.name == "clients":
                stmt = stmt.where(table.c.id != keep_id)
            pk_rest = [c for c in table.primary_key.columns if c is not col]
            if col.primary_key and pk_rest:
                # (client_id, x) keys: move only what the kept client lacks.
                mine = table.alias("mine")
                stmt = stmt.where(
                    ~exists().where(
                        and_(mine.c[col.name] == keep_id, *(mine.c[c.name] == c for c in pk_rest))
                    )
                )
            res = cast("CursorResult[Any]", await s.execute(stmt.values({col.name: keep_id})))
            if res.rowcount:
                name = "branches" if table.name == "clients" else table.name
                moved[name] = moved.get(name, 0) + res.rowcount
    links = update(ImportLink).where(
        ImportLink.entity == "client", ImportLink.entity_id == other_id
    )
    res = cast("CursorResult[Any]", await s.execute(links.values(entity_id=keep_id)))
    if res.rowcount:
        moved["import_links"] = res.rowcount
    return moved


async def merge_clients(
    s: AsyncSession,
    actor: Actor,
    keep_id: int,
    other_id: int,
    choices: dict[str, str] | None = None,
) -> tuple[Client, dict[str, Any]]:
    """Fold client ``other_id`` into ``keep_id`` (see the module's doc); returns the kept
    client and the audit details ``{"other_id", "other_name", "moved", "fields"}``."""
    choices = dict(choices or {})
    _check_choices(choices)
    if keep_id == other_id:
        raise Invalid("other_id must be another client than the one kept", "other_id")
    rows = {
        c.id: c
        for c in await s.scalars(
            select(Client)
            .where(Client.id.in_((keep_id, other_id)), visible_clients(actor))
            .order_by(Client.id)
            .with_for_update()
        )
    }
    if keep_id not in rows:
        raise NotFound(f"client {keep_id} not found")
    if other_id not in rows:
        raise NotFound(f"client {other_id} not found", "other_id")
    keep, other = rows[keep_id], rows[other_id]
    final, taken = _chosen(keep, other, choices)
    other_name = other.name
    moved = await _move(s, keep_id, other_id)
    s.expunge(other)
    await s.execute(delete(Client).where(Client.id == other_id))
    await s.flush()
    for f, value in final.items():
        setattr(keep, f, value)
    keep.updated_at = utcnow()
    await s.flush()
    details = {
        "other_id": other_id,
        "other_name": other_name,
        "moved": moved,
        "fields": jsonable(taken),
    }
    await audit(s, actor, "merge", "client", keep_id, details)
    return keep, details


_LEGAL = re.compile(
    r"\b(ооо|оао|зао|пао|ао|нао|ип|чп|гк|фгуп|муп|гуп|нко|ано|тоо|llc|ltd|inc|gmbh|corp|co)\b",
    re.IGNORECASE,
)
_NOT_WORD = re.compile(r"[\W_]+")


def name_core(name: str) -> str:
    """``ООО «Ромашка-М»`` -> ``ромашка м``: the name without legal form and punctuation."""
    text = _NOT_WORD.sub(" ", name.lower().replace("ё", "е"))
    return " ".join(_LEGAL.sub(" ", text).split())


def _name_query(s: AsyncSession, core: str) -> Any:
    """Ids of clients whose name holds ``core`` through the name-search index."""
    from sqlalchemy import column, table
    from sqlalchemy import text as sql_text

    if s.get_bind().dialect.name == "postgresql":
        pattern = "%" + core.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        return select(Client.id).where(Client.name.ilike(pattern, escape="\\"))
    fts = table("clients_fts", column("rowid"))
    phrase = '"' + core.replace('"', '""') + '"'
    return select(fts.c.rowid).where(sql_text("clients_fts MATCH :q").bindparams(q=phrase))


async def find_duplicates(
    s: AsyncSession, actor: Actor, client_id: int, limit: int = 20
) -> list[tuple[Client, list[str]]]:
    """Clients that may be the same as ``client_id``: the same INN, a phone or email of
    its own also held (through a contact person) by them, or a name holding this one's
    name without its legal form ("ООО Ромашка" ~ "Ромашка, АО").  Each is an index
    lookup (``clients(inn, kpp)``, ``contact_points(kind, value)``, the name-search
    index); only clients the actor may see; newest first."""
    me = await s.scalar(select(Client).where(Client.id == client_id, visible_clients(actor)))
    if me is None:
        raise NotFound(f"client {client_id} not found")
    reasons: dict[int, list[str]] = {}

    def add(ids: Any, why: str) -> None:
        for i in ids:
            if i is not None and i != client_id:
                reasons.setdefault(int(i), [])
                if why not in reasons[int(i)]:
                    reasons[int(i)].append(why)

    if me.inn:
        add(await s.scalars(select(Client.id).where(Client.inn == me.inn).limit(limit)), "inn")
    person_ids = select(ContactPerson.id).where(ContactPerson.client_id == client_id)
    points = (
        await s.execute(
            select(ContactPoint.kind, ContactPoint.value).where(
                ContactPoint.kind.in_(("phone", "email")),
                (ContactPoint.client_id == client_id)
                | ContactPoint.contact_person_id.in_(person_ids),
            )
        )
    ).all()
    for kind, value in points[:50]:
        holders = (
            select(ContactPerson.client_id)
            .join(ContactPoint, ContactPoint.contact_person_id == ContactPerson.id)
            .where(ContactPoint.kind == kind, ContactPoint.value == value)
        ).union(
            select(ContactPoint.client_id).where(
                ContactPoint.kind == kind, ContactPoint.value == value
            )
        )
        add(await s.scalars(holders), kind)
    core = name_core(me.name)
    if len(core) >= 3:
        add(await s.scalars(_name_query(s, core).limit(limit * 5)), "name")
    if not reasons:
        return []
    found = list(
        await s.scalars(
            select(Client)
            .where(Client.id.in_(list(reasons)), visible_clients(actor))
            .order_by(Client.id.desc())
        )
    )
    rank = {"inn": 0, "phone": 1, "email": 2, "name": 3}
    found.sort(key=lambda c: (min(rank[r] for r in reasons[c.id]), -c.id))
    return [(c, reasons[c.id]) for c in found[:limit]]
