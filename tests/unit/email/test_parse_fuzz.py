"""Property tests: arbitrary bytes and mutated real messages never crash the parser."""

from __future__ import annotations

import json
from html.parser import HTMLParser

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.email.normalize import parse_message
from crm_core.events import InboundEvent, NormalizeError
from tests.unit.email.conftest import INDEX, load

# Small fixtures keep each example fast; the big ones are covered by the index tests.
SMALL = sorted(e["file"] for e in INDEX if e["bytes"] < 10_000)
SAMPLES = {name: load(name) for name in SMALL}
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class _Tags(HTMLParser):
    """Every tag and attribute a browser would see (escaped text is only text)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.bad: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "iframe", "object", "embed", "style", "form"):
            self.bad.append(f"<{tag}>")
        for name, value in attrs:
            v = (value or "").strip().lower()
            if name.startswith("on"):
                self.bad.append(f"{tag}@{name}")
            if name in ("href", "src", "action") and v.startswith(("javascript:", "vbscript:")):
                self.bad.append(f"{tag}@{name}={v[:20]}")


def _assert_safe_html(html: str) -> None:
    p = _Tags()
    p.feed(html)
    p.close()
    assert not p.bad, p.bad


def _check(raw: bytes) -> InboundEvent | None:
    try:
        ev = parse_message(raw, own_addresses={"manager1@crm.example"})
    except NormalizeError as exc:
        assert exc.field == "raw" and str(exc)
        return None
    out = ev.to_json()
    json.dumps(out, ensure_ascii=False)
    _assert_safe_html(out["html"] or "")
    assert ev.external_id
    return ev


@FUZZ
@given(st.binary(max_size=2_000))
def test_arbitrary_bytes(raw: bytes) -> None:
    _check(raw)


@FUZZ
@given(
    name=st.sampled_from(SMALL),
    edits=st.lists(
        st.tuples(
            st.sampled_from(["replace", "insert", "delete", "truncate"]),
            st.floats(min_value=0, max_value=1, exclude_max=True),
            st.binary(min_size=1, max_size=12)
            | st.sampled_from(
                [
                    b"=?",
                    b"?=",
                    b"\r\n",
                    b"\r\n ",
                    b"--",
                    b"\xd0",
                    b"<",
                    b">",
                    b'"',
                    b";",
                    b"=?utf-8?B?",
                    b"boundary=",
                    b"Content-Type: multipart/mixed",
                    b"\r\n\r\n",
                    b"<script>",
                    b"charset=x-bogus",
                ]
            ),
        ),
        min_size=1,
        max_size=8,
    ),
)
def test_mutated_real_messages(name: str, edits: list[tuple[str, float, bytes]]) -> None:
    raw = bytearray(SAMPLES[name])
    for op, where, chunk in edits:
        i = int(where * len(raw)) if raw else 0
        if op == "replace":
            raw[i : i + len(chunk)] = chunk
        elif op == "insert":
            raw[i:i] = chunk
        elif op == "delete":
            del raw[i : i + len(chunk)]
        else:
            del raw[max(i, 1) :]
    _check(bytes(raw))


HEADER_TEXT = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=80).map(
    lambda s: s.replace("\r", " ").replace("\n", " ")
)


@FUZZ
@given(
    sender=HEADER_TEXT,
    subject=HEADER_TEXT,
    to=HEADER_TEXT,
    refs=HEADER_TEXT,
    date=HEADER_TEXT,
    body=st.binary(max_size=300),
)
def test_messages_with_headers_always_parse(
    sender: str, subject: str, to: str, refs: str, date: str, body: bytes
) -> None:
    head = (
        f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nReferences: {refs}\r\n"
        f"Date: {date}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    )
    raw = head.encode("utf-8", errors="surrogateescape") + body
    ev = _check(raw)
    assert ev is not None  # a From header makes it a message: never rejected
