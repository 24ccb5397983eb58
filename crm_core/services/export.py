"""Export the client base to XLSX or CSV: streamed, re-importable, formula-safe.

The rows come from the clients list itself (:func:`crm_core.services.clients.list_clients`,
keyset pages of :data:`PAGE` ids), so the export honours every list filter and what the
actor may see (:mod:`crm_core.access`).  For each page the profile, tags, segments,
contact points and contact persons are read in a handful of ``IN (ids)`` queries; the
writers keep no more than one page in memory (openpyxl's write-only workbook writes
its rows to a temporary file, the CSV writer hands out bytes per page).

Layout (the importer's, :mod:`crm_core.imports`): one row per client with its own
phones and emails, then one row per contact person with the client's name, INN and KPP
(or, without an INN, the client's first phone or email, so the importer finds the same
client), the person's name, position, phones and emails.  Headers are the Russian ones
the importer recognizes (:data:`HEADERS`); custom fields are one column each, headed by
their Russian label.

Formula injection (OWASP "CSV Injection"): a text cell starting with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return is written as text, never as a formula: in CSV it is
prefixed with ``'``; in XLSX the cell is typed as a string and carries Excel's own
"quote prefix" style, so the value stays as it was and Excel still never evaluates it.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.access import Actor
from crm_core.imports.fields import header_key
from crm_core.models import (
    Client,
    ClientStatus,
    ClientTag,
    ContactPerson,
    ContactPoint,
    CustomField,
    Segment,
    User,
)
from crm_core.services.common import MAX_LIMIT, ListFilter, NotFound
from crm_core.services.consent import consent_of

__all__ = [
    "FORMATS",
    "HEADERS",
    "PAGE",
    "Column",
    "CsvSink",
    "XlsxSink",
    "export_columns",
    "export_rows",
    "safe_text",
    "segment_filter",
]

FORMATS = ("xlsx", "csv")
PAGE = 5 * MAX_LIMIT  # clients per page (the export calls the list service, not the API)
CSV_DELIMITER = ";"
_DANGEROUS = ("=", "+", "-", "@", "\t", "\r")

# field -> Russian header (the importer's); custom fields come between ``notes`` and ``phones``.
HEADERS: tuple[tuple[str, str], ...] = (
    ("name", "Наименование"),
    ("full_name", "Полное наименование"),
    ("kind", "Вид контрагента"),
    ("inn", "ИНН"),
    ("kpp", "КПП"),
    ("ogrn", "ОГРН"),
    ("legal_address", "Юридический адрес"),
    ("actual_address", "Фактический адрес"),
    ("city", "Город"),
    ("region", "Регион"),
    ("industry", "Отрасль"),
    ("activity", "Вид деятельности"),
    ("headcount", "Численность"),
    ("revenue", "Годовая выручка"),
    ("website", "Сайт"),
    ("parent", "Головная компания"),
    ("parent_inn", "ИНН головной компании"),
    ("birthday", "Дата рождения"),
    ("status", "Статус"),
    ("owner", "Ответственный"),
    ("tags", "Теги"),
    ("segments", "Сегмент"),
    ("source", "Источник"),
    ("notes", "Примечание"),
)
TAIL: tuple[tuple[str, str], ...] = (
    ("phones", "Телефон"),
    ("emails", "E-mail"),
    ("contact_name", "Контактное лицо"),
    ("position", "Должность"),
    # "да"/"нет" when every address of the row agrees; empty when unknown or mixed
    ("email_consent", "Согласие на рассылку"),
)
_WIDE = frozenset(
    {"name", "full_name", "legal_address", "actual_address", "notes", "phones", "emails"}
)
KIND_NAMES = {"company": "Юридическое лицо", "person": "Физическое лицо"}
_PROFILE = (
    "name",
    "full_name",
    "inn",
    "kpp",
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
    "notes",
)


@dataclass(frozen=True, slots=True)
class Column:
    field: str  # a profile field, or ``custom:<key>``
    header: str
    custom_type: str | None = None


async def export_columns(s: AsyncSession) -> list[Column]:
    """The columns of an export: :data:`HEADERS`, the active custom fields, :data:`TAIL`.

    A custom field whose label would read as another column's header (an admin's
    "Телефон") is headed ``label (key)`` so the importer does not take it for that."""
    cols = [Column(f, h) for f, h in HEADERS]
    taken = {header_key(h) for _, h in (*HEADERS, *TAIL)}
    fields = await s.scalars(
        select(CustomField)
        .where(CustomField.entity == "client", CustomField.active.is_(True))
        .order_by(CustomField.position, CustomField.id)
    )
    for cf in fields:
        header = cf.label_ru or cf.key
        if header_key(header) in taken:
            header = f"{header} ({cf.key})"
        taken.add(header_key(header))
        cols.append(Column(f"custom:{cf.key}", header, cf.type))
    cols.extend(Column(f, h) for f, h in TAIL)
    return cols


def safe_text(value: str) -> str:
    """OWASP: a cell that a spreadsheet could read as a formula gets a leading ``'``."""
    return "'" + value if value.startswith(_DANGEROUS) else value


def _phone(value: str, extension: str | None) -> str:
    """``+74951234567`` -> ``+7 495 123-45-67`` (a Russian number; others stay E.164)."""
    if len(value) == 12 and value.startswith("+7"):
        d = value[2:]
        value = f"+7 {d[:3]} {d[3:6]}-{d[6:8]}-{d[8:]}"
    return f"{value} доб. {extension}" if extension else value


def _plain(value: Any) -> Any:
    """A cell value: text, int, Decimal (no trailing zeros), ISO date text, or None."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "да" if value else "нет"
    if isinstance(value, datetime | date):
        return value.isoformat()[:10] if not isinstance(value, datetime) else value.isoformat()
    if isinstance(value, Decimal):
        value = value.normalize()
        return int(value) if value == value.to_integral_value() else value
    if isinstance(value, int | float):
        return value
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value if v not in (None, "")) or None
    return str(value)


async def segment_filter(s: AsyncSession, segment_id: int | None) -> int | None:
    """Check ``--segment``/``?segment=``: a segment that exists (manual or by rules; the
    list's own ``segment`` filter evaluates it)."""
    if segment_id is None:
        return None
    seg = await s.get(Segment, segment_id)
    if seg is None:
        raise NotFound(f"segment {segment_id} not found", "segment")
    return segment_id


@dataclass(slots=True)
class _Lookups:
    users: dict[int, str]
    statuses: dict[str, str]


async def _lookups(s: AsyncSession) -> _Lookups:
    users = {r.id: r.email for r in await s.execute(select(User.id, User.email))}
    statuses = {
        r.key: r.name_ru for r in await s.execute(select(ClientStatus.key, ClientStatus.name_ru))
    }
    return _Lookups(users, statuses)


async def _page_rows(
    s: AsyncSession, ids: list[int], cols: Sequence[Column], look: _Lookups
) -> list[list[Any]]:
    clients = {
        c["id"]: c
        for c in (await s.execute(select(*Client.__table__.c).where(Client.id.in_(ids)))).mappings()
    }
    parent_ids = {c["parent_id"] for c in clients.values() if c["parent_id"]}
    parents = (
        {
            r.id: (r.name, r.inn)
            for r in await s.execute(
                select(Client.id, Client.name, Client.inn).where(Client.id.in_(parent_ids))
            )
        }
        if parent_ids
        else {}
    )
    tags: dict[int, list[str]] = defaultdict(list)
    for cid, tag in await s.execute(
        select(ClientTag.client_id, ClientTag.tag)
        .where(ClientTag.client_id.in_(ids))
        .order_by(ClientTag.tag)
    ):
        tags[cid].append(tag)
    from crm_core.services.segments import segments_of

    # "; " between names: the importer splits segments on ";" only (a name may hold a comma)
    segs = {
        cid: "; ".join(name for _sid, name in found)
        for cid, found in (await segments_of(s, ids)).items()
    }
    persons: dict[int, list[Any]] = defaultdict(list)
    for p in await s.execute(
        select(
            ContactPerson.id, ContactPerson.client_id, ContactPerson.name, ContactPerson.position
        )
        .where(ContactPerson.client_id.in_(ids))
        .order_by(ContactPerson.is_primary.desc(), ContactPerson.id)
    ):
        persons[p.client_id].append(p)
    person_ids = [p.id for ps in persons.values() for p in ps]
    own: dict[int, dict[str, list[str]]] = defaultdict(lambda: {"phone": [], "email": []})
    of_person: dict[int, dict[str, list[str]]] = defaultdict(lambda: {"phone": [], "email": []})
    cond: Any = ContactPoint.client_id.in_(ids)
    if person_ids:
        cond = or_(cond, ContactPoint.contact_person_id.in_(person_ids))
    for cp in await s.execute(
        select(
            ContactPoint.kind,
            ContactPoint.value,
            ContactPoint.extension,
            ContactPoint.client_id,
            ContactPoint.contact_person_id,
        )
        .where(cond, ContactPoint.kind.in_(("phone", "email")))
        .order_by(ContactPoint.id)
    ):
        text = _phone(cp.value, cp.extension) if cp.kind == "phone" else cp.value
        if cp.contact_person_id is not None:
            of_person[cp.contact_person_id][cp.kind].append(text)
        elif cp.client_id is not None:
            own[cp.client_id][cp.kind].append(text)
    emails = [e for d in (own, of_person) for v in d.values() for e in v["email"]]
    consent = await consent_of(s, emails) if emails else {}
    # Shaping the cells is pure Python: a worker thread, so the event loop stays free.
    return await asyncio.to_thread(
        _assemble, ids, clients, parents, tags, segs, persons, own, of_person, cols, look, consent
    )


def _consent_cell(emails: list[str], consent: dict[str, str]) -> str | None:
    """ "да" if every address agreed, "нет" if every one refused (withdrawn, unsubscribed,
    bounced, complained), else empty: a re-import then changes nothing."""
    states = {
        "да" if consent.get(e) == "granted" else "нет" if e in consent else "" for e in emails
    }
    if len(states) != 1:
        return None  # no address, or addresses that disagree
    return states.pop() or None


def _assemble(
    ids: list[int],
    clients: dict[int, Any],
    parents: dict[int, tuple[str, str | None]],
    tags: dict[int, list[str]],
    segs: dict[int, str],
    persons: dict[int, list[Any]],
    own: dict[int, dict[str, list[str]]],
    of_person: dict[int, dict[str, list[str]]],
    cols: Sequence[Column],
    look: _Lookups,
    consent: dict[str, str],
) -> list[list[Any]]:
    rows: list[list[Any]] = []
    custom_cols = [(col.field, col.field[7:]) for col in cols if col.field.startswith("custom:")]
    fields = [col.field for col in cols]
    for cid in ids:
        if cid not in clients:
            continue
        c = clients[cid]
        values: dict[str, Any] = {f: c[f] for f in _PROFILE}
        parent = parents.get(c["parent_id"]) if c["parent_id"] else None
        values.update(
            kind=KIND_NAMES.get(c["kind"], c["kind"]),
            status=look.statuses.get(c["status"], c["status"]),
            owner=look.users.get(c["owner_id"]) if c["owner_id"] else None,
            tags=tags.get(cid),
            segments=segs.get(cid),
            parent=parent[0] if parent else None,
            parent_inn=parent[1] if parent else None,
            phones=own[cid]["phone"],
            emails=own[cid]["email"],
            email_consent=_consent_cell(own[cid]["email"], consent),
        )
        custom = c["custom"] or {}
        for name, ckey in custom_cols:
            values[name] = custom.get(ckey)
        rows.append([_plain(values.get(f)) for f in fields])
        # The person rows: the client's key, then the person.
        key: dict[str, Any] = {"name": c["name"], "inn": c["inn"], "kpp": c["kpp"] or None}
        if not c["inn"]:
            if own[cid]["phone"]:
                key["phones"] = own[cid]["phone"][:1]
            elif own[cid]["email"]:
                key["emails"] = own[cid]["email"][:1]
        for p in persons.get(cid, []):
            pv = dict(key)
            pv["contact_name"] = p.name
            pv["position"] = p.position
            pv["phones"] = [*pv.get("phones", []), *of_person[p.id]["phone"]]
            pv["emails"] = [*pv.get("emails", []), *of_person[p.id]["email"]]
            pv["email_consent"] = _consent_cell(pv["emails"], consent)
            rows.append([_plain(pv.get(f)) for f in fields])
    return rows


async def export_rows(
    s: AsyncSession,
    actor: Actor,
    flt: ListFilter,
    *,
    segment_id: int | None = None,
    page_size: int = PAGE,
) -> AsyncIterator[tuple[int, list[list[Any]]]]:
    """Pages of (number of clients, rows) of the clients ``actor`` sees through ``flt``
    (the list's filters; paging fields are ignored), oldest client first."""
    from crm_core.services.clients import list_clients

    cols = await export_columns(s)
    look = await _lookups(s)
    flt = replace(flt, limit=page_size, offset=0, after=None)
    # oldest first: a head office comes before its branches, so the file re-imports
    # ("Головная компания" names a client already read)
    flt = replace(flt, extra={**flt.extra, "sort": "id"})
    if segment_id is not None:  # manual or by rules: the list's own segment filter
        flt = replace(flt, extra={**flt.extra, "segment": segment_id})
    while True:
        page = await list_clients(s, actor, flt)
        ids = [int(item["id"]) for item in page.items]
        if ids:
            yield len(ids), await _page_rows(s, ids, cols, look)
        if page.next_after is None:
            return
        flt = replace(flt, after=page.next_after)


class CsvSink:
    """CSV in UTF-8 with a BOM (Excel opens it as UTF-8), ``;`` between cells (Excel's
    separator under a Russian locale), every line ``\\r\\n``; formula-safe cells."""

    def __init__(self, write: Callable[[bytes], Awaitable[None]]) -> None:
        self._write = write
        self._buf = io.StringIO()
        self._csv = csv.writer(self._buf, delimiter=CSV_DELIMITER, lineterminator="\r\n")

    async def header(self, cols: Sequence[Column]) -> None:
        self._csv.writerow([c.header for c in cols])
        await self._flush(b"\xef\xbb\xbf")

    async def rows(self, rows: list[list[Any]]) -> None:
        for row in rows:
            self._csv.writerow(
                ["" if v is None else safe_text(v) if isinstance(v, str) else v for v in row]
            )
        await self._flush()

    async def close(self) -> None:
        await self._flush()

    async def _flush(self, prefix: bytes = b"") -> None:
        data = prefix + self._buf.getvalue().encode("utf-8")
        self._buf.seek(0)
        self._buf.truncate()
        if data:
            await self._write(data)


class XlsxSink:
    """An .xlsx written by openpyxl's write-only workbook (rows go to a temporary file,
    not memory) and saved to ``path`` on :meth:`close`.  The rows of a page are added
    in a worker thread so the event loop stays free."""

    def __init__(self, path: str | Path, sheet: str = "Клиенты") -> None:
        from openpyxl import Workbook

        self.path = Path(path)
        self._wb = Workbook(write_only=True)
        self._ws = self._wb.create_sheet(sheet)

    def _cells(self, row: list[Any]) -> list[Any]:
        """Plain values as they are (openpyxl types them); control characters that XML
        cannot hold are dropped; a text that starts like a formula becomes a string cell
        with Excel's quote prefix."""
        from openpyxl.cell import WriteOnlyCell
        from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

        out: list[Any] = row
        for i, value in enumerate(row):
            if not isinstance(value, str):
                continue
            clean: Any = ILLEGAL_CHARACTERS_RE.sub("", value)
            if clean.startswith(_DANGEROUS):
                cell = WriteOnlyCell(self._ws, None)
                cell.value = clean
                cell.data_type = "s"  # never a formula
                cell.quotePrefix = True
                clean = cell
            if clean is not value:
                if out is row:
                    out = list(row)
                out[i] = clean
        return out

    def _append(self, rows: list[list[Any]]) -> None:
        for row in rows:
            self._ws.append(self._cells(row))

    async def header(self, cols: Sequence[Column]) -> None:
        from openpyxl.utils import get_column_letter

        self._ws.freeze_panes = "A2"  # the header stays on screen (set before any row)
        for i, col in enumerate(cols, start=1):
            width = 40 if col.field in _WIDE else max(12, len(col.header) + 2)
            self._ws.column_dimensions[get_column_letter(i)].width = width
        self._append([[c.header for c in cols]])

    async def rows(self, rows: list[list[Any]]) -> None:
        await asyncio.to_thread(self._append, rows)

    async def close(self) -> None:
        await asyncio.to_thread(self._wb.save, str(self.path))
