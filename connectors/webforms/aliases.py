"""Built-in field-name aliases of website forms (Tilda, Elementor, CF7, plain HTML, RU labels).

Keys are compared in :func:`~connectors.webforms.config.squash_key` form (lower case,
no punctuation or spaces), after dropping a ``your``/``ваш`` prefix and trailing digits
(``your-name`` -> ``name``, ``tel-123`` -> ``tel``, ``phone2`` -> ``phone``).
"""

from __future__ import annotations

import functools
import re

from connectors.webforms.config import squash_key

__all__ = ["BUILTIN_ALIASES", "IDEMPOTENCY_FIELDS", "UTM_KEYS", "VOLATILE_FIELDS", "canonical_of"]

UTM_KEYS: tuple[str, ...] = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")

_TABLE: dict[str, tuple[str, ...]] = {
    "name": (
        "name",
        "fio",
        "фио",
        "имя",
        "fullname",
        "contactname",
        "clientname",
        "customername",
        "имяфамилия",
        "фамилияимя",
        "имяифамилия",
        "фамилияимяотчество",
        "контактноелицо",
        "представьтесь",
        "каквасзовут",
    ),
    "first_name": ("firstname", "fname", "givenname", "first"),
    "middle_name": ("middlename", "отчество", "patronymic"),
    "last_name": ("lastname", "lname", "surname", "familyname", "фамилия", "last"),
    "phone": (
        "phone",
        "tel",
        "telephone",
        "phonenumber",
        "mobile",
        "mobilephone",
        "cell",
        "cellphone",
        "contactphone",
        "телефон",
        "тел",
        "номертелефона",
        "контактныйтелефон",
        "мобильный",
        "мобильныйтелефон",
        "сотовый",
        "сотовыйтелефон",
        "телефондлясвязи",
        "номер",
        "phoneno",
    ),
    "email": (
        "email",
        "mail",
        "emailaddress",
        "emailадрес",
        "respondentemail",
        "почта",
        "элпочта",
        "электроннаяпочта",
        "адресэлектроннойпочты",
        "адреспочты",
        "емейл",
        "емаил",
        "имейл",
        "эмейл",
        "емэйл",
        "епочта",
    ),
    "comment": (
        "comment",
        "comments",
        "message",
        "msg",
        "question",
        "notes",
        "note",
        "textarea",
        "description",
        "details",
        "enquiry",
        "inquiry",
        "комментарий",
        "комментарии",
        "сообщение",
        "вопрос",
        "вашвопрос",
        "примечание",
        "описание",
        "пожелания",
        "текстсообщения",
        "задача",
        "опишитезадачу",
    ),
    "subject": ("subject", "тема", "темаобращения", "topic"),
    "company": (
        "company",
        "companyname",
        "organization",
        "organisation",
        "org",
        "компания",
        "организация",
        "названиекомпании",
        "названиеорганизации",
        "фирма",
    ),
    "inn": ("inn", "инн", "innкомпании", "taxid"),
    "page_url": (
        "pageurl",
        "page",
        "pagelink",
        "sourceurl",
        "landingurl",
        "landingpage",
        "formurl",
        "currenturl",
        "страница",
        "адресстраницы",
    ),
    "referrer": ("referrer", "referer", "httpreferer", "httpreferrer", "documentreferrer"),
    "form_id": ("formid", "form"),
    "form_name": ("formname", "formtitle"),
}
_TABLE.update({utm: (squash_key(utm),) for utm in UTM_KEYS})

BUILTIN_ALIASES: dict[str, str] = {
    squash_key(alias): canonical for canonical, aliases in _TABLE.items() for alias in aliases
}

# Sender-provided submission ids (squashed): Tilda tranid, Google Forms response id.
IDEMPOTENCY_FIELDS: tuple[str, ...] = ("tranid", "responseid", "submissionid")

# Left out of the double-click hash: they change between two clicks of the same visitor.
VOLATILE_FIELDS: frozenset[str] = frozenset(
    {
        "formtoken",
        "token",
        "csrf",
        "csrftoken",
        "nonce",
        "date",
        "time",
        "timestamp",
        "submittedat",
        "credit",
        "useragent",
        "remoteip",
        "cookies",
    }
)

_PREFIX_RE = re.compile(r"^(?:your|ваш[аеи]?)(?=.)")
_DIGITS_RE = re.compile(r"(?<=\D)\d+$")


@functools.lru_cache(maxsize=8192)
def _name_variants(key: str) -> tuple[tuple[str, ...], ...]:
    """Per name tried (the key, then a dotted key's last segment): its squashed variants.
    Cached: forms send the same field names over and over."""
    names = [key]
    if "." in key:
        names.append(key.rsplit(".", 1)[1])
    out = []
    for name in names:
        squashed = squash_key(name)
        if not squashed:
            continue
        variants = [squashed]
        for v in list(variants):
            stripped = _PREFIX_RE.sub("", v)
            if stripped != v:
                variants.append(stripped)
        for v in list(variants):
            no_digits = _DIGITS_RE.sub("", v)
            if no_digits != v:
                variants.append(no_digits)
        out.append(tuple(variants))
    return tuple(out)


def canonical_of(key: str, extra: dict[str, str] | None = None) -> str | None:
    """Field name -> canonical field (``name``, ``phone``, ...) or None when unknown.

    ``extra`` (a form's own aliases, squashed keys) wins over the built-in table.  For a
    dotted key (flattened JSON ``answers.Телефон``) the last segment is tried too.
    """
    for variants in _name_variants(key):
        if extra:
            for v in variants:
                if v in extra:
                    return extra[v]
        for v in variants:
            if v in BUILTIN_ALIASES:
                return BUILTIN_ALIASES[v]
    return None
