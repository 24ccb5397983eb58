"""Write an imported client sheet: dedupe, batch writes, a record for undo.

Rows come from :func:`crm_core.imports.read.read_clients` (pure).  A row is matched to
a client of the base, or of the file so far, by INN, then phone, then email, with the
pipeline's identity rules (contact points of the client and of its contact persons).
A match is updated: phones and emails added, empty fields filled, never a value erased.
Rows are written in chunks inside one transaction (a failure writes nothing); the
batch records what it created, took over or filled, so :func:`undo_import` can take it
back unless it was touched since.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, cast

from sqlalchemy import CursorResult, delete, func, insert, or_, select, text, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.db import Database
from crm_core.imports.errors import RowError
from crm_core.imports.fields import header_key
from crm_core.imports.read import ClientRow, Sheet
from crm_core.models import (
    Base,
    Client,
    ContactPerson,
    ContactPoint,
    ImportBatch,
    ImportLink,
    User,
    utcnow,
)
from crm_core.services.common import NotFound, ServiceError
from crm_core.services.segments import segment_id_for

__all__ = [
    "ImportReport",
    "fail_import_job",
    "get_import",
    "import_clients",
    "queue_import_job",
    "undo_import",
]

CHUNK = 500


@dataclass(slots=True)
class ImportReport:
    import_id: int | None
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    errors: list[RowError] = field(default_factory=list)
    notes: list[RowError] = field(default_factory=list)
    mapping: dict[str, str | None] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "import_id": self.import_id,
            "rows": self.rows,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "skipped": self.skipped,
            "errors": [e.as_dict() for e in self.errors],
            "notes": [e.as_dict() for e in self.notes],
            "mapping": self.mapping,
        }


async def _chunks(rows: Iterator[ClientRow], size: int) -> AsyncIterator[list[ClientRow]]:
    """Read (parse the sheet, normalize phones) in a thread: the event loop stays free
    for the server's requests while a job imports."""
    while chunk := await asyncio.to_thread(lambda: list(islice(rows, size))):
        yield chunk


def _name_key(name: str) -> str:
    return " ".join(sorted(header_key(name).split()))


@dataclass(slots=True)
class _Users:
    by_email: dict[str, int]
    by_name: dict[str, int]

    def find(self, text: str) -> int | None:
        return self.by_email.get(text.strip().lower()) or self.by_name.get(_name_key(text))


async def _users(s: AsyncSession) -> _Users:
    rows = (await s.execute(select(User.id, User.email, User.name))).all()
    by_name: dict[str, int] = {}
    for r in rows:
        if r.name.strip():
            by_name.setdefault(_name_key(r.name), r.id)
    return _Users({r.email.lower(): r.id for r in rows}, by_name)


@dataclass(slots=True)
class _Point:
    kind: str
    value: str
    extension: str | None = None
    row: ContactPoint | None = None  # an existing point held only by a lead (claimed)


@dataclass(slots=True)
class _Target:
    """A client of the base or of this file, and what this import adds to it."""

    client: Client
    new: bool
    persons: dict[str, int | None] = field(default_factory=dict)  # name -> person id
    new_persons: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    new_points: list[tuple[str | None, _Point]] = field(default_factory=list)  # person name
    filled: dict[str, Any] = field(default_factory=dict)


class _Writer:
    def __init__(self, s: AsyncSession, batch: ImportBatch, users: _Users, owner: int | None):
        self.s = s
        self.batch = batch
        self.users = users
        self.default_owner = owner
        self.segments: dict[str, int | None] = {}
        self.report = ImportReport(import_id=batch.id)

    def _err(self, row: ClientRow, name: str, value: Any, en: str, ru: str) -> None:
        self.report.errors.append(RowError(row.row, row.columns.get(name, name), value, en, ru))

    async def chunk(self, rows: list[ClientRow]) -> None:
        s = self.s
        good: list[ClientRow] = []
        for row in rows:
            self.report.rows += 1
            if row.errors:
                self.report.errors.extend(row.errors)
            elif not row.has_key:
                self.report.skipped += 1
                self.report.notes.append(
                    RowError(
                        row.row,
                        None,
                        None,
                        "skipped: no INN, phone or email",
                        "пропущена: нет ИНН, телефона или e-mail",
                    )
                )
            elif not row.name:
                self._err(row, "name", "", "name is empty", "не указано наименование")
            else:
                good.append(row)
        if not good:
            return
        inns = {r.inn for r in good if r.inn}
        keys = {("phone", p.e164) for r in good for p in r.phones} | {
            ("email", e) for r in good for e in r.emails
        }
        by_inn: dict[str, int] = {}
        if inns:
            found_inn = await s.execute(select(Client.id, Client.inn).where(Client.inn.in_(inns)))
            for cid, inn in found_inn:
                if inn is not None:
                    by_inn[inn] = cid
        by_key: dict[tuple[str, str], int | ContactPoint] = {}
        if keys:
            found = await s.execute(
                select(ContactPoint, ContactPerson.client_id)
                .outerjoin(ContactPerson, ContactPerson.id == ContactPoint.contact_person_id)
                .where(tuple_(ContactPoint.kind, ContactPoint.value).in_(list(keys)))
            )
            for cp, person_client in found:
                owner = cp.client_id or person_client
                by_key[(cp.kind, cp.value)] = owner if owner is not None else cp
        ids = set(by_inn.values()) | {v for v in by_key.values() if isinstance(v, int)}
        targets: dict[int, _Target] = {}
        if ids:
            for c in await s.scalars(select(Client).where(Client.id.in_(ids))):
                targets[c.id] = _Target(c, new=False)
            for p in await s.scalars(select(ContactPerson).where(ContactPerson.client_id.in_(ids))):
                targets[p.client_id].persons.setdefault(header_key(p.name), p.id)
        # Keys of this chunk's new clients, as the rows create them.
        inn_t: dict[str, _Target] = {inn: targets[cid] for inn, cid in by_inn.items()}
        key_t: dict[tuple[str, str], _Target] = {
            k: targets[v] for k, v in by_key.items() if isinstance(v, int)
        }
        touched: list[_Target] = []
        for row in good:
            t = await self._row(row, inn_t, key_t, by_key)
            if t is not None and all(t is not x for x in touched):
                touched.append(t)
        await self._flush(touched)

    async def _row(
        self,
        row: ClientRow,
        inn_t: dict[str, _Target],
        key_t: dict[tuple[str, str], _Target],
        by_key: dict[tuple[str, str], int | ContactPoint],
    ) -> _Target | None:
        owner_id = self.default_owner
        if row.owner:
            owner_id = self.users.find(row.owner)
            if owner_id is None:
                self._err(
                    row,
                    "owner",
                    row.owner,
                    "no user with this email or name",
                    "нет пользователя с таким e-mail или именем",
                )
                return None
        points = [("phone", p.e164, p.extension, "phones") for p in row.phones] + [
            ("email", e, None, "emails") for e in row.emails
        ]
        matches: list[tuple[_Target, str, str]] = []
        if row.inn and row.inn in inn_t:
            matches.append((inn_t[row.inn], "inn", row.inn))
        for kind, value, _, col in points:
            if (kind, value) in key_t:
                matches.append((key_t[(kind, value)], col, value))
        target = matches[0][0] if matches else None
        for other, col, value in matches[1:]:
            if other is not target:
                self._err(
                    row,
                    col,
                    value,
                    f"belongs to another client ({other.client.name}) than the row's "
                    f"{matches[0][1]} ({target.client.name if target else ''})",
                    f"принадлежит другому клиенту ({other.client.name}), чем "
                    f"{matches[0][1]} строки",
                )
                return None
        if target is not None and row.inn and target.client.inn not in (None, row.inn):
            self._err(
                row,
                "inn",
                row.inn,
                f"the client found by {matches[0][1]} has another INN {target.client.inn}",
                f"у клиента, найденного по {matches[0][1]}, другой ИНН {target.client.inn}",
            )
            return None
        segment_id = await self._segment(row.segment)
        changed = False
        if target is None:
            client = Client(
                kind=row.kind or "company",
                name=row.name or "",
                inn=row.inn,
                status=row.status or "cold",
                owner_id=owner_id,
                region=row.region,
                notes=row.notes or "",
                segment_id=segment_id,
            )
            target = _Target(client, new=True)
            self.report.created += 1
        else:
            c = target.client
            fills: tuple[tuple[str, str | int | None], ...] = (
                ("inn", row.inn),
                ("segment_id", segment_id),
                ("owner_id", owner_id if row.owner else None),
                ("region", row.region),
            )
            for fld, val in fills:
                if val is not None and getattr(c, fld) is None:
                    setattr(c, fld, val)
                    target.filled[fld] = val
                    changed = True
            if row.notes and not c.notes:
                c.notes = row.notes
                target.filled["notes"] = row.notes
                changed = True
        if row.inn:
            inn_t[row.inn] = target
        person_key = header_key(row.contact_name) if row.contact_name else None
        if person_key is not None and person_key not in target.persons:
            target.persons[person_key] = None  # created at flush
            target.new_persons[person_key] = (row.contact_name or "", row.position)
            changed = True
        for kind, value, ext, _ in points:
            if (kind, value) in key_t:
                continue
            held = by_key.get((kind, value))
            point = _Point(kind, value, ext, held if isinstance(held, ContactPoint) else None)
            target.new_points.append((person_key, point))
            key_t[(kind, value)] = target
            changed = True
        if matches:  # a client of the base, or one an earlier row of the file created
            if changed:
                self.report.updated += 1
            else:
                self.report.unchanged += 1
        return target

    async def _segment(self, name: str | None) -> int | None:
        if not name:
            return None
        if name not in self.segments:
            self.segments[name] = await segment_id_for(self.s, name)
        return self.segments[name]

    async def _insert(self, model: Any, rows: list[dict[str, Any]]) -> list[int]:
        """One executemany INSERT with ids taken beforehand (in the order of ``rows``).

        ``INSERT ... RETURNING`` in parameter order runs row by row on SQLite, so the ids
        come from the sequence (PostgreSQL) or after the largest id (SQLite: this
        transaction holds the only write lock).
        """
        if not rows:
            return []
        table = model.__tablename__
        if self.s.get_bind().dialect.name == "postgresql":
            ids = list(
                await self.s.scalars(
                    text(
                        "SELECT nextval(pg_get_serial_sequence(:t, 'id'))"
                        " FROM generate_series(1, :n)"
                    ),
                    {"t": table, "n": len(rows)},
                )
            )
        else:
            top = int(await self.s.scalar(select(func.max(model.id))) or 0)
            ids = list(range(top + 1, top + 1 + len(rows)))
        for row, new_id in zip(rows, ids, strict=True):
            row["id"] = new_id
        await self.s.execute(insert(model), rows)
        return [int(i) for i in ids]

    async def _flush(self, targets: list[_Target]) -> None:
        now = utcnow()
        links: list[dict[str, Any]] = []
        new = [t for t in targets if t.new and t.client.id is None]
        cols = ("kind", "name", "inn", "status", "owner_id", "region", "notes", "segment_id")
        ids = await self._insert(
            Client,
            [
                {**{c: getattr(t.client, c) for c in cols}, "created_at": now, "updated_at": now}
                for t in new
            ],
        )
        for t, cid in zip(new, ids, strict=True):
            t.client.id = cid
            links.append(self._link("client", cid, "created"))
        for t in targets:
            if not t.new:
                for name, value in t.filled.items():
                    links.append(self._link("client", t.client.id, "filled", name, value))
        people = [
            (t, key, name, pos) for t in targets for key, (name, pos) in t.new_persons.items()
        ]
        person_ids = await self._insert(
            ContactPerson,
            [
                {"client_id": t.client.id, "name": name, "position": pos, "created_at": now}
                for t, _, name, pos in people
            ],
        )
        for (t, key, _, _), pid in zip(people, person_ids, strict=True):
            t.persons[key] = pid
            links.append(self._link("contact_person", pid, "created"))
        fresh: list[dict[str, Any]] = []
        for t in targets:
            for person_key, pt in t.new_points:
                person = t.persons.get(person_key) if person_key else None
                if pt.row is not None:  # held by a lead only: the client takes it over
                    pt.row.client_id = t.client.id if person is None else None
                    pt.row.contact_person_id = person
                    links.append(self._link("contact_point", pt.row.id, "claimed"))
                    continue
                fresh.append(
                    {
                        "kind": pt.kind,
                        "value": pt.value,
                        "extension": pt.extension,
                        "client_id": t.client.id if person is None else None,
                        "contact_person_id": person,
                        "unreachable": False,
                        "created_at": now,
                    }
                )
            t.new_points.clear()
            t.filled.clear()
            t.new_persons.clear()
        for pid in await self._insert(ContactPoint, fresh):
            links.append(self._link("contact_point", pid, "created"))
        if links:
            await self.s.execute(insert(ImportLink), links)

    def _link(
        self, entity: str, entity_id: int, action: str, fld: str | None = None, value: Any = None
    ) -> dict[str, Any]:
        return {
            "batch_id": self.batch.id,
            "entity": entity,
            "entity_id": entity_id,
            "action": action,
            "field": fld,
            "value": value,
        }


async def _write(
    s: AsyncSession,
    sheet: Sheet,
    *,
    file_name: str,
    user_id: int | None,
    owner_id: int | None,
    progress: Callable[[int], Awaitable[None]] | None,
    batch_id: int | None = None,
) -> ImportReport:
    batch = await s.get(ImportBatch, batch_id) if batch_id is not None else None
    if batch is None:
        batch = ImportBatch(kind="clients", file_name=file_name[:300], user_id=user_id)
        s.add(batch)
    batch.status = "running"
    await s.flush()
    writer = _Writer(s, batch, await _users(s), owner_id)
    writer.report.mapping = sheet.mapping
    async for rows in _chunks(sheet.rows, CHUNK):
        await writer.chunk(rows)
        batch.rows = writer.report.rows
        if progress is not None:
            await progress(writer.report.rows)
    report = writer.report
    batch.status = "done"
    batch.finished_at = utcnow()
    out = report.as_dict()
    out["errors"] = out["errors"][:1000]
    out["notes"] = out["notes"][:1000]
    batch.report = out
    return report


async def import_clients(
    db: Database,
    sheet: Sheet,
    *,
    file_name: str = "",
    user_id: int | None = None,
    owner_id: int | None = None,
    dry_run: bool = False,
    progress: Callable[[int], Awaitable[None]] | None = None,
    batch_id: int | None = None,
) -> ImportReport:
    """Write ``sheet``'s rows in one transaction; ``dry_run`` reports and rolls back.

    ``owner_id``: owner of new clients whose row names none.  A file error raised while
    streaming (:class:`~crm_core.imports.errors.ImportFileError`) writes nothing.
    """
    async with db.writing(), db.sessions() as s:
        tx = await s.begin()
        try:
            report = await _write(
                s,
                sheet,
                file_name=file_name,
                user_id=user_id,
                owner_id=owner_id,
                progress=progress,
                batch_id=batch_id,
            )
        except BaseException:
            await tx.rollback()
            raise
        if dry_run:
            await tx.rollback()
            report.import_id = None
        else:
            await tx.commit()
    return report


def _ids(links: Iterable[ImportLink], entity: str, action: str) -> list[int]:
    return [lk.entity_id for lk in links if lk.entity == entity and lk.action == action]


async def _referenced(
    s: AsyncSession, ids: list[int], own_points: set[int], own_people: set[int]
) -> set[int]:
    """Clients among ``ids`` that something else now points at (deals, leads, calls, a
    phone or person added by hand...)."""
    used: set[int] = set()
    if not ids:
        return used
    for table in Base.metadata.sorted_tables:
        for fk in table.foreign_keys:
            if fk.column.table.name != "clients" or table.name == "import_links":
                continue
            col = fk.parent
            query = select(col).where(col.in_(ids))
            if table.name == "contact_points" and own_points:
                query = query.where(table.c.id.not_in(own_points))
            if table.name == "contact_persons" and own_people:
                query = query.where(table.c.id.not_in(own_people))
            used |= {r for r in await s.scalars(query.distinct()) if r is not None}
    return used


async def undo_import(db: Database, import_id: int) -> dict[str, Any]:
    """Remove what import ``import_id`` created and take back what it added, except
    clients changed since (edited, or with deals, leads, calls... attached)."""
    async with db.transaction() as s:
        batch = await s.get(ImportBatch, import_id, with_for_update=True)
        if batch is None:
            raise NotFound(f"import {import_id} not found", "import_id")
        if batch.status != "done":
            raise ServiceError(f"import {import_id} is {batch.status}, not done", "import_id")
        links = list(await s.scalars(select(ImportLink).where(ImportLink.batch_id == import_id)))
        finished = batch.finished_at or utcnow()
        created = _ids(links, "client", "created")
        own_points = set(_ids(links, "contact_point", "created"))
        own_people = set(_ids(links, "contact_person", "created"))
        edited = (
            set(
                await s.scalars(
                    select(Client.id).where(Client.id.in_(created), Client.updated_at > finished)
                )
            )
            if created
            else set()
        )
        kept = edited | await _referenced(s, created, own_points, own_people)
        gone = [c for c in created if c not in kept]
        # A lead's points go back to the lead first (deleting a client would cascade).
        claimed = _ids(links, "contact_point", "claimed")
        released = 0
        if claimed:
            res = await s.execute(
                update(ContactPoint)
                .where(
                    ContactPoint.id.in_(claimed),
                    ContactPoint.lead_id.is_not(None),
                    or_(
                        ContactPoint.client_id.is_(None), ContactPoint.client_id.not_in(kept or {0})
                    ),
                    or_(
                        ContactPoint.contact_person_id.is_(None),
                        ContactPoint.contact_person_id.not_in(
                            select(ContactPerson.id).where(ContactPerson.client_id.in_(kept or {0}))
                        ),
                    ),
                )
                .values(client_id=None, contact_person_id=None)
            )
            released = cast("CursorResult[Any]", res).rowcount or 0
        if gone:
            await s.execute(delete(Client).where(Client.id.in_(gone)))
        # Points and people added to clients that stay (not the kept new ones).
        removed_points = 0
        if own_points:
            res = await s.execute(
                delete(ContactPoint).where(
                    ContactPoint.id.in_(own_points),
                    or_(
                        ContactPoint.client_id.is_(None), ContactPoint.client_id.not_in(kept or {0})
                    ),
                    or_(
                        ContactPoint.contact_person_id.is_(None),
                        ContactPoint.contact_person_id.not_in(
                            select(ContactPerson.id).where(ContactPerson.client_id.in_(kept or {0}))
                        ),
                    ),
                )
            )
            removed_points = cast("CursorResult[Any]", res).rowcount or 0
        if own_people:
            await s.execute(
                delete(ContactPerson).where(
                    ContactPerson.id.in_(own_people),
                    ContactPerson.client_id.not_in(kept or {0}),
                    ContactPerson.id.not_in(
                        select(ContactPoint.contact_person_id).where(
                            ContactPoint.contact_person_id.is_not(None)
                        )
                    ),
                )
            )
        restored = 0
        for lk in links:
            if lk.entity != "client" or lk.action != "filled" or lk.field is None:
                continue
            client = await s.get(Client, lk.entity_id)
            if client is None or getattr(client, lk.field) != lk.value:
                continue  # gone, or changed by someone since: theirs now
            setattr(client, lk.field, "" if lk.field == "notes" else None)
            restored += 1
        batch.status = "undone"
        batch.undone_at = utcnow()
        return {
            "import_id": import_id,
            "removed_clients": len(gone),
            "kept_clients": sorted(kept),
            "removed_points": removed_points,
            "released_points": released,
            "restored_fields": restored,
        }


async def queue_import_job(
    db: Database, *, file_name: str, path: str, user_id: int | None, params: dict[str, Any]
) -> int:
    """A queued import (the API's job row): the stored file and how to read it."""
    async with db.transaction() as s:
        batch = ImportBatch(
            kind="clients",
            file_name=file_name[:300],
            status="queued",
            user_id=user_id,
            report={"path": path, "params": params},
        )
        s.add(batch)
        await s.flush()
        return batch.id


async def fail_import_job(db: Database, batch_id: int, error: dict[str, Any]) -> None:
    async with db.transaction() as s:
        batch = await s.get(ImportBatch, batch_id)
        if batch is not None:
            batch.status = "failed"
            batch.finished_at = utcnow()
            batch.report = {**(batch.report or {}), "error": error}


async def get_import(db: Database, batch_id: int) -> dict[str, Any]:
    async with db.sessions() as s:
        batch = await s.get(ImportBatch, batch_id)
        if batch is None:
            raise NotFound(f"import {batch_id} not found", "id")
        report = {k: v for k, v in (batch.report or {}).items() if k not in ("path", "params")}
        return {
            "id": batch.id,
            "status": batch.status,
            "file_name": batch.file_name,
            "user_id": batch.user_id,
            "rows": batch.rows,
            "report": report,
            "created_at": batch.created_at.isoformat(),
            "finished_at": batch.finished_at.isoformat() if batch.finished_at else None,
            "undone_at": batch.undone_at.isoformat() if batch.undone_at else None,
        }
