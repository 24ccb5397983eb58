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
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from itertools import islice
from pathlib import Path
from typing import Any

from crm_core.identity import (
    IdentityError,
    ParsedPhone,
    extract_phones,
    normalize_email,
    normalize_phone,
)
from crm_core.imports.catalog import Catalog, CustomSpec
from crm_core.imports.errors import ImportFileError, RowError
from crm_core.imports.fields import (
    CUSTOM_PREFIX,
    FIELDS,
    FIELDS_BY_NAME,
    header_key,
    match_header,
)
from crm_core.imports.mapping import Mapping
from crm_core.imports.table import Limits, Table, open_table
from crm_core.services.clients import validate_inn
from crm_core.services.common import Invalid
from crm_core.services.requisites import validate_kpp, validate_ogrn

__all__ = ["ClientRow", "Sheet", "preview_clients", "read_clients"]

HEADER_SCAN_ROWS = 30
_TOTALS = re.compile(r"^(итого|всего|итог|total|totals|grand total)\b", re.IGNORECASE)
_EMAIL_SPLIT = re.compile(r"[,;\s]+")
_LIST_SPLIT = re.compile(r"\s*[;\n]\s*")
_TAG_SPLIT = re.compile(r"\s*[;,\n]\s*")
_PERSON = re.compile(r"^(?P<name>[^()]+?)\s*(?:\((?P<pos>[^()]*)\))?$")
_SPACES = re.compile(r"[\s\u00a0\u202f']")
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
_CONSENTS = {
    "granted": (
        "да",
        "yes",
        "y",
        "true",
        "1",
        "+",
        "согласен",
        "согласна",
        "есть",
        "подписан",
        "подписана",
        "granted",
        "agreed",
        "opt-in",
        "opt in",
        "subscribed",
    ),
    "withdrawn": (
        "нет",
        "no",
        "n",
        "false",
        "0",
        "-",
        "не согласен",
        "не согласна",
        "отказ",
        "отписан",
        "отписана",
        "отозвано",
        "withdrawn",
        "refused",
        "opt-out",
        "opt out",
        "unsubscribed",
    ),
}
_CONSENT_BY_KEY = {header_key(v): k for k, vs in _CONSENTS.items() for v in vs}
_KIND_BY_KEY = {header_key(v): k for k, vs in _KINDS.items() for v in vs}
_PHONE_SPLIT = re.compile(r"\s*(?:[,;/\n]|\s(?:или|or|и)\s)\s*")
# A plain ASCII address: lower-cased as normalize_email would, without its slower checks.
_PLAIN_EMAIL = re.compile(
    r"[a-z0-9_%+-]+(?:\.[a-z0-9_%+-]+)*@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,24}",
    re.IGNORECASE,
)
_DATE_FORMATS = ("%d.%m.%Y", "%d.%m.%y", "%d/%m/%Y", "%Y-%m-%d", "%d-%m-%Y")

# Attributes of ClientRow that hold a plain text field of the same name.
TEXT_FIELDS = (
    "full_name",
    "position",
    "legal_address",
    "actual_address",
    "city",
    "region",
    "industry",
    "activity",
    "website",
    "source",
    "notes",
    "owner",
    "name",
)


@dataclass(slots=True)
class ClientRow:
    """One data row, normalized.  ``errors`` non-empty: the row must not be written."""

    row: int
    name: str | None = None
    full_name: str | None = None
    kind: str | None = None
    inn: str | None = None
    kpp: str | None = None
    ogrn: str | None = None
    phones: list[ParsedPhone] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)
    # "Согласие на рассылку": granted (да) or withdrawn (нет) for the row's emails
    email_consent: str | None = None
    owner: str | None = None
    persons: list[tuple[str, str | None]] = field(default_factory=list)  # (name, position)
    position: str | None = None
    segments: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    status: str | None = None
    parent: str | None = None  # the parent company's INN or name
    legal_address: str | None = None
    actual_address: str | None = None
    city: str | None = None
    region: str | None = None
    industry: str | None = None
    activity: str | None = None
    headcount: int | None = None
    revenue: Decimal | None = None
    website: str | None = None
    birthday: date | None = None
    source: str | None = None
    notes: str | None = None
    custom: dict[str, Any] = field(default_factory=dict)
    columns: dict[str, str] = field(default_factory=dict)  # field -> header (for errors)
    errors: list[RowError] = field(default_factory=list)

    @property
    def has_key(self) -> bool:
        return bool(self.inn or self.phones or self.emails)

    @property
    def contact_name(self) -> str | None:
        return self.persons[0][0] if len(self.persons) == 1 else None


@dataclass(slots=True)
class Sheet:
    """The mapping found and the rows (a generator: the file is streamed)."""

    header_row: int
    mapping: dict[str, str | None]  # header as written -> field (None: ignored)
    rows: Generator[ClientRow, None, None]
    sheet: str | None
    detail: str
    columns: list[tuple[int, str, str | None]] = field(default_factory=list)
    sheets: list[str] = field(default_factory=list)
    total: int | None = None  # data rows at most (for a progress bar), when known


Columns = dict[int, tuple[str, str]]  # column index -> (field, header as written)


def _field_for(cell: str, overrides: Mapping, catalog: Catalog) -> str | None:
    key = header_key(cell)
    if key in overrides.columns:
        name = overrides.columns[key]
        if name is not None and name.startswith(CUSTOM_PREFIX) and not catalog.custom_by_name(name):
            known = ", ".join(c.name for c in catalog.custom) or "none"
            raise ImportFileError(
                f"mapping: column {cell!r}: no custom field {name[7:]!r} (known: {known})",
                f"файл соответствия: колонка {cell!r}: нет доп. поля {name[7:]!r}",
                "mapping",
            )
        return name
    name = match_header(cell)
    if name is None:
        spec = catalog.custom_for_header(cell)
        name = spec.name if spec is not None else None
    return name


def _map_headers(
    cells: list[str], overrides: Mapping, catalog: Catalog
) -> tuple[Columns, dict[str, str | None], int]:
    """(column index -> field, header -> field for the report, number of known headers)."""
    by_index: Columns = {}
    report: dict[str, str | None] = {}
    known = 0
    for i, cell in enumerate(cells):
        if not cell:
            continue
        name = _field_for(cell, overrides, catalog)
        report[cell] = name
        if name is None:
            continue
        known += 1
        spec = FIELDS_BY_NAME.get(name)
        multi = spec is not None and spec.multi
        if any(f == name for f, _ in by_index.values()) and not multi:
            report[cell] = None  # a second "Name" column: the first one wins
            continue
        by_index[i] = (name, cell)
    return by_index, report, known


def _find_header(
    table: Table, overrides: Mapping, catalog: Catalog
) -> tuple[int, Columns, dict[str, str | None], list[tuple[int, list[str]]], list[str]]:
    """Scan the first rows for the header (the row with the most known headers)."""
    seen: list[tuple[int, list[str]]] = []
    best: tuple[int, int, Columns, dict[str, str | None], list[str]] | None = None
    for n, cells in table.rows:
        seen.append((n, cells))
        if overrides.header_row is not None:
            if n == overrides.header_row:
                by_index, report, known = _map_headers(cells, overrides, catalog)
                best = (n, known, by_index, report, cells)
                break
            continue
        if any(cells):
            by_index, report, known = _map_headers(cells, overrides, catalog)
            if known and (best is None or known > best[1]):
                best = (n, known, by_index, report, cells)
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
    n, _, by_index, report, cells = best
    fields = {f for f, _ in by_index.values()}
    if not fields & {"inn", "phones", "emails"}:
        raise ImportFileError(
            "the header has no INN, phone or email column, so rows cannot be matched",
            "в заголовке нет колонки ИНН, телефона или e-mail: строки не с чем сопоставить",
            "header",
        )
    return n, by_index, report, [(m, c) for m, c in seen if m > n], cells


def _err(row: ClientRow, name: str, value: str, en: str, ru: str) -> None:
    row.errors.append(RowError(row.row, row.columns.get(name, name), value, en, ru))


def _number(value: str) -> Decimal | None:
    text = _SPACES.sub("", value).replace(",", ".")
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _date(value: str) -> date | None:
    text = value.strip()
    if "T" in text:  # an Excel date cell: "2020-01-05T00:00:00"
        text = text.split("T", 1)[0]
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None


def _phones(value: str) -> list[ParsedPhone]:
    """Each number of "8-916-111-22-33, +7 903 444 55 66" parsed alone (fast); a cell
    that does not split cleanly goes to the text matcher (``extract_phones``)."""
    parts = [p for p in _PHONE_SPLIT.split(value) if p]
    if len(parts) > 1:
        found: list[ParsedPhone] = []
        try:
            for part in parts:
                found.append(normalize_phone(part))
        except IdentityError:
            return extract_phones(value)
        return found
    return extract_phones(value)


def _persons(value: str) -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    for part in _LIST_SPLIT.split(value):
        m = _PERSON.match(part.strip())
        if not part.strip():
            continue
        if m is None:
            out.append((part.strip(), None))
        else:
            out.append((m["name"].strip(), (m["pos"] or "").strip() or None))
    return out


def _parse_custom(row: ClientRow, spec: CustomSpec, value: str) -> None:
    def bad(en: str, ru: str) -> None:
        _err(row, spec.name, value, en, ru)

    if spec.type == "number":
        number = _number(value)
        if number is None:
            return bad("not a number", "не число")
        row.custom[spec.key] = (
            int(number) if number == number.to_integral_value() else float(number)
        )
    elif spec.type == "date":
        day = _date(value)
        if day is None:
            return bad("not a date (expected DD.MM.YYYY)", "не дата (ожидается ДД.ММ.ГГГГ)")
        row.custom[spec.key] = day.isoformat()
    elif spec.type in ("choice", "multi"):
        by_key = {header_key(o): o for o in spec.options}
        parts = [value] if spec.type == "choice" else list(filter(None, _TAG_SPLIT.split(value)))
        chosen: list[str] = []
        for part in parts:
            option = by_key.get(header_key(part))
            if option is None:
                allowed = ", ".join(spec.options)
                return bad(
                    f"{part!r} is not one of: {allowed}", f"{part!r} нет среди вариантов: {allowed}"
                )
            if option not in chosen:
                chosen.append(option)
        row.custom[spec.key] = chosen[0] if spec.type == "choice" else chosen
    else:
        if len(value) > 2000:
            return bad("longer than 2000 characters", "длиннее 2000 символов")
        row.custom[spec.key] = value
    return None


def _parse_cell(row: ClientRow, name: str, value: str, numeric: bool, catalog: Catalog) -> None:
    if name.startswith(CUSTOM_PREFIX):
        spec = catalog.custom_by_name(name)
        if spec is not None:
            _parse_custom(row, spec, value)
        return
    spec_ = FIELDS_BY_NAME[name]
    parse = spec_.parse
    if parse == "phones":
        phones = _phones(value)
        if not phones:
            _err(row, name, value, "not a valid phone number", "некорректный номер телефона")
            return
        for p in phones:
            if all(p.e164 != q.e164 for q in row.phones):
                row.phones.append(p)
    elif parse == "emails":
        for part in filter(None, _EMAIL_SPLIT.split(value)):
            try:
                email = (
                    part.lower()
                    if len(part) <= 254 and _PLAIN_EMAIL.fullmatch(part)
                    else normalize_email(part)
                )
            except IdentityError as exc:
                _err(row, name, part, str(exc), "некорректный адрес e-mail")
                continue
            if email not in row.emails:
                row.emails.append(email)
    elif parse == "consent":
        consent = _CONSENT_BY_KEY.get(header_key(value))
        if consent is None:
            _err(
                row,
                name,
                value,
                "consent must be yes or no (да / нет)",
                "согласие: да или нет",
            )
        row.email_consent = consent
    elif parse == "inn":
        digits = _SPACES.sub("", value)
        if numeric and digits.isdigit() and len(digits) in (9, 11):
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
    elif parse == "kpp":
        kpp = _SPACES.sub("", value).upper()
        if numeric and kpp.isdigit() and len(kpp) == 8:
            kpp = "0" + kpp
        try:
            kpp = validate_kpp(kpp)
        except Invalid:
            _err(
                row,
                name,
                value,
                "KPP must be 9 characters (NNNNXXNNN)",
                "КПП: 9 знаков (NNNNXXNNN)",
            )
        else:
            row.kpp = kpp
    elif parse == "ogrn":
        ogrn = _SPACES.sub("", value)
        try:
            ogrn = validate_ogrn(ogrn)
        except Invalid:
            _err(
                row,
                name,
                value,
                "OGRN must be 13 or 15 digits with a valid check digit",
                "ОГРН: 13 или 15 цифр с верной контрольной цифрой",
            )
        else:
            row.ogrn = ogrn
    elif parse == "kind":
        kind = _KIND_BY_KEY.get(header_key(value))
        if kind is None:
            _err(row, name, value, "kind must be company or person", "вид: юрлицо или физлицо")
        row.kind = kind
    elif parse == "status":
        status = catalog.status(value)
        if status is None:
            names = catalog.status_names()
            _err(
                row,
                name,
                value,
                f"unknown status (the list: {', '.join(k for k, _, _ in catalog.statuses)})",
                f"неизвестный статус (список: {names})",
            )
        row.status = status
    elif parse == "int":
        number = _number(value)
        if number is None or number != number.to_integral_value() or not 0 <= number < 2**31:
            _err(row, name, value, "not a whole number", "не целое число")
        else:
            row.headcount = int(number)
    elif parse == "decimal":
        number = _number(value)
        if number is None or abs(number) >= Decimal(10) ** 16:
            _err(row, name, value, "not a number", "не число")
        else:
            row.revenue = number.quantize(Decimal("0.01"))
    elif parse == "date":
        day = _date(value)
        if day is None:
            _err(
                row,
                name,
                value,
                "not a date (expected DD.MM.YYYY)",
                "не дата (ожидается ДД.ММ.ГГГГ)",
            )
        else:
            row.birthday = day
    elif parse == "list":
        items = _LIST_SPLIT.split(value) if name == "segments" else _TAG_SPLIT.split(value)
        target: list[str] = getattr(row, name)
        for item in filter(None, (i.strip() for i in items)):
            if len(item) > 100:
                _err(
                    row, name, item[:50] + "…", "longer than 100 characters", "длиннее 100 символов"
                )
            elif item not in target:
                target.append(item)
    elif parse == "persons":
        if len(value) > spec_.max_len:
            _err(row, name, value[:50] + "…", "too long", "слишком длинно")
            return
        for person in _persons(value):
            if len(person[0]) > 300:
                _err(
                    row,
                    name,
                    person[0][:50] + "…",
                    "longer than 300 characters",
                    "длиннее 300 символов",
                )
            elif all(person[0] != p[0] for p in row.persons):
                row.persons.append(person)
    elif parse == "parent":
        row.parent = _SPACES.sub("", value) if _SPACES.sub("", value).isdigit() else value
    else:
        if len(value) > spec_.max_len:
            _err(
                row,
                name,
                value[:50] + "…",
                f"longer than {spec_.max_len} characters",
                f"длиннее {spec_.max_len} символов",
            )
            return
        setattr(row, name, value)


def _rows(
    data: Iterator[tuple[int, list[str]]], columns: Columns, fmt: str, catalog: Catalog
) -> Generator[ClientRow, None, None]:
    names: dict[str, str] = {}
    for name, header in columns.values():
        names.setdefault(name, header)
    items = list(columns.items())
    for n, cells in data:
        if not any(cells):
            continue
        row = ClientRow(row=n, columns=names)
        for i, (name, _) in items:
            value = cells[i] if i < len(cells) else ""
            if value:
                _parse_cell(row, name, value, fmt == "xlsx", catalog)
        if _TOTALS.match(next(c for c in cells if c)) and not row.has_key:
            continue  # "Итого: 125" (a client named "Всего понемногу" with a phone stays)
        if row.position and len(row.persons) == 1 and row.persons[0][1] is None:
            row.persons[0] = (row.persons[0][0], row.position)
        if not row.name and len(row.persons) == 1:
            # A person without a company: the person is the client.
            row.name = row.persons.pop()[0]
            row.kind = row.kind or "person"
        row.kind = row.kind or "company"
        yield row


def read_clients(
    path: str | Path,
    *,
    sheet: str | None = None,
    mapping: Mapping | None = None,
    limits: Limits = Limits(),
    catalog: Catalog | None = None,
) -> Sheet:
    """The sheet's header and mapping now, its rows as a generator (streamed).

    ``catalog``: the statuses and custom fields of the database (default: the default
    statuses, no custom fields)."""
    overrides = mapping or Mapping()
    cat = catalog or Catalog()
    table = open_table(path, sheet=sheet or overrides.sheet, limits=limits)
    try:
        header_row, by_index, report, pending, cells = _find_header(table, overrides, cat)
    except BaseException:
        table.close()
        raise

    def data() -> Iterator[tuple[int, list[str]]]:
        yield from pending
        yield from table.rows

    rows = _rows(data(), by_index, table.fmt, cat)
    columns = [
        (i, cell, by_index[i][0] if i in by_index else None) for i, cell in enumerate(cells) if cell
    ]
    total = table.last_row - header_row if table.last_row is not None else None
    return Sheet(header_row, report, rows, table.sheet, table.detail, columns, table.sheets, total)


def field_choices(catalog: Catalog) -> list[dict[str, str]]:
    """Every field a column may be mapped to, for the wizard's selects."""
    out = [{"name": f.name, "label_ru": f.label_ru, "label_en": f.label_en} for f in FIELDS]
    out += [
        {"name": c.name, "label_ru": c.label_ru or c.key, "label_en": c.label_en or c.label_ru}
        for c in catalog.custom
    ]
    return out


def preview_clients(
    path: str | Path,
    *,
    sheet: str | None = None,
    mapping: Mapping | None = None,
    limits: Limits = Limits(),
    catalog: Catalog | None = None,
    n: int = 10,
) -> dict[str, Any]:
    """The header found, each column's field and the first ``n`` data rows as cells
    (nothing parsed beyond the header: the wizard shows the file as it is)."""
    overrides = mapping or Mapping()
    cat = catalog or Catalog()
    table = open_table(path, sheet=sheet or overrides.sheet, limits=limits)
    try:
        header_row, by_index, report, pending, cells = _find_header(table, overrides, cat)

        def data() -> Iterator[tuple[int, list[str]]]:
            yield from pending
            yield from table.rows

        sample = [(r, c) for r, c in islice((x for x in data() if any(x[1])), n)]
    finally:
        table.close()
    width = len(cells)
    return {
        "sheet": table.sheet,
        "sheets": table.sheets,
        "detail": table.detail,
        "header_row": header_row,
        "total": table.last_row - header_row if table.last_row is not None else None,
        "columns": [
            {"index": i, "header": cell, "field": by_index[i][0] if i in by_index else None}
            for i, cell in enumerate(cells)
            if cell
        ],
        "rows": [{"row": r, "cells": (c + [""] * width)[:width]} for r, c in sample],
        "mapping": report,
        "fields": field_choices(cat),
    }
