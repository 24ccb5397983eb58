"""A Russian company's registration numbers and a website, checked the way the tax
service builds them: INN (10 digits for an organisation, 12 for a person or a sole
trader, with check digits), KPP (9 characters: 4 digits, 2 digits or Latin capitals,
3 digits) and OGRN (13 digits) or OGRNIP (15 digits), whose last digit is a check digit.

Pure functions raising :class:`~crm_core.services.common.Invalid` naming the field, so
the API, the import and the demo use one set of rules."""

from __future__ import annotations

import re

from pydantic import AnyHttpUrl, TypeAdapter, ValidationError

from crm_core.services.common import Invalid

__all__ = ["normalize_website", "validate_inn", "validate_kpp", "validate_ogrn"]

_INN10 = (2, 4, 10, 3, 5, 9, 4, 6, 8)
_INN11 = (7, 2, 4, 10, 3, 5, 9, 4, 6, 8)
_INN12 = (3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8)
_KPP = re.compile(r"^\d{4}[0-9A-Z]{2}\d{3}$", re.ASCII)
_URL = TypeAdapter(AnyHttpUrl)


def _digits(value: str) -> bool:
    return value.isascii() and value.isdigit()


def _check_digit(digits: str, weights: tuple[int, ...]) -> int:
    return sum(int(d) * w for d, w in zip(digits, weights, strict=False)) % 11 % 10


def validate_inn(inn: str) -> str:
    """A Russian INN: 10 digits (organisation) or 12 (person, sole trader), checksummed."""
    value = inn.strip()
    if not _digits(value) or len(value) not in (10, 12):
        raise Invalid("inn must be 10 or 12 digits", "inn")
    if len(value) == 10:
        ok = _check_digit(value, _INN10) == int(value[9])
    else:
        ok = _check_digit(value, _INN11) == int(value[10]) and _check_digit(value, _INN12) == int(
            value[11]
        )
    if not ok:
        raise Invalid(f"inn {value} fails its checksum", "inn")
    return value


def validate_kpp(kpp: str) -> str:
    """A KPP: 4 digits (tax office), 2 digits or capital Latin letters (reason), 3 digits."""
    value = kpp.strip().upper()
    if not _KPP.match(value):
        raise Invalid(
            "kpp must be 9 characters: 4 digits, 2 digits or letters A-Z, 3 digits", "kpp"
        )
    return value


def validate_ogrn(ogrn: str) -> str:
    """OGRN (13 digits: the 12 first modulo 11, last digit) or OGRNIP (15 digits: the 14
    first modulo 13, last digit)."""
    value = ogrn.strip()
    if not _digits(value) or len(value) not in (13, 15):
        raise Invalid("ogrn must be 13 digits (OGRN) or 15 (OGRNIP)", "ogrn")
    body, check = value[:-1], int(value[-1])
    modulo = 11 if len(value) == 13 else 13
    if int(body) % modulo % 10 != check:
        raise Invalid(f"ogrn {value} fails its check digit", "ogrn")
    return value


def normalize_website(url: str) -> str:
    """An http(s) address; ``example.ru`` becomes ``https://example.ru``.  The text is
    kept as typed (a Cyrillic domain stays Cyrillic) once it parses as a web address."""
    value = url.strip()
    if not value:
        raise Invalid("website is not a web address", "website")
    if "://" not in value:
        value = "https://" + value
    try:
        parsed = _URL.validate_python(value)
    except ValidationError:
        raise Invalid("website is not a web address", "website") from None
    host = parsed.host or ""
    if "." not in host or any(c.isspace() for c in value) or len(value) > 300:
        raise Invalid("website is not a web address", "website")
    return value
