"""Write an imported client sheet: dedupe, batch writes, a record for undo.

Rows come from :func:`crm_core.imports.read.read_clients` (pure).  A row is matched to
a client of the base, or of the file so far, by INN (with the KPP: a row with a known
INN and another KPP is a branch, a new client under the head office), then phone, then
email, with the pipeline's identity rules (contact points of the client and of its
contact persons).  A match is updated: phones, emails, contact persons, tags and
segment memberships added, empty fields filled, never a value erased.

Each chunk of rows costs one lookup per key kind (INN, phone, email), then one
executemany INSERT per table with ids taken beforehand.  The batch records what it
created (runs of ids), took over or filled, so :func:`undo_import` can take it back
unless it was touched since.  The CLI writes in one transaction (a failure writes
nothing); a job (:func:`run_import_job`) commits chunk by chunk with the last row
committed, so a restart goes on from there.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from itertools import islice
from typing import Any, cast

from sqlalchemy import (
    CursorResult,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.access import Actor
from crm_core.db import Database
from crm_core.imports.catalog import Catalog, CustomSpec, option_value
from crm_core.imports.errors import ImportFileError, RowError
from crm_core.imports.fields import header_key
from crm_core.imports.read import ClientRow, Sheet
from crm_core.models import (
    Base,
    Client,
    ClientStatus,
    ClientTag,
    ContactPerson,
    ContactPoint,
    CustomField,
    ImportBatch,
    ImportLink,
    Segment,
    SegmentClient,
    User,
    utcnow,
)
from crm_core.services import consent as consent_svc
from crm_core.services.common import NotFound, ServiceError

__all__ = [
    "ImportReport",
    "JobLost",
    "claim_import_job",
    "fail_import_job",
    "get_import",
    "import_clients",
    "list_imports",
    "load_catalog",
    "queue_import_job",
    "undo_import",
]

CHUNK = 1000
# Client columns an import fills when empty (and takes back on undo).
_FILLABLE = (
    "full_name",
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
)
_LOOKUP_COLS = tuple(
    getattr(Client, c)
    for c in (
        "id",
        "name",
        "kpp",
        "parent_id",
        "owner_id",
        "segment_id",
        "notes",
        "custom",
        *_FILLABLE,
    )
)
_NEW_COLS = (
    "kind",
    "name",
    "full_name",
    "inn",
    "kpp",
    "ogrn",
    "status",
    "owner_id",
    "parent_id",
    "segment_id",
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
    "custom",
    "notes",
)


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
    # "Согласие на рассылку": addresses changed / already so / kept (they unsubscribed)
    consent: dict[str, int] = field(
        default_factory=lambda: {"changed": 0, "unchanged": 0, "kept": 0}
    )

    def as_dict(self, limit: int | None = None) -> dict[str, Any]:
        return {
            "consent": dict(self.consent),
            "import_id": self.import_id,
            "rows": self.rows,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "skipped": self.skipped,
            "errors": [e.as_dict() for e in self.errors[:limit]],
            "notes": [e.as_dict() for e in self.notes[:limit]],
            "mapping": self.mapping,
        }

    @classmethod
    def restore(cls, import_id: int, data: dict[str, Any]) -> ImportReport:
        """The partial report a job committed before a restart."""

        def errs(key: str) -> list[RowError]:
            return [
                RowError(e["row"], e.get("column"), e.get("value"), e["error"], e["error_ru"])
                for e in data.get(key) or []
            ]

        return cls(
            import_id,
            int(data.get("rows") or 0),
            int(data.get("created") or 0),
            int(data.get("updated") or 0),
            int(data.get("unchanged") or 0),
            int(data.get("skipped") or 0),
            errs("errors"),
            errs("notes"),
            dict(data.get("mapping") or {}),
            {k: int(v) for k, v in (data.get("consent") or {}).items()}
            or {"changed": 0, "unchanged": 0, "kept": 0},
        )


async def load_catalog(db: Database) -> Catalog:
    """The statuses and the active custom fields of clients, for the reader."""
    async with db.sessions() as s:
        statuses = [
            (r.key, r.name_ru, r.name_en)
            for r in await s.execute(
                select(ClientStatus.key, ClientStatus.name_ru, ClientStatus.name_en)
                .where(ClientStatus.active.is_(True))
                .order_by(ClientStatus.position)
            )
        ]
        custom = [
            CustomSpec(
                f.key,
                f.label_ru,
                f.label_en or "",
                f.type,
                tuple(option_value(o) for o in (f.options or [])),
            )
            for f in await s.scalars(
                select(CustomField)
                .where(CustomField.entity == "client", CustomField.active.is_(True))
                .order_by(CustomField.position, CustomField.id)
            )
        ]
    return Catalog(statuses or list(Catalog().statuses), custom)


async def _chunks(rows: Iterator[ClientRow], size: int) -> AsyncIterator[list[ClientRow]]:
    """Read (parse the sheet, normalize phones) in a thread: the event loop stays free
    for the server's requests while a job imports."""
    while chunk := await asyncio.to_thread(lambda: list(islice(rows, size))):
        yield chunk


def _name_key(name: str) -> str:
    return " ".join(sorted(header_key(name).split()))


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


@dataclass(slots=True)
class _Users:
    by_email: dict[str, int]
    by_name: dict[str, int]

    def find(self, text_: str) -> int | None:
        return self.by_email.get(text_.strip().lower()) or self.by_name.get(_name_key(text_))


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
    claimed: int | None = None  # id of an existing point held only by a lead


@dataclass(slots=True, eq=False)
class _Target:
    """A client of the base or of this file, and what this import adds to it."""

    id: int | None
    name: str
    inn: str | None
    kpp: str
    parent_id: int | None
    new: bool
    values: dict[str, Any] = field(default_factory=dict)  # new: columns; old: current
    persons: dict[str, int | None] = field(default_factory=dict)  # name key -> id
    tags: set[str] = field(default_factory=set)
    segments: set[int] = field(default_factory=set)
    new_persons: list[tuple[str, str, str | None, bool]] = field(default_factory=list)
    new_points: list[tuple[str | None, _Point]] = field(default_factory=list)
    new_tags: list[str] = field(default_factory=list)
    new_segments: list[int] = field(default_factory=list)
    filled: dict[str, Any] = field(default_factory=dict)
    parent: _Target | None = None  # a head office created by this chunk


def _runs(ids: list[int]) -> list[tuple[int, int]]:
    """[5, 6, 7, 9] -> [(5, 3), (9, 1)]: runs of consecutive ids."""
    out: list[tuple[int, int]] = []
    for i in sorted(ids):
        if out and out[-1][0] + out[-1][1] == i:
            out[-1] = (out[-1][0], out[-1][1] + 1)
        else:
            out.append((i, 1))
    return out


class _Writer:
    def __init__(
        self,
        s: AsyncSession,
        batch: ImportBatch,
        users: _Users,
        owner: int | None,
        report: ImportReport | None = None,
    ) -> None:
        self.s = s
        self.batch = batch
        self.users = users
        self.default_owner = owner
        self.segments: dict[str, int] = {}
        self.report = report or ImportReport(import_id=batch.id)
        self.pg = s.get_bind().dialect.name == "postgresql"

    def _err(self, row: ClientRow, name: str, value: Any, en: str, ru: str) -> None:
        self.report.errors.append(RowError(row.row, row.columns.get(name, name), value, en, ru))

    async def _lookup(
        self, rows: list[ClientRow]
    ) -> tuple[dict[str, list[_Target]], dict[tuple[str, str], _Target], dict[str, _Target]]:
        """One query per key kind for the chunk: clients by INN (and parent INN), points
        by phone, by email; clients by parent name; then the matched clients' persons,
        tags and segments."""
        s = self.s
        inns = {r.inn for r in rows if r.inn} | {
            r.parent for r in rows if r.parent and r.parent.isdigit()
        }
        parent_names = {r.parent for r in rows if r.parent and not r.parent.isdigit()}
        phones = {p.e164 for r in rows for p in r.phones}
        emails = {e for r in rows for e in r.emails}
        cols = _LOOKUP_COLS
        found: dict[int, Any] = {}
        if inns:
            for r in await s.execute(select(*cols).where(Client.inn.in_(inns))):
                found[r.id] = r
        if parent_names:
            for r in await s.execute(select(*cols).where(Client.name.in_(parent_names))):
                found[r.id] = r
        point_owner: dict[tuple[str, str], int | None] = {}
        self.claimable: dict[tuple[str, str], int] = {}
        for kind, values in (("phone", phones), ("email", emails)):
            if not values:
                continue
            q = (
                select(
                    ContactPoint.id,
                    ContactPoint.value,
                    ContactPoint.client_id,
                    ContactPerson.client_id.label("person_client"),
                )
                .outerjoin(ContactPerson, ContactPerson.id == ContactPoint.contact_person_id)
                .where(ContactPoint.kind == kind, ContactPoint.value.in_(values))
            )
            for r in await s.execute(q):
                owner = r.client_id or r.person_client
                point_owner[(kind, r.value)] = owner
                if owner is None:
                    self.claimable[(kind, r.value)] = r.id
        missing = {o for o in point_owner.values() if o is not None} - set(found)
        if missing:
            for r in await s.execute(select(*cols).where(Client.id.in_(missing))):
                found[r.id] = r
        targets = {
            cid: _Target(cid, r.name, r.inn, r.kpp or "", r.parent_id, False, dict(r._mapping))
            for cid, r in found.items()
        }
        for t in targets.values():
            t.values["custom"] = dict(t.values.get("custom") or {})
        if targets:
            ids = list(targets)
            for pid, cid, pname in await s.execute(
                select(ContactPerson.id, ContactPerson.client_id, ContactPerson.name).where(
                    ContactPerson.client_id.in_(ids)
                )
            ):
                targets[cid].persons.setdefault(header_key(pname), pid)
            for cid, tag in await s.execute(
                select(ClientTag.client_id, ClientTag.tag).where(ClientTag.client_id.in_(ids))
            ):
                targets[cid].tags.add(tag)
            for cid, sid in await s.execute(
                select(SegmentClient.client_id, SegmentClient.segment_id).where(
                    SegmentClient.client_id.in_(ids)
                )
            ):
                targets[cid].segments.add(sid)
        by_inn: dict[str, list[_Target]] = {}
        by_name: dict[str, _Target] = {}
        for t in sorted(targets.values(), key=lambda t: t.id or 0):
            if t.inn:
                by_inn.setdefault(t.inn, []).append(t)
            by_name.setdefault(t.name, t)
        by_key = {k: targets[o] for k, o in point_owner.items() if o is not None}
        return by_inn, by_key, by_name

    async def _load_segments(self, rows: list[ClientRow]) -> None:
        names = {n for r in rows for n in r.segments} - set(self.segments)
        if not names:
            return
        for sid, name in await self.s.execute(
            select(Segment.id, Segment.name).where(Segment.name.in_(names))
        ):
            self.segments[name] = sid
        new = sorted(names - set(self.segments))
        if new:
            now = utcnow()
            ids = await self._insert(
                Segment,
                [{"name": n, "description": "", "kind": "manual", "created_at": now} for n in new],
            )
            self.segments.update(zip(new, ids, strict=True))
            self.links.extend(
                self._link("segment", i, "created", value=n) for i, n in zip(ids, new, strict=True)
            )

    async def chunk(self, rows: list[ClientRow]) -> None:
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
        self.links: list[dict[str, Any]] = []
        if not good:
            return
        await self._load_segments(good)
        by_inn, by_key, by_name = await self._lookup(good)
        touched: list[_Target] = []
        seen: set[int] = set()
        consent: dict[str, tuple[str, ClientRow]] = {}
        for row in good:
            t = self._row(row, by_inn, by_key, by_name)
            if t is not None and id(t) not in seen:
                seen.add(id(t))
                touched.append(t)
            if t is not None and row.email_consent:
                consent.update((e, (row.email_consent, row)) for e in row.emails)
        await self._flush(touched)
        if consent:
            await self._consent(consent)

    async def _consent(self, consent: dict[str, tuple[str, ClientRow]]) -> None:
        """The "Согласие на рассылку" column for the rows' emails (never lifting an
        address's own unsubscribe: a note says so)."""
        who = Actor(self.batch.user_id, "manager") if self.batch.user_id else None
        counts, kept = await consent_svc.set_consent_many(
            self.s, {e: st for e, (st, _) in consent.items()}, "import", who
        )
        for key, n in counts.items():
            self.report.consent[key] = self.report.consent.get(key, 0) + n
        for email in kept:
            row = consent[email][1]
            self.report.notes.append(
                RowError(
                    row.row,
                    row.columns.get("email_consent"),
                    email,
                    "consent not set: the address unsubscribed or bounced",
                    "согласие не записано: адрес отписался сам или не существует",
                )
            )

    def _parent(
        self, row: ClientRow, by_inn: dict[str, list[_Target]], by_name: dict[str, _Target]
    ) -> tuple[bool, _Target | None]:
        if not row.parent:
            return True, None
        parent = _head(by_inn.get(row.parent, [])) if row.parent.isdigit() else None
        if parent is None:
            parent = by_name.get(row.parent)
        if parent is None:
            self._err(
                row,
                "parent",
                row.parent,
                "no company with this INN or name (import the parent company first)",
                "нет компании с таким ИНН или наименованием (сначала импортируйте головную)",
            )
            return False, None
        return True, parent

    def _row(
        self,
        row: ClientRow,
        by_inn: dict[str, list[_Target]],
        key_t: dict[tuple[str, str], _Target],
        by_name: dict[str, _Target],
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
        ok, parent = self._parent(row, by_inn, by_name)
        if not ok:
            return None
        points = [("phone", p.e164, p.extension, "phones") for p in row.phones] + [
            ("email", e, None, "emails") for e in row.emails
        ]
        matches: list[tuple[_Target, str, str]] = []
        head: _Target | None = None  # the head office of a new branch
        if row.inn and row.inn in by_inn:
            same = by_inn[row.inn]
            kpp = row.kpp or ""
            exact = next((t for t in same if t.kpp == kpp), None)
            if exact is None and not row.kpp:
                exact = _head(same)
            if exact is None:  # the same company with no KPP recorded: KPP filled in
                name = header_key(row.name or "")
                exact = next((t for t in same if not t.kpp and header_key(t.name) == name), None)
            if exact is not None:
                matches.append((exact, "inn", row.inn))
            else:
                head = _head(same)
        for kind, value, _, col in points:
            if (kind, value) in key_t:
                matches.append((key_t[(kind, value)], col, value))
        target = matches[0][0] if matches else None
        for other, col, value in matches[1:]:
            if other is not target:
                first = matches[0][1]
                self._err(
                    row,
                    col,
                    value,
                    f"belongs to another client ({other.name}) than the row's {first} "
                    f"({target.name if target else ''})",
                    f"принадлежит другому клиенту ({other.name}), чем {first} строки",
                )
                return None
        if target is not None and row.inn and target.inn not in (None, row.inn):
            self._err(
                row,
                "inn",
                row.inn,
                f"the client found by {matches[0][1]} has another INN {target.inn}",
                f"у клиента, найденного по {matches[0][1]}, другой ИНН {target.inn}",
            )
            return None
        segment_ids = [self.segments[n] for n in row.segments]
        parent = parent or head
        changed = False
        if target is None:
            values: dict[str, Any] = {
                "kind": row.kind or "company",
                "name": row.name or "",
                "full_name": row.full_name,
                "inn": row.inn,
                "kpp": row.kpp or "",
                "ogrn": row.ogrn,
                "status": row.status or "cold",
                "owner_id": owner_id,
                "parent_id": parent.id if parent is not None else None,
                "segment_id": segment_ids[0] if segment_ids else None,
                "legal_address": row.legal_address,
                "actual_address": row.actual_address,
                "city": row.city,
                "region": row.region,
                "industry": row.industry,
                "activity": row.activity,
                "headcount": row.headcount,
                "revenue": row.revenue,
                "website": row.website,
                "birthday": row.birthday,
                "source": row.source,
                "custom": dict(row.custom),
                "notes": row.notes or "",
            }
            target = _Target(
                None, row.name or "", row.inn, row.kpp or "", values["parent_id"], True, values
            )
            if parent is not None and parent.id is None:
                target.parent = parent
            self.report.created += 1
            by_name.setdefault(target.name, target)
        else:
            changed = self._fill(target, row, owner_id, parent, segment_ids)
        if row.inn:
            same = by_inn.setdefault(row.inn, [])
            if all(t is not target for t in same):
                same.append(target)
        for seg in segment_ids:
            if seg not in target.segments:
                target.segments.add(seg)
                target.new_segments.append(seg)
                changed = True
        for tag in row.tags:
            if tag not in target.tags:
                target.tags.add(tag)
                target.new_tags.append(tag)
                changed = True
        person_key = header_key(row.contact_name) if row.contact_name else None
        for name, position in row.persons:
            key = header_key(name)
            if key not in target.persons:
                primary = not target.persons
                target.persons[key] = None  # created at flush
                target.new_persons.append((key, name, position, primary))
                changed = True
        for kind, value, ext, _ in points:
            if (kind, value) in key_t:
                continue
            claimed = self.claimable.get((kind, value))
            target.new_points.append((person_key, _Point(kind, value, ext, claimed)))
            key_t[(kind, value)] = target
            changed = True
        if matches:  # a client of the base, or one an earlier row of the file created
            if changed:
                self.report.updated += 1
            else:
                self.report.unchanged += 1
        return target

    def _fill(
        self,
        target: _Target,
        row: ClientRow,
        owner_id: int | None,
        parent: _Target | None,
        segment_ids: list[int],
    ) -> bool:
        """Fill the empty fields of a matched client; a client of the base records each
        in ``filled`` (written at flush, taken back by undo)."""
        wanted: dict[str, Any] = {f: getattr(row, f) for f in _FILLABLE}
        if row.owner:
            wanted["owner_id"] = owner_id
        if parent is not None and parent is not target and parent.id is not None:
            wanted["parent_id"] = parent.id
        if segment_ids:
            wanted["segment_id"] = segment_ids[0]
        if row.notes:
            wanted["notes"] = row.notes
        if row.kpp and not target.kpp:
            wanted["kpp"] = row.kpp
            target.kpp = row.kpp
        changed = False
        values = target.values
        for k, v in wanted.items():
            if v is None or values.get(k) not in (None, ""):
                continue
            values[k] = v
            if not target.new:
                target.filled[k] = v
            changed = True
        custom = values["custom"]
        for key, v in row.custom.items():
            if key not in custom:
                custom[key] = v
                if not target.new:
                    target.filled["custom." + key] = v
                changed = True
        if "inn" in target.filled:
            target.inn = target.filled["inn"]
        return changed

    async def _many(self, model: Any, rows: list[dict[str, Any]]) -> None:
        """A Core executemany (no ORM bulk bookkeeping per row)."""
        conn = await self.s.connection()
        await conn.execute(insert(model.__table__), rows)

    async def _insert(self, model: Any, rows: list[dict[str, Any]]) -> list[int]:
        """One executemany INSERT with ids taken beforehand (in the order of ``rows``).

        ``INSERT ... RETURNING`` in parameter order runs row by row on SQLite, so the ids
        come from the sequence (PostgreSQL) or after the largest id (SQLite: this
        transaction holds the only write lock).
        """
        if not rows:
            return []
        table = model.__tablename__
        if self.pg:
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
        await self._many(model, rows)
        return [int(i) for i in ids]

    async def _apply_fills(self, targets: list[_Target]) -> None:
        """Write the fields filled on clients of the base (one UPDATE per client)."""
        for t in targets:
            if t.new or not t.filled:
                continue
            changes = {k: v for k, v in t.filled.items() if not k.startswith("custom.")}
            if any(k.startswith("custom.") for k in t.filled):
                changes["custom"] = t.values["custom"]
            await self.s.execute(update(Client).where(Client.id == t.id).values(**changes))
            self.links.extend(
                self._link("client", t.id or 0, "filled", k, _jsonable(v))
                for k, v in t.filled.items()
            )
            t.filled.clear()

    async def _flush(self, targets: list[_Target]) -> None:
        now = utcnow()
        links = self.links
        await self._apply_fills(targets)
        new = [t for t in targets if t.new and t.id is None]
        # Head offices first: a branch of this chunk points at its head's new id.
        while new:
            group = [t for t in new if t.parent is None or t.parent.id is not None] or new
            taken = {id(t) for t in group}
            new = [t for t in new if id(t) not in taken]
            for t in group:
                if t.parent is not None:
                    t.values["parent_id"] = t.parent.id
            ids = await self._insert(
                Client,
                [
                    {
                        **{c: t.values[c] for c in _NEW_COLS},
                        "created_at": now,
                        "updated_at": now,
                    }
                    for t in group
                ],
            )
            for t, cid in zip(group, ids, strict=True):
                t.id = cid
            links.extend(
                self._link("client", first, "created", value=n if n > 1 else None)
                for first, n in _runs(ids)
            )
        people = [
            (t, key, name, pos, primary)
            for t in targets
            for key, name, pos, primary in t.new_persons
        ]
        person_ids = await self._insert(
            ContactPerson,
            [
                {
                    "client_id": t.id,
                    "name": name,
                    "position": pos,
                    "notes": "",
                    "is_primary": primary,
                    "created_at": now,
                }
                for t, _, name, pos, primary in people
            ],
        )
        for (t, key, _, _, _), pid in zip(people, person_ids, strict=True):
            t.persons[key] = pid
        links.extend(
            self._link("contact_person", first, "created", value=n if n > 1 else None)
            for first, n in _runs(person_ids)
        )
        fresh: list[dict[str, Any]] = []
        tags: list[dict[str, Any]] = []
        members: list[dict[str, Any]] = []
        for t in targets:
            assert t.id is not None
            for person_key, pt in t.new_points:
                person = t.persons.get(person_key) if person_key else None
                if pt.claimed is not None:  # held by a lead only: the client takes it over
                    await self.s.execute(
                        update(ContactPoint)
                        .where(ContactPoint.id == pt.claimed)
                        .values(
                            client_id=t.id if person is None else None, contact_person_id=person
                        )
                    )
                    links.append(self._link("contact_point", pt.claimed, "claimed"))
                    continue
                fresh.append(
                    {
                        "kind": pt.kind,
                        "value": pt.value,
                        "extension": pt.extension,
                        "client_id": t.id if person is None else None,
                        "contact_person_id": person,
                        "unreachable": False,
                        "created_at": now,
                    }
                )
            for tag in t.new_tags:
                tags.append({"client_id": t.id, "tag": tag})
                if not t.new:
                    links.append(self._link("client_tag", t.id, "added", "tag", tag))
            for seg in t.new_segments:
                members.append({"segment_id": seg, "client_id": t.id, "added_at": now})
                if not t.new:
                    links.append(self._link("segment_client", t.id, "added", "segment_id", seg))
            t.new_points.clear()
            t.new_persons.clear()
            t.new_tags.clear()
            t.new_segments.clear()
        point_ids = await self._insert(ContactPoint, fresh)
        links.extend(
            self._link("contact_point", first, "created", value=n if n > 1 else None)
            for first, n in _runs(point_ids)
        )
        if tags:
            await self._many(ClientTag, tags)
        if members:
            await self._many(SegmentClient, members)
        if links:
            await self._many(ImportLink, links)
        self.links = []

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


def _head(same: list[_Target]) -> _Target | None:
    """The head office among the clients of one INN: the one without a KPP, else the
    first without a parent, else the first."""
    if not same:
        return None
    return (
        next((t for t in same if not t.kpp), None)
        or next((t for t in same if t.parent_id is None and t.parent is None), None)
        or same[0]
    )


def _final(report: ImportReport) -> dict[str, Any]:
    return report.as_dict(limit=1000)


async def _new_batch(s: AsyncSession, file_name: str, user_id: int | None) -> ImportBatch:
    batch = ImportBatch(kind="clients", file_name=file_name[:300], user_id=user_id)
    s.add(batch)
    batch.status = "running"
    await s.flush()
    return batch


async def import_clients(
    db: Database,
    sheet: Sheet,
    *,
    file_name: str = "",
    user_id: int | None = None,
    owner_id: int | None = None,
    dry_run: bool = False,
    progress: Callable[[int], Awaitable[None]] | None = None,
) -> ImportReport:
    """Write ``sheet``'s rows in one transaction; ``dry_run`` reports and rolls back.

    ``owner_id``: owner of new clients whose row names none.  A file error raised while
    streaming (:class:`~crm_core.imports.errors.ImportFileError`) writes nothing.
    """
    async with db.writing(), db.sessions() as s:
        tx = await s.begin()
        try:
            batch = await _new_batch(s, file_name, user_id)
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
            batch.report = _final(report)
            await s.flush()
        except BaseException:
            await tx.rollback()
            raise
        if dry_run:
            await tx.rollback()
            report.import_id = None
        else:
            await tx.commit()
    return report


# --- jobs (API, browser): durable, resumable, claimed by one hub ---------------------


class JobLost(RuntimeError):
    """This hub's lease on a job ran out and another hub took the job over."""


async def queue_import_job(
    db: Database,
    *,
    file_name: str,
    path: str,
    user_id: int | None,
    params: dict[str, Any],
    dry_run: bool = False,
) -> int:
    """A queued import (the API's job row): the stored file and how to read it."""
    async with db.transaction() as s:
        batch = ImportBatch(
            kind="clients",
            file_name=file_name[:300],
            status="queued",
            user_id=user_id,
            params={**params, "path": path},
            dry_run=dry_run,
            report={},
        )
        s.add(batch)
        await s.flush()
        return batch.id


async def claim_import_job(
    db: Database, owner: str, lease: timedelta, *, batch_id: int | None = None
) -> ImportBatch | None:
    """Take one queued job, or a running one whose hub stopped renewing its lease (a
    crash), for ``owner``.  On PostgreSQL the row is taken with ``FOR UPDATE SKIP
    LOCKED``, so two hubs never take the same job."""
    now = utcnow()
    claimable = (
        ImportBatch.status.in_(("queued", "running")),
        or_(ImportBatch.lease_until.is_(None), ImportBatch.lease_until < now),
    )
    async with db.sessions() as s:  # a read first: no write transaction while idle
        if await s.scalar(select(ImportBatch.id).where(*claimable).limit(1)) is None:
            return None
    async with db.transaction() as s:
        q = select(ImportBatch).where(*claimable).order_by(ImportBatch.id).limit(1)
        if batch_id is not None:
            q = q.where(ImportBatch.id == batch_id)
        if db.is_postgres:
            q = q.with_for_update(skip_locked=True)
        batch = await s.scalar(q)
        if batch is None:
            return None
        batch.lease_owner = owner
        batch.lease_until = now + lease
        batch.status = "running"
        await s.flush()
        s.expunge(batch)
        return batch


async def renew_lease(db: Database, batch_id: int, owner: str, lease: timedelta) -> bool:
    async with db.transaction() as s:
        res = await s.execute(
            update(ImportBatch)
            .where(ImportBatch.id == batch_id, ImportBatch.lease_owner == owner)
            .values(lease_until=utcnow() + lease)
        )
        return bool(cast("CursorResult[Any]", res).rowcount)


async def release_leases(db: Database, owner: str) -> None:
    """On a clean shutdown: ``owner``'s running jobs may be taken at once (by the next
    start or another hub), without waiting for the lease to run out."""
    mine = (ImportBatch.lease_owner == owner, ImportBatch.status == "running")
    async with db.sessions() as s:
        if await s.scalar(select(ImportBatch.id).where(*mine).limit(1)) is None:
            return
    async with db.transaction() as s:
        await s.execute(update(ImportBatch).where(*mine).values(lease_until=None))


async def run_import_job(
    db: Database,
    batch: ImportBatch,
    sheet: Sheet,
    *,
    owner: str,
    lease: timedelta,
    progress: Callable[[int], Awaitable[None]] | None = None,
) -> ImportReport:
    """Run a claimed job: chunk by chunk, each in its own transaction with the last row
    committed and the report so far, so a restart goes on after that row (rows before
    it are not read again; re-reading them would change nothing anyway).  A dry run is
    one transaction rolled back; its report is kept.  A file error midway (too many
    rows) takes back what the job wrote: nothing stays."""
    async with db.sessions() as s0:
        users = await _users(s0)
    report = ImportReport.restore(batch.id, batch.report or {})
    report.import_id = batch.id
    report.mapping = sheet.mapping
    owner_id = (batch.params or {}).get("owner_id")
    done_row = batch.done_row
    if batch.dry_run:
        async with db.writing(), db.sessions() as s:
            tx = await s.begin()
            try:
                live = await s.get(ImportBatch, batch.id)
                assert live is not None
                writer = _Writer(s, live, users, owner_id, ImportReport(batch.id))
                writer.report.mapping = sheet.mapping
                async for rows in _chunks(sheet.rows, CHUNK):
                    await writer.chunk(rows)
                    if progress is not None:
                        await progress(writer.report.rows)
                report = writer.report
            finally:
                await tx.rollback()
        async with db.transaction() as s:
            live = await s.get(ImportBatch, batch.id)
            assert live is not None
            live.status, live.rows, live.finished_at = "done", report.rows, utcnow()
            live.report, live.lease_until = _final(report), None
        return report
    rows_iter = (r for r in sheet.rows if r.row > done_row)
    try:
        async for rows in _chunks(rows_iter, CHUNK):
            async with db.transaction() as s:
                live = await s.get(ImportBatch, batch.id, with_for_update=db.is_postgres)
                if live is None or live.lease_owner != owner or live.status != "running":
                    raise JobLost(f"import {batch.id} is now run by another hub")
                writer = _Writer(s, live, users, owner_id, report)
                await writer.chunk(rows)
                live.rows = report.rows
                live.done_row = rows[-1].row
                live.report = _final(report)
                live.lease_until = utcnow() + lease
            if progress is not None:
                await progress(report.rows)
    except ImportFileError:
        async with db.transaction() as s:
            live = await s.get(ImportBatch, batch.id)
            if live is not None:
                await _take_back(s, live)
        raise
    async with db.transaction() as s:
        live = await s.get(ImportBatch, batch.id)
        assert live is not None
        live.status, live.finished_at, live.lease_until = "done", utcnow(), None
        live.rows, live.report = report.rows, _final(report)
    return report


async def fail_import_job(db: Database, batch_id: int, error: dict[str, Any]) -> None:
    async with db.transaction() as s:
        batch = await s.get(ImportBatch, batch_id)
        if batch is not None:
            batch.status = "failed"
            batch.finished_at = utcnow()
            batch.lease_until = None
            batch.report = {**(batch.report or {}), "error": error}


def _batch_dict(batch: ImportBatch) -> dict[str, Any]:
    return {
        "id": batch.id,
        "status": batch.status,
        "dry_run": batch.dry_run,
        "file_name": batch.file_name,
        "user_id": batch.user_id,
        "rows": batch.rows,
        "total": (batch.params or {}).get("total"),
        "report": {k: v for k, v in (batch.report or {}).items() if k not in ("path", "params")},
        "created_at": batch.created_at.isoformat(),
        "finished_at": batch.finished_at.isoformat() if batch.finished_at else None,
        "undone_at": batch.undone_at.isoformat() if batch.undone_at else None,
    }


async def get_import(db: Database, batch_id: int) -> dict[str, Any]:
    async with db.sessions() as s:
        batch = await s.get(ImportBatch, batch_id)
        if batch is None:
            raise NotFound(f"import {batch_id} not found", "id")
        return _batch_dict(batch)


async def list_imports(db: Database, limit: int = 50) -> list[dict[str, Any]]:
    """The latest imports (dry runs left out), newest first, without their reports'
    error lists."""
    async with db.sessions() as s:
        batches = await s.scalars(
            select(ImportBatch)
            .where(ImportBatch.dry_run.is_(False))
            .order_by(ImportBatch.id.desc())
            .limit(limit)
        )
        out = []
        for b in batches:
            d = _batch_dict(b)
            rep = d.pop("report")
            d["summary"] = {
                k: rep.get(k) for k in ("created", "updated", "unchanged", "skipped")
            } | {"errors": len(rep.get("errors") or [])}
            out.append(d)
        return out


# --- undo ------------------------------------------------------------------------------


def _ids(links: Iterable[ImportLink], entity: str, action: str) -> list[int]:
    out: list[int] = []
    for lk in links:
        if lk.entity == entity and lk.action == action:
            n = lk.value if action == "created" and isinstance(lk.value, int) else 1
            out.extend(range(lk.entity_id, lk.entity_id + n))
    return out


async def _referenced(
    s: AsyncSession, ids: list[int], own_points: set[int], own_people: set[int]
) -> set[int]:
    """Clients among ``ids`` that something else now points at (deals, leads, calls, a
    phone or person added by hand, a branch not from this import...)."""
    used: set[int] = set()
    if not ids:
        return used
    mine = set(ids)
    for table in Base.metadata.sorted_tables:
        if table.name in ("import_links", "client_tags", "segment_clients"):
            continue  # tags and manual segments go with the client
        for fk in table.foreign_keys:
            if fk.column.table.name != "clients":
                continue
            col = fk.parent
            own = {
                "contact_points": own_points,
                "contact_persons": own_people,
                "clients": mine,
            }.get(table.name)
            has_id = "id" in table.c
            for part in _chunked(ids):
                if has_id and own:
                    query = select(col, table.c.id).where(col.in_(part))
                else:
                    query = select(col, col).where(col.in_(part)).distinct()
                for ref, row_id in await s.execute(query):
                    if ref is not None and not (own and row_id in own):
                        used.add(ref)
    return used


async def undo_import(db: Database, import_id: int) -> dict[str, Any]:
    """Remove what import ``import_id`` created and take back what it added, except
    clients changed since (edited, or with deals, leads, calls... attached)."""
    async with db.transaction() as s:
        batch = await s.get(ImportBatch, import_id, with_for_update=True)
        if batch is None:
            raise NotFound(f"import {import_id} not found", "import_id")
        if batch.dry_run:
            raise ServiceError(f"import {import_id} is a dry run: nothing to undo", "import_id")
        if batch.status != "done":
            raise ServiceError(f"import {import_id} is {batch.status}, not done", "import_id")
        return await _take_back(s, batch)


def _chunked(ids: list[int] | set[int], n: int = 5000) -> list[list[int]]:
    seq = sorted(ids)
    return [seq[i : i + n] for i in range(0, len(seq), n)]


async def _take_back(s: AsyncSession, batch: ImportBatch) -> dict[str, Any]:
    import_id = batch.id
    links = list(await s.scalars(select(ImportLink).where(ImportLink.batch_id == import_id)))
    finished = batch.finished_at or utcnow()
    created = _ids(links, "client", "created")
    own_points = set(_ids(links, "contact_point", "created"))
    own_people = set(_ids(links, "contact_person", "created"))
    edited: set[int] = set()
    for part in _chunked(created):
        edited |= set(
            await s.scalars(
                select(Client.id).where(Client.id.in_(part), Client.updated_at > finished)
            )
        )
    kept = edited | await _referenced(s, created, own_points, own_people)
    gone = [c for c in created if c not in kept]
    kept_ids = sorted(kept) or [0]
    kept_people = select(ContactPerson.id).where(ContactPerson.client_id.in_(kept_ids))
    # A lead's points go back to the lead first (deleting a client would cascade).
    claimed = _ids(links, "contact_point", "claimed")
    released = 0
    if claimed:
        res = await s.execute(
            update(ContactPoint)
            .where(
                ContactPoint.id.in_(claimed),
                ContactPoint.lead_id.is_not(None),
                or_(ContactPoint.client_id.is_(None), ContactPoint.client_id.not_in(kept_ids)),
                or_(
                    ContactPoint.contact_person_id.is_(None),
                    ContactPoint.contact_person_id.not_in(kept_people),
                ),
            )
            .values(client_id=None, contact_person_id=None)
        )
        released = cast("CursorResult[Any]", res).rowcount or 0
    # Branches first, then head offices (clients.parent_id has no cascade).
    for part in _chunked(gone):
        await s.execute(update(Client).where(Client.id.in_(part)).values(parent_id=None))
    for part in _chunked(gone):
        await s.execute(delete(Client).where(Client.id.in_(part)))
    # Points and people added to clients that stay (not the kept new ones).
    removed_points = 0
    for part in _chunked(own_points):
        res = await s.execute(
            delete(ContactPoint).where(
                ContactPoint.id.in_(part),
                or_(ContactPoint.client_id.is_(None), ContactPoint.client_id.not_in(kept_ids)),
                or_(
                    ContactPoint.contact_person_id.is_(None),
                    ContactPoint.contact_person_id.not_in(kept_people),
                ),
            )
        )
        removed_points += cast("CursorResult[Any]", res).rowcount or 0
    for part in _chunked(own_people):
        await s.execute(
            delete(ContactPerson).where(
                ContactPerson.id.in_(part),
                ContactPerson.client_id.not_in(kept_ids),
                ContactPerson.id.not_in(
                    select(ContactPoint.contact_person_id).where(
                        ContactPoint.contact_person_id.is_not(None)
                    )
                ),
            )
        )
    restored = 0
    for lk in links:
        if lk.entity == "client_tag" and lk.entity_id not in kept:
            await s.execute(
                delete(ClientTag).where(
                    ClientTag.client_id == lk.entity_id, ClientTag.tag == lk.value
                )
            )
        elif lk.entity == "segment_client" and lk.entity_id not in kept:
            await s.execute(
                delete(SegmentClient).where(
                    SegmentClient.client_id == lk.entity_id, SegmentClient.segment_id == lk.value
                )
            )
        if lk.entity != "client" or lk.action != "filled" or lk.field is None:
            continue
        client = await s.get(Client, lk.entity_id)
        if client is None:
            continue
        if lk.field.startswith("custom."):
            custom = dict(client.custom or {})
            if custom.get(lk.field[7:]) != lk.value:
                continue
            custom.pop(lk.field[7:])
            client.custom = custom
        elif _jsonable(getattr(client, lk.field)) != lk.value:
            continue  # changed by someone since: theirs now
        else:
            setattr(client, lk.field, "" if lk.field in ("notes", "kpp") else None)
        restored += 1
    # Segments this import created, if no client is in them any more.
    removed_segments = 0
    for lk in links:
        if lk.entity == "segment" and lk.action == "created":
            members = await s.scalar(
                select(func.count())
                .select_from(SegmentClient)
                .where(SegmentClient.segment_id == lk.entity_id)
            )
            users = await s.scalar(
                select(func.count()).select_from(Client).where(Client.segment_id == lk.entity_id)
            )
            if not members and not users:
                await s.execute(delete(Segment).where(Segment.id == lk.entity_id))
                removed_segments += 1
    batch.status = "undone"
    batch.undone_at = utcnow()
    batch.lease_until = None
    return {
        "import_id": import_id,
        "removed_clients": len(gone),
        "kept_clients": sorted(kept),
        "removed_points": removed_points,
        "released_points": released,
        "restored_fields": restored,
        "removed_segments": removed_segments,
    }
