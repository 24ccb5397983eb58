"""The field registry of the client import: which columns a sheet may have and how a
cell becomes a value.

Each :class:`FieldSpec` names a client field, the headers that mean it (Russian and
English, compared case- and punctuation-insensitively) and how its cells are parsed.
A field the model does not hold yet is registered with ``stored=False``: its column is
recognized (and shown in the mapping) but not written.  Adding a business-profile
field (KPP, OGRN, addresses...) is one more entry here plus its column in the writer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["FIELDS", "FIELDS_BY_NAME", "FieldSpec", "header_key", "match_header"]


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    headers: tuple[str, ...]
    parse: str = "text"  # text | inn | phones | emails | kind | status
    multi: bool = False  # several columns add up (work + mobile phone)
    stored: bool = True
    max_len: int = 300


FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec(
        "name",
        (
            "наименование",
            "название",
            "компания",
            "организация",
            "контрагент",
            "клиент",
            "наименование контрагента",
            "название компании",
            "полное наименование",
            "name",
            "company",
            "company name",
            "client",
            "organization",
            "account name",
        ),
    ),
    FieldSpec("inn", ("инн", "инн контрагента", "inn", "tax id", "taxpayer id"), parse="inn"),
    FieldSpec(
        "phones",
        (
            "телефон",
            "телефоны",
            "рабочий телефон",
            "мобильный телефон",
            "мобильный",
            "контактный телефон",
            "тел",
            "phone",
            "phones",
            "work phone",
            "mobile",
            "mobile phone",
            "telephone",
        ),
        parse="phones",
        multi=True,
    ),
    FieldSpec(
        "emails",
        (
            "e-mail",
            "email",
            "почта",
            "эл. почта",
            "электронная почта",
            "рабочий email",
            "рабочий e-mail",
            "личный email",
            "work email",
            "emails",
            "e-mail address",
        ),
        parse="emails",
        multi=True,
    ),
    FieldSpec(
        "owner",
        (
            "ответственный",
            "основной менеджер",
            "менеджер",
            "ответственный менеджер",
            "owner",
            "responsible",
            "manager",
            "account owner",
        ),
    ),
    FieldSpec(
        "contact_name",
        (
            "контактное лицо",
            "контакт",
            "фио",
            "фио контакта",
            "полное имя",
            "contact",
            "contact person",
            "contact name",
            "full name",
        ),
    ),
    FieldSpec("position", ("должность", "position", "job title"), max_len=200),
    FieldSpec("segment", ("сегмент", "группа клиентов", "segment"), max_len=100),
    FieldSpec(
        "kind",
        ("вид контрагента", "тип контрагента", "тип клиента", "вид", "тип", "kind", "type"),
        parse="kind",
    ),
    FieldSpec("status", ("статус", "status"), parse="status"),
    FieldSpec("region", ("регион", "region"), max_len=100),
    FieldSpec(
        "notes",
        ("примечание", "комментарий", "заметки", "notes", "note", "comment", "comments"),
        max_len=10_000,
    ),
    # Recognized, not stored yet (the client has no tags today).
    FieldSpec("tags", ("теги", "метки", "tags", "labels"), stored=False),
)

FIELDS_BY_NAME = {f.name: f for f in FIELDS}
_NON_WORD = re.compile(r"[^\w@+-]+")


def header_key(text: object) -> str:
    """``" Рабочий  телефон:"`` -> ``"рабочий телефон"`` (case, ё, spaces, punctuation)."""
    s = str(text or "").strip().lower().replace("ё", "е")
    s = _NON_WORD.sub(" ", s).strip()
    return re.sub(r"\s+", " ", s)


_BY_HEADER: dict[str, str] = {}
for _f in FIELDS:
    for _h in _f.headers:
        _BY_HEADER[header_key(_h)] = _f.name


def match_header(text: object) -> str | None:
    """The field a header means, or None."""
    return _BY_HEADER.get(header_key(text))
