"""The pure helpers of the IMAP session: FETCH response parsing, UID sets, dates."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from connectors.email.imap_session import Fetched, imap_date, parse_fetch, quote_mailbox, uid_set


def test_parse_fetch_flat_list_shape() -> None:
    lines = [
        b'1 FETCH (UID 7 INTERNALDATE "28-Nov-2026 12:24:24 +0000" BODY[] {5}',
        bytearray(b"hello"),
        b")",
        b"2 FETCH (BODY[] {3}",
        bytearray(b"abc"),
        b" UID 9)",
        b"3 FETCH (UID 10 BODY[] NIL)",
        b"4 EXISTS",
        b"Fetch completed (0.001 + 0.000 secs).",
    ]
    assert parse_fetch(lines) == [
        Fetched(7, b"hello", datetime(2026, 11, 28, 12, 24, 24, tzinfo=UTC)),
        Fetched(9, b"abc", None),
    ]


@pytest.mark.parametrize(
    "uids,expected",
    [([1, 2, 3, 5, 7, 8], "1:3,5,7:8"), ([4], "4"), ([], ""), ([3, 1, 2, 2], "1:3")],
)
def test_uid_set(uids: list[int], expected: str) -> None:
    assert uid_set(uids) == expected


def test_imap_date_and_quoting() -> None:
    assert imap_date(date(2024, 2, 1)) == "01-Feb-2024"
    assert quote_mailbox("INBOX") == "INBOX"
    assert quote_mailbox("Sent Items") == '"Sent Items"'
    assert quote_mailbox('a"b') == '"a\\"b"'
