"""Read a client spreadsheet into normalized rows: pure, no database.

Like a connector's ``normalize``: :func:`read_clients` finds the header row (under the
title rows of a 1C report), maps the headers to fields (the registry in
:mod:`crm_core.imports.fields`, overridden by a mapping file), skips blank and totals
rows and turns each data row into a :class:`ClientRow` with its problems listed.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from crm_core.identity import IdentityError, ParsedPhone, extract_phones, normalize_email
from crm_core.imports.errors import ImportFileError, RowError
from crm_core.imports.fields import FIELDS_BY_NAME, header_key, match_header
from crm_core.imports.mapping import Mapping
from crm_core.imports.table import Limits, Table, open_table
from crm_core.services.clients import validate_inn
from crm_core.services.common import Invalid

__all__ = ["ClientRow", "Sheet", "read_clients"]

HEADER_SCAN_ROWS = 30
_TOTALS = re.compile(r"^(итого|всего|итог|total|totals|grand total)\b", re.IGNORECASE)
_EMAIL_SPLIT = re.compile(r"[,;\s]+")
_KINDS = {
    "company": (
        "company",
        "legal entity",
        "organization",
        "organisation",
        "юридическое лицо",
        "юр лицо",
        "юрлицо",
        "юл",
        "организация",
        "компания",
        "ип",
        "индивидуальный предприниматель",
    ),
    "person": (
        "person",
        "individual",
        "private person",
        "физическое лицо",
        "физ лицо",
        "физлицо",
        "фл",
        "частное лицо",
        "контакт",
    ),
}
_KIND_BY_KEY = {header_key(v): k for k, vs in _KINDS.items() for v in vs}
_STATUSES = {
    "cold": ("cold", "холодный", "холодная"),
    "thinking": ("thinking", "warm", "думает", "теплый", "тёплый", "теплая"),
    "ready": ("ready", "hot", "готов", "готов купить", "горячий", "горячая"),
    "active": ("active", "активный", "активная", "в работе"),
    "regular": ("regular", "permanent", "постоянный", "постоянная"),
    "lost": ("lost", "потерян", "потерянный", "потеряна", "ушел", "ушёл"),
}
_STATUS_BY_KEY = {header_key(v): k for k, vs in _STATUSES.items() for v in vs}


@dataclass(slots=True)
class ClientRow:
    """One data row, normalized.  ``errors`` non-empty: the row must not be written."""

    row: int
    name: str | None = None
    kind: str | None = None
    inn: str | None = None
    phones: list[ParsedPhone] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)
    owner: str | None = None
    contact_name: str | None = None
    position: str | None = None
    segment: str | None = None
    status: str | None = None
    region: str | None = None
    notes: str | None = None
    columns: dict[str, str] = field(default_factory=dict)  # field -> header (for errors)
    errors: list[RowError] = field(default_factory=list)

    @property
    def has_key(self) -> bool:
        return bool(self.inn or self.phones or self.emails)


@dataclass(slots=True)
class Sheet:
    """The mapping found and the rows (a generator: the file is streamed)."""

    header_row: int
    mapping: dict[str, str | None]  # header as written -> field (None: ignored)
    rows: Generator[ClientRow, None, None]
    sheet: str | None
    detail: str


Columns = dict[int, tuple[str, str]]  # column index -> (field, header as written)


def _map_headers(
    cells: list[str], overrides: Mapping
) -> tuple[Columns, dict[str, str | None], int]:
    """(column index -> field, header -> field for the report, number of known headers)."""
    by_index: Columns = {}
    report: dict[str, str | None] = {}
    known = 0
    for i, cell in enumerate(cells):
        if not cell:
            continue
        key = header_key(cell)
        if key in overrides.columns:
            name = overrides.columns[key]
        else:
            name = match_header(cell)
        report[cell] = name
        if name is None:
            continue
        known += 1
        spec = FIELDS_BY_NAME[name]
        if any(f == name for f, _ in by_index.values()) and not spec.multi:
            report[cell] = None  # a second "Name" column: the first one wins
            continue
        by_index[i] = (name, cell)
    return by_index, report, known


def _find_header(
    table: Table, overrides: Mapping
) -> tuple[int, Columns, dict[str, str | None], list[tuple[int, list[str]]]]:
    """Scan the first rows for the header (the row with the most known headers)."""
    seen: list[tuple[int, list[str]]] = []
    best: tuple[int, int, Columns, dict[str, str | None]] | None = None
    for n, cells in table.rows:
        seen.append((n, cells))
        if overrides.header_row is not None:
            if n == overrides.header_row:
                by_index, report, known = _map_headers(cells, overrides)
                return n, by_index, report, []
            continue
        if any(cells):
            by_index, report, known = _map_headers(cells, overrides)
            if known and (best is None or known > best[1]):
                best = (n, known, by_index, report)
        if len(seen) >= HEADER_SCAN_ROWS:
            break
    if best is None or not best[2]:
        raise ImportFileError(
            "no header row found: expected columns such as Наименование/Name, ИНН, "
            "Телефон/Phone, E-mail (or give a mapping file)",
            "не найдена строка заголовков: ожидаются колонки Наименование/Name, ИНН, "
            "Телефон/Phone, E-mail (или укажите файл соответствия)",
            "header",
        )
    n, _, by_index, report = best
    fields = {f for f, _ in by_index.values()}
    if not fields & {"inn", "phones", "emails"}:
        raise ImportFileError(
            "the header has no INN, phone or email column, so rows cannot be matched",
            "в заголовке нет колонки ИНН, телефона или e-mail: строки не с чем сопоставить",
            "header",
        )
    return n, by_index, report, [(m, c) for m, c in seen if m > n]


def _err(row: ClientRow, name: str, value: str, en: str, ru: str) -> None:
    row.errors.append(RowError(row.row, row.columns.get(name, name), value, en, ru))


def _parse_cell(row: ClientRow, name: str, value: str, numeric_inn: bool) -> None:
    spec = FIELDS_BY_NAME[name]
    if not spec.stored:
        return
    if spec.parse == "phones":
        phones = extract_phones(value)
        if not phones:
            _err(row, name, value, "not a valid phone number", "некорректный номер телефона")
            return
        for p in phones:
            if all(p.e164 != q.e164 for q in row.phones):
                row.phones.append(p)
    elif spec.parse == "emails":
        for part in filter(None, _EMAIL_SPLIT.split(value)):
            try:
                email = normalize_email(part)
            except IdentityError as exc:
                _err(row, name, part, str(exc), "некорректный адрес e-mail")
                continue
            if email not in row.emails:
                row.emails.append(email)
    elif spec.parse == "inn":
        digits = re.sub(r"[\s\u00a0]", "", value)
        if numeric_inn and digits.isdigit() and len(digits) in (9, 11):
            digits = "0" + digits  # Excel dropped the leading zero of a number
        try:
            row.inn = validate_inn(digits)
        except Invalid as exc:
            ru = (
                "ИНН не проходит проверку контрольной цифры"
                if "checksum" in exc.message
                else "ИНН должен состоять из 10 или 12 цифр"
            )
            _err(row, name, value, exc.message, ru)
    elif spec.parse == "kind":
        kind = _KIND_BY_KEY.get(header_key(value))
        if kind is None:
            _err(row, name, value, "kind must be company or person", "вид: юрлицо или физлицо")
        row.kind = kind
    elif spec.parse == "status":
        status = _STATUS_BY_KEY.get(header_key(value))
        if status is None:
            allowed = ", ".join(_STATUSES)
            _err(row, name, value, f"status must be one of {allowed}", "неизвестный статус клиента")
        row.status = status
    else:
        if len(value) > spec.max_len:
            _err(
                row,
                name,
                value[:50] + "…",
                f"longer than {spec.max_len} characters",
                f"длиннее {spec.max_len} символов",
            )
            return
        setattr(row, name, value)


def _rows(
    data: Iterator[tuple[int, list[str]]], columns: Columns, fmt: str
) -> Generator[ClientRow, None, None]:
    names: dict[str, str] = {}
    for name, header in columns.values():
        names.setdefault(name, header)
    for n, cells in data:
        if not any(cells):
            continue
        row = ClientRow(row=n, columns=names)
        for i, (name, _) in columns.items():
            value = cells[i] if i < len(cells) else ""
            if value:
                _parse_cell(row, name, value, fmt == "xlsx")
        if _TOTALS.match(next(c for c in cells if c)) and not row.has_key:
            continue  # "Итого: 125" (a client named "Всего понемногу" with a phone stays)
        if not row.name and row.contact_name:
            # A person without a company: the person is the client.
            row.name, row.contact_name = row.contact_name, None
            row.kind = row.kind or "person"
        row.kind = row.kind or "company"
        yield row


def read_clients(
    path: str | Path,
    *,
    sheet: str | None = None,
    mapping: Mapping | None = None,
    limits: Limits = Limits(),
) -> Sheet:
    overrides = mapping or Mapping()
    table = open_table(path, sheet=sheet or overrides.sheet, limits=limits)
    header_row, by_index, report, pending = _find_header(table, overrides)

    def data() -> Iterator[tuple[int, list[str]]]:
        yield from pending
        yield from table.rows

    rows = _rows(data(), by_index, table.fmt)
    return Sheet(header_row, report, rows, table.sheet, table.detail)
