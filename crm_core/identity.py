"""Normalization of contact points: phones to E.164, emails validated and lower-cased.

Pure functions, safe on arbitrary text: they return a value or raise
:class:`IdentityError` (a ``ValueError``) whose message says what is wrong.
Connectors use them to build ``InboundEvent.identities``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers
from email_validator import EmailNotValidError, validate_email

__all__ = [
    "IdentityError",
    "ParsedPhone",
    "extract_phones",
    "identity",
    "normalize_email",
    "normalize_identity",
    "normalize_phone",
    "split_identity",
]

MAX_PHONE_INPUT = 200
MAX_EMAIL_INPUT = 320
IDENTITY_KINDS = ("phone", "email", "telegram", "vk")


class IdentityError(ValueError):
    """The text is not a usable phone or email; the message says why."""


@dataclass(frozen=True, slots=True)
class ParsedPhone:
    e164: str
    extension: str | None = None

    @property
    def identity(self) -> str:
        return f"phone:{self.e164}"


_EXT_RE = re.compile(
    r"(?:доб\.?|добавочный|ext\.?|extension|вн\.?|x)\s*[:#]?\s*(\d{1,7})\s*$", re.IGNORECASE
)
_DIGITS_RE = re.compile(r"\d")
_STRIP_RE = re.compile(r"[\s\-().\u00a0\u2011\u2012\u2013\u2014/]")


def _candidates(text: str) -> list[str]:
    """Ways to read one number; tried in order until one is a valid number."""
    compact = _STRIP_RE.sub("", text)
    out = [text]
    if compact.startswith("00"):
        out.insert(0, "+" + compact[2:])
    elif compact.startswith("810") and len(compact) > 11:
        out.insert(0, "+" + compact[3:])  # Russian trunk prefix for international calls
    if compact.isdigit() and not compact.startswith(("8", "0")):
        # A CIS or foreign number written without "+" (375291234567, 998901234567).
        out.append("+" + compact)
    if compact.startswith("+8") and len(compact) == 12:
        out.append(compact[1:])  # "+8 916 555-12-34": the trunk 8 written with a "+"
    return out


def _format(num: phonenumbers.PhoneNumber) -> ParsedPhone:
    return ParsedPhone(
        e164=phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164),
        extension=num.extension or None,
    )


def normalize_phone(text: str, region: str = "RU") -> ParsedPhone:
    """Parse one phone number as people write it into forms and signatures.

    ``8 (916) 555-12-34``, ``9165551234``, ``+7 916 ...``, ``8-800-...``,
    ``375291234567`` (CIS without ``+``), ``00``/``8 10`` international prefixes,
    ``тел. 8 916 555 12 34 доб. 12`` (the extension is returned apart).
    """
    if not isinstance(text, str):
        raise IdentityError(f"phone must be text, got {type(text).__name__}")
    raw = text.strip()
    if not raw:
        raise IdentityError("phone is empty")
    if len(raw) > MAX_PHONE_INPUT:
        raise IdentityError(f"phone is too long ({len(raw)} characters)")
    digits = len(_DIGITS_RE.findall(raw))
    if digits < 5:
        raise IdentityError(f"phone {raw!r} has too few digits")
    extension = None
    m = _EXT_RE.search(raw)
    if m:
        extension = m.group(1)
        raw = raw[: m.start()].rstrip(" ,;")
    # Letters before the number ("тел.", "моб:") confuse the parser: cut to the first digit or +.
    start = next((i for i, ch in enumerate(raw) if ch.isdigit() or ch == "+"), 0)
    raw = raw[start:]
    first_error = "not a valid phone number"
    for candidate in _candidates(raw):
        try:
            num = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException as exc:
            first_error = str(exc.args[0]) if exc.args else first_error
            continue
        if phonenumbers.is_valid_number(num):
            parsed = _format(num)
            if extension and not parsed.extension:
                parsed = ParsedPhone(parsed.e164, extension)
            return parsed
    raise IdentityError(f"phone {text.strip()!r} is not a valid number ({first_error})")


def extract_phones(text: str, region: str = "RU") -> list[ParsedPhone]:
    """Every valid phone in a field or a signature (``+7 916 ... , 8 495 ...``)."""
    if not isinstance(text, str) or not text.strip():
        return []
    text = text[:10_000]
    found: dict[str, ParsedPhone] = {}
    try:
        single = normalize_phone(text, region)
    except IdentityError:
        single = None
    if single is not None and len(_DIGITS_RE.findall(text)) <= 15:
        return [single]  # one number (E.164 has at most 15 digits): skip the slow matcher
    for match in phonenumbers.PhoneNumberMatcher(
        text, region, leniency=phonenumbers.Leniency.VALID
    ):
        parsed = _format(match.number)
        found.setdefault(parsed.e164, parsed)
    if not found:
        for part in re.split(r"[,;]|\s(?:или|or|и)\s", text):
            try:
                parsed = normalize_phone(part, region)
            except IdentityError:
                continue
            found.setdefault(parsed.e164, parsed)
    if single and single.e164 not in found and len(found) <= 1:
        return [single]
    if single and single.extension and single.e164 in found and not found[single.e164].extension:
        found[single.e164] = single  # "вн. 45", "(доб. 204)": the matcher drops the extension
    return list(found.values())


def normalize_email(text: str) -> str:
    """Validate (syntax only, no DNS) and lower-case an address."""
    if not isinstance(text, str):
        raise IdentityError(f"email must be text, got {type(text).__name__}")
    raw = text.strip().strip("<>").strip()
    if raw.lower().startswith("mailto:"):
        raw = raw[7:]
    if not raw:
        raise IdentityError("email is empty")
    if len(raw) > MAX_EMAIL_INPUT:
        raise IdentityError(f"email is too long ({len(raw)} characters)")
    try:
        info = validate_email(raw, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise IdentityError(f"email {raw!r} is not valid: {exc}") from None
    return info.normalized.lower()


def identity(kind: str, value: str) -> str:
    return f"{kind}:{value}"


def split_identity(ident: str) -> tuple[str, str]:
    kind, sep, value = ident.partition(":")
    if not sep or kind not in IDENTITY_KINDS or not value:
        raise IdentityError(f"identity {ident!r} is not kind:value with kind in {IDENTITY_KINDS}")
    return kind, value


def normalize_identity(kind: str, value: str, region: str = "RU") -> str:
    """``phone``/``email``/``telegram``/``vk`` + raw value -> normalized identity string."""
    if kind == "phone":
        return normalize_phone(value, region).identity
    if kind == "email":
        return identity("email", normalize_email(value))
    if kind in ("telegram", "vk"):
        v = str(value).strip()
        if not (v.isascii() and v.lstrip("-").isdigit()):
            raise IdentityError(f"{kind} id {value!r} must be a number")
        return identity(kind, v)
    raise IdentityError(f"unknown identity kind {kind!r}")
