"""crm_core.identity: table-driven cases from issue 2 plus hypothesis properties."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm_core.identity import (
    IdentityError,
    ParsedPhone,
    extract_phones,
    normalize_email,
    normalize_identity,
    normalize_phone,
    split_identity,
)

PHONES: list[tuple[str, str, str | None]] = [
    # as people type it, E.164, extension
    ("8 (916) 555-12-34", "+79165551234", None),
    ("89165551234", "+79165551234", None),
    ("9165551234", "+79165551234", None),
    ("+7 916 5551234", "+79165551234", None),
    ("+7 (916) 555-12-34", "+79165551234", None),
    ("7 916 555 12 34", "+79165551234", None),
    ("7-916-555-12-34", "+79165551234", None),
    ("+8 916 555 12 34", "+79165551234", None),  # trunk 8 with a stray "+"
    ("тел: +7 916 555 12 34", "+79165551234", None),
    ("моб. 8-916-555-12-34", "+79165551234", None),
    ("8-800-500-90-48", "+78005009048", None),
    ("8 800 555 35 35", "+78005553535", None),
    ("8 (495) 123-45-67", "+74951234567", None),
    # CIS numbers written without "+"
    ("375291234567", "+375291234567", None),
    ("+375 29 123-45-67", "+375291234567", None),
    ("380501234567", "+380501234567", None),
    ("998901234567", "+998901234567", None),
    ("996555123456", "+996555123456", None),
    ("994501234567", "+994501234567", None),
    ("37491123456", "+37491123456", None),
    # international prefixes 00 and 8 10
    ("0079165551234", "+79165551234", None),
    ("00 375 29 123 45 67", "+375291234567", None),
    ("8 10 375 29 123 45 67", "+375291234567", None),
    ("810375291234567", "+375291234567", None),
    ("8 10 7 916 555 12 34", "+79165551234", None),
    # +7 7xx is Kazakhstan (same country code as Russia)
    ("+7 701 123 45 67", "+77011234567", None),
    ("87011234567", "+77011234567", None),
    ("8 (7172) 55-55-55", "+77172555555", None),
    # extensions kept apart
    ("тел. 8 916 555 12 34 доб. 12", "+79165551234", "12"),
    ("+7 (916) 555-12-34 доб.123", "+79165551234", "123"),
    ("9165551234 доб 5", "+79165551234", "5"),
    ("8 916 555 12 34 ext 5", "+79165551234", "5"),
    ("+7 916 555-12-34 x12", "+79165551234", "12"),
    ("8-916-555-12-34 вн. 45", "+79165551234", "45"),
    ("+7 (495) 123-45-67 (доб. 204)", "+74951234567", "204"),
    # foreign
    ("+44 20 7946 0958", "+442079460958", None),
    ("+81 3 1234 5678", "+81312345678", None),
]

BAD_PHONES: list[tuple[object, str]] = [
    ("", "phone is empty"),
    ("   ", "phone is empty"),
    ("abc", "phone 'abc' has too few digits"),
    ("12-34", "phone '12-34' has too few digits"),
    ("12345", "phone '12345' is not a valid number"),
    ("+1 555 0100", "phone '+1 555 0100' is not a valid number"),
    ("8 916 555", "phone '8 916 555' is not a valid number"),
    ("1" * 300, "phone is too long (300 characters)"),
    (None, "phone must be text, got NoneType"),
    (79165551234, "phone must be text, got int"),
]


@pytest.mark.parametrize(("text", "e164", "ext"), PHONES, ids=[p[0] for p in PHONES])
def test_normalize_phone(text: str, e164: str, ext: str | None) -> None:
    assert normalize_phone(text) == ParsedPhone(e164, ext)


@pytest.mark.parametrize(("text", "e164", "ext"), PHONES, ids=[p[0] for p in PHONES])
def test_extract_phones_finds_the_single_number(text: str, e164: str, ext: str | None) -> None:
    assert extract_phones(text) == [ParsedPhone(e164, ext)]


@pytest.mark.parametrize(("text", "message"), BAD_PHONES, ids=[str(b[0])[:20] for b in BAD_PHONES])
def test_bad_phones_are_rejected_with_a_reason(text: object, message: str) -> None:
    with pytest.raises(IdentityError) as info:
        normalize_phone(text)  # type: ignore[arg-type]
    assert str(info.value).startswith(message)
    assert extract_phones(text) == []  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("+7 916 555 12 34, 8 495 123 45 67", [("+79165551234", None), ("+74951234567", None)]),
        ("89165551234 или 84951234567", [("+79165551234", None), ("+74951234567", None)]),
        ("9165551234 или 4951234567", [("+79165551234", None), ("+74951234567", None)]),
        ("8 916 555 12 34; +375291234567", [("+79165551234", None), ("+375291234567", None)]),
        ("+79165551234, +79165551235", [("+79165551234", None), ("+79165551235", None)]),
        ("8 916 555 12 34 / 8 916 555 12 35", [("+79165551234", None), ("+79165551235", None)]),
        (
            "+7 916 555 12 34 доб. 12, 8 495 123 45 67",
            [("+79165551234", "12"), ("+74951234567", None)],
        ),
        ("89165551234, 8 (916) 555-12-34", [("+79165551234", None)]),  # same number twice
        ("89165551234 (Иван)", [("+79165551234", None)]),
        (
            "Звоните: +7 916 555 12 34 или в офис 8 (495) 123-45-67 доб. 204",
            [("+79165551234", None), ("+74951234567", "204")],
        ),
    ],
)
def test_extract_several_phones(text: str, expected: list[tuple[str, str | None]]) -> None:
    assert [(p.e164, p.extension) for p in extract_phones(text)] == expected


def test_region_is_configurable() -> None:
    assert normalize_phone("029 123-45-67", region="BY").e164 == "+375291234567"
    assert normalize_phone("+79165551234", region="DE").e164 == "+79165551234"


EMAILS: list[tuple[str, str]] = [
    ("ivan@example.ru", "ivan@example.ru"),
    ("Ivan.Petrov@Example.RU", "ivan.petrov@example.ru"),
    ("  anna@example.com  ", "anna@example.com"),
    ("<a@b.ru>", "a@b.ru"),
    ("mailto:X@Y.com", "x@y.com"),
    ("MAILTO:sales@example.org", "sales@example.org"),
    ("user+tag@example.com", "user+tag@example.com"),
    ("Пётр@пример.рф", "пётр@пример.рф"),
]

BAD_EMAILS: list[tuple[object, str]] = [
    ("", "email is empty"),
    ("<>", "email is empty"),
    ("bad@", "email 'bad@' is not valid"),
    ("a@b", "email 'a@b' is not valid"),
    ("not-an-email", "email 'not-an-email' is not valid"),
    ("two@@example.com", "email 'two@@example.com' is not valid"),
    ("a b@example.com", "email 'a b@example.com' is not valid"),
    ("x" * 400 + "@example.com", "email is too long (412 characters)"),
    (None, "email must be text, got NoneType"),
]


@pytest.mark.parametrize(("text", "expected"), EMAILS)
def test_normalize_email(text: str, expected: str) -> None:
    assert normalize_email(text) == expected


@pytest.mark.parametrize(("text", "message"), BAD_EMAILS, ids=[str(b[0])[:20] for b in BAD_EMAILS])
def test_bad_emails(text: object, message: str) -> None:
    with pytest.raises(IdentityError) as info:
        normalize_email(text)  # type: ignore[arg-type]
    assert str(info.value).startswith(message)


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        ("phone", "8 916 555 12 34", "phone:+79165551234"),
        ("email", "A@B.RU", "email:a@b.ru"),
        ("telegram", " 123456 ", "telegram:123456"),
        ("vk", "-987", "vk:-987"),
    ],
)
def test_normalize_identity(kind: str, value: str, expected: str) -> None:
    assert normalize_identity(kind, value) == expected
    assert split_identity(expected) == (kind, expected.split(":", 1)[1])


@pytest.mark.parametrize(("kind", "value"), [("vk", "abc"), ("fax", "123"), ("telegram", "")])
def test_normalize_identity_rejects(kind: str, value: str) -> None:
    with pytest.raises(IdentityError):
        normalize_identity(kind, value)


@pytest.mark.parametrize("ident", ["phone", "phone:", "fax:1", ":x"])
def test_split_identity_rejects(ident: str) -> None:
    with pytest.raises(IdentityError):
        split_identity(ident)


# --- properties -------------------------------------------------------------------------

_PHONE_ALPHABET = st.sampled_from(
    [
        *"0123456789",
        "+",
        "-",
        "(",
        ")",
        " ",
        ".",
        ",",
        ";",
        "\u00a0",
        "доб. ",
        "ext ",
        "x",
        "или",
        "8 10 ",
        "00",
        "+7",
        "8",
        "9",
    ]
)
PHONE_LIKE = st.lists(_PHONE_ALPHABET, max_size=40).map("".join)
ANY_TEXT = st.one_of(st.text(max_size=300), PHONE_LIKE)
PROPS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(ANY_TEXT)
def test_normalize_phone_returns_or_rejects_and_is_idempotent(text: str) -> None:
    try:
        parsed = normalize_phone(text)
    except IdentityError as exc:
        assert str(exc)
        return
    assert parsed.e164.startswith("+") and parsed.e164[1:].isdigit()
    assert normalize_phone(parsed.e164).e164 == parsed.e164


@PROPS
@given(ANY_TEXT)
def test_extract_phones_never_raises_and_results_are_fixed_points(text: str) -> None:
    found = extract_phones(text)
    assert len({p.e164 for p in found}) == len(found)
    for p in found:
        assert normalize_phone(p.e164).e164 == p.e164


@PROPS
@given(st.one_of(st.text(max_size=100), st.emails()))
def test_normalize_email_returns_or_rejects_and_is_idempotent(text: str) -> None:
    try:
        email = normalize_email(text)
    except IdentityError as exc:
        assert str(exc)
        return
    assert email == email.lower()
    assert normalize_email(email) == email


@PROPS
@given(st.emails())
def test_valid_emails_are_accepted(text: str) -> None:
    assert normalize_email(text) == normalize_email(text.upper())
