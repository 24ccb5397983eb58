"""Unsubscribe tokens: round trip, tampering, hostile text (never a false accept, never
an unexpected exception), the List-Unsubscribe headers and the masked address."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm_core.services.consent import (
    UnsubscribeTokenError,
    list_unsubscribe_headers,
    make_unsubscribe_token,
    mask_email,
    read_unsubscribe_token,
    unsubscribe_url,
)

SECRET = "test-secret-0123456789abcdef"


def test_round_trip_with_and_without_campaign() -> None:
    token = make_unsubscribe_token(SECRET, " Ivan.Petrov@Example.RU ", 42)
    assert read_unsubscribe_token(SECRET, token) == ("ivan.petrov@example.ru", 42)
    token = make_unsubscribe_token(SECRET, "ivan@example.ru", None)
    assert read_unsubscribe_token(SECRET, token) == ("ivan@example.ru", None)
    # URL-safe: nothing a URL would need to escape
    assert all(c.isalnum() or c in "._-" for c in token)


def test_unicode_address_round_trip() -> None:
    token = make_unsubscribe_token(SECRET, "иван@пример.рф", 7)
    assert read_unsubscribe_token(SECRET, token) == ("иван@пример.рф", 7)


def test_another_secret_refuses() -> None:
    token = make_unsubscribe_token(SECRET, "ivan@example.ru", 1)
    with pytest.raises(UnsubscribeTokenError) as err:
        read_unsubscribe_token(SECRET + "x", token)
    assert err.value.reason == "signature"


def test_address_or_campaign_swapped_refuses() -> None:
    a = make_unsubscribe_token(SECRET, "ivan@example.ru", 1).split(".")
    b = make_unsubscribe_token(SECRET, "olga@example.ru", 2).split(".")
    for forged in (
        [a[0], b[1], a[2], a[3]],  # olga's address with ivan's signature
        [a[0], a[1], b[2], a[3]],  # another campaign
        [a[0], a[1], "", a[3]],  # campaign removed
        ["2", a[1], a[2], a[3]],  # another version
    ):
        with pytest.raises(UnsubscribeTokenError):
            read_unsubscribe_token(SECRET, ".".join(forged))


@pytest.mark.parametrize(
    "bad",
    ["", ".", "1...", "1.a.b.c", "1.aXZhbg.01.x", "x" * 5000, "1.aXZhbg.١.AAAA", "1.aXZhbg=.1.AA"],
)
def test_malformed_refuses_with_a_reason(bad: str) -> None:
    with pytest.raises(UnsubscribeTokenError) as err:
        read_unsubscribe_token(SECRET, bad)
    assert err.value.reason in ("malformed", "signature")
    assert err.value.message


@given(st.text(max_size=300))
def test_any_text_is_refused_cleanly(text: str) -> None:
    with pytest.raises(UnsubscribeTokenError):
        read_unsubscribe_token(SECRET, text)


@given(
    st.emails(),
    st.one_of(st.none(), st.integers(min_value=1, max_value=2**62)),
    st.data(),
)
def test_any_change_to_a_token_is_refused(
    email: str, campaign: int | None, data: st.DataObject
) -> None:
    try:
        token = make_unsubscribe_token(SECRET, email, campaign)
    except ValueError:  # an address email-validator refuses (hypothesis is more lenient)
        return
    pos = data.draw(st.integers(min_value=0, max_value=len(token) - 1))
    char = data.draw(st.characters(codec="utf-8"))
    mode = data.draw(st.sampled_from(["replace", "insert", "delete"]))
    if mode == "replace":
        forged = token[:pos] + char + token[pos + 1 :]
    elif mode == "insert":
        forged = token[:pos] + char + token[pos:]
    else:
        forged = token[:pos] + token[pos + 1 :]
    if forged == token:
        return
    with pytest.raises(UnsubscribeTokenError):
        read_unsubscribe_token(SECRET, forged)


def test_url_and_headers() -> None:
    url = unsubscribe_url("https://crm.example.ru/", "1.abc..def")
    assert url == "https://crm.example.ru/u/1.abc..def"
    assert list_unsubscribe_headers(url) == {
        "List-Unsubscribe": "<https://crm.example.ru/u/1.abc..def>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    both = list_unsubscribe_headers(url, "unsub@example.ru")
    assert both["List-Unsubscribe"] == (
        "<mailto:unsub@example.ru>, <https://crm.example.ru/u/1.abc..def>"
    )
    for bad in ("https://x/\r\nBcc: a@b", "javascript:alert(1)", "https://x/>"):
        with pytest.raises(ValueError):
            list_unsubscribe_headers(bad)


def test_mask() -> None:
    assert mask_email("ivan.petrov@example.ru") == "i***v@example.ru"
    assert mask_email("ab@example.ru") == "a***@example.ru"
    assert mask_email("x") == "***"
