"""The field registry of the client import: which columns a sheet may have and how a
cell becomes a value.

Each :class:`FieldSpec` names a client field, the headers that mean it (Russian and
English, compared case- and punctuation-insensitively) and how its cells are parsed.
Custom fields defined by an admin are not in this registry: their headers (label in
Russian or English, or key) come from the database in a
:class:`~crm_core.imports.catalog.Catalog` and map to ``custom.<key>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "CUSTOM_PREFIX",
    "FIELDS",
    "FIELDS_BY_NAME",
    "FieldSpec",
    "header_key",
    "is_field",
    "match_header",
]

CUSTOM_PREFIX = "custom."


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    headers: tuple[str, ...]
    # text | inn | kpp | ogrn | phones | emails | consent | kind | status | int | decimal | date
    # | list (tags, segments) | persons | parent
    parse: str = "text"
    multi: bool = False  # several columns add up (work + mobile phone)
    stored: bool = True
    max_len: int = 300
    label_ru: str = ""
    label_en: str = ""


def _f(name: str, ru: str, en: str, headers: tuple[str, ...], **kw: object) -> FieldSpec:
    return FieldSpec(name, headers, label_ru=ru, label_en=en, **kw)  # type: ignore[arg-type]


FIELDS: tuple[FieldSpec, ...] = (
    _f(
        "name",
        "Наименование",
        "Name",
        (
            "наименование",
            "название",
            "компания",
            "организация",
            "контрагент",
            "клиент",
            "наименование контрагента",
            "название компании",
            "краткое наименование",
            "name",
            "company",
            "company name",
            "client",
            "organization",
            "account name",
            "short name",
        ),
    ),
    _f(
        "full_name",
        "Полное наименование",
        "Full legal name",
        (
            "полное наименование",
            "полное название",
            "полное наименование организации",
            "юридическое наименование",
            "full legal name",
            "legal name",
            "full company name",
        ),
        max_len=500,
    ),
    _f(
        "inn", "ИНН", "INN", ("инн", "инн контрагента", "inn", "tax id", "taxpayer id"), parse="inn"
    ),
    _f("kpp", "КПП", "KPP", ("кпп", "кпп контрагента", "kpp"), parse="kpp"),
    _f(
        "ogrn",
        "ОГРН",
        "OGRN",
        ("огрн", "огрнип", "огрн огрнип", "ogrn", "ogrnip", "psrn"),
        parse="ogrn",
    ),
    _f(
        "phones",
        "Телефон",
        "Phone",
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
    _f(
        "emails",
        "E-mail",
        "Email",
        (
            "e-mail",
            "email",
            "почта",
            "эл почта",
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
    _f(
        "email_consent",
        "Согласие на рассылку",
        "Email consent",
        (
            "согласие на рассылку",
            "согласие на рассылки",
            "согласие на email рассылку",
            "согласие на e-mail рассылку",
            "согласие на получение рассылки",
            "согласие",
            "подписка на рассылку",
            "рассылка",
            "email consent",
            "e-mail consent",
            "marketing consent",
            "newsletter consent",
            "consent",
            "subscribed",
            "newsletter",
        ),
        parse="consent",
    ),
    _f(
        "owner",
        "Ответственный",
        "Owner",
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
    _f(
        "contact_name",
        "Контактное лицо",
        "Contact person",
        (
            "контактное лицо",
            "контактные лица",
            "контакт",
            "фио",
            "фио контакта",
            "полное имя",
            "contact",
            "contact person",
            "contact persons",
            "contact name",
            "full name",
        ),
        parse="persons",
        max_len=2000,
    ),
    _f("position", "Должность", "Position", ("должность", "position", "job title"), max_len=200),
    _f(
        "segments",
        "Сегмент",
        "Segment",
        ("сегмент", "сегменты", "группа клиентов", "segment", "segments"),
        parse="list",
        max_len=100,
    ),
    _f("tags", "Теги", "Tags", ("теги", "метки", "тэги", "tags", "labels"), parse="list"),
    _f(
        "kind",
        "Вид контрагента",
        "Kind",
        ("вид контрагента", "тип контрагента", "тип клиента", "вид", "тип", "kind", "type"),
        parse="kind",
    ),
    _f("status", "Статус", "Status", ("статус", "статус клиента", "status"), parse="status"),
    _f(
        "parent",
        "Головная компания",
        "Parent company",
        (
            "холдинг",
            "головная компания",
            "головная организация",
            "материнская компания",
            "головная компания холдинг",
            "холдинг головная компания",
            "parent",
            "parent company",
            "holding",
            "head office",
        ),
        parse="parent",
    ),
    _f(
        "legal_address",
        "Юридический адрес",
        "Legal address",
        (
            "юридический адрес",
            "юр адрес",
            "адрес юридический",
            "legal address",
            "registered address",
        ),
        max_len=2000,
    ),
    _f(
        "actual_address",
        "Фактический адрес",
        "Actual address",
        (
            "фактический адрес",
            "факт адрес",
            "адрес фактический",
            "адрес",
            "почтовый адрес",
            "actual address",
            "address",
            "office address",
            "postal address",
        ),
        max_len=2000,
    ),
    _f("city", "Город", "City", ("город", "населенный пункт", "city", "town"), max_len=100),
    _f("region", "Регион", "Region", ("регион", "область", "субъект рф", "region"), max_len=100),
    _f("industry", "Отрасль", "Industry", ("отрасль", "сфера", "industry", "sector"), max_len=200),
    _f(
        "activity",
        "Вид деятельности",
        "Kind of activity",
        (
            "вид деятельности",
            "деятельность",
            "основной вид деятельности",
            "оквэд",
            "activity",
            "kind of activity",
            "business activity",
        ),
    ),
    _f(
        "headcount",
        "Численность",
        "Headcount",
        (
            "численность",
            "численность сотрудников",
            "количество сотрудников",
            "кол во сотрудников",
            "сотрудников",
            "headcount",
            "employees",
            "number of employees",
        ),
        parse="int",
    ),
    _f(
        "revenue",
        "Выручка",
        "Revenue",
        (
            "выручка",
            "годовая выручка",
            "выручка руб",
            "оборот",
            "revenue",
            "annual revenue",
            "turnover",
        ),
        parse="decimal",
    ),
    _f(
        "website",
        "Сайт",
        "Website",
        ("сайт", "веб сайт", "website", "web site", "site", "www", "url"),
    ),
    _f(
        "birthday",
        "Дата рождения",
        "Birthday",
        ("дата рождения", "день рождения", "birthday", "date of birth", "birth date", "dob"),
        parse="date",
    ),
    _f(
        "source",
        "Источник",
        "Source",
        ("источник", "источник клиента", "source", "lead source"),
        max_len=100,
    ),
    _f(
        "notes",
        "Примечание",
        "Notes",
        ("примечание", "комментарий", "заметки", "notes", "note", "comment", "comments"),
        max_len=10_000,
    ),
)

FIELDS_BY_NAME = {f.name: f for f in FIELDS}
_NON_WORD = re.compile(r"[^\w@+-]+")


def header_key(text: object) -> str:
    """``" Рабочий  телефон:"`` -> ``"рабочий телефон"`` (case, ё, spaces, punctuation)."""
    s = str(text or "").strip().lower().replace("ё", "е")
    s = _NON_WORD.sub(" ", s).strip()
    return re.sub(r"\s+", " ", s)


_BY_HEADER: dict[str, str] = {}
for _f_ in FIELDS:
    for _h in _f_.headers:
        _BY_HEADER[header_key(_h)] = _f_.name


def match_header(text: object) -> str | None:
    """The built-in field a header means, or None."""
    return _BY_HEADER.get(header_key(text))


def is_field(name: str) -> bool:
    """A built-in field name or ``custom.<key>`` (whether the key exists is checked
    against the database's custom fields when the sheet is read)."""
    return name in FIELDS_BY_NAME or (name.startswith(CUSTOM_PREFIX) and len(name) > 7)
