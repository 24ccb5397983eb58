"""Links and images keep only allowed URL schemes, however the scheme is disguised
(issue 10 item 9: a ``data:`` link preceded by 16 spaces survived the hand checks)."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.email.html import LINK_SCHEMES, sanitize_html
from crm_core.services.outbound import sanitize_outbound_html

SPACE16 = " " * 16


class _Urls(HTMLParser):
    """Every URL attribute as a browser decodes it (character references resolved)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("href", "src", "action", "background", "cite", "longdesc", "srcset"):
                self.urls.append((tag, name, value or ""))


def urls_of(html: str) -> list[tuple[str, str, str]]:
    p = _Urls()
    p.feed(html)
    p.close()
    return p.urls


def bad_urls(html: str) -> list[tuple[str, str, str]]:
    """URL attributes whose scheme (as a browser parses it: C0 controls and spaces
    trimmed, tabs and newlines removed) is not on the allow-list, or images not cid:."""
    out = []
    for tag, name, value in urls_of(html):
        cleaned = value.strip("\x00\x01\x02\x03\x04\x05\x06\x07\x08\t\n\x0b\x0c\r\x0e\x0f"
                              "\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e"
                              "\x1f ")  # fmt: skip
        cleaned = cleaned.replace("\t", "").replace("\n", "").replace("\r", "")
        scheme = urlsplit(cleaned).scheme.lower()
        if scheme not in LINK_SCHEMES or (name == "src" and scheme != "cid"):
            out.append((tag, name, value))
    return out


PREFIXES = [
    SPACE16,
    " " * 17,
    "\t" * 16,
    "\n" * 16,
    "\r\n" * 8,
    " \t\n" * 6,
    "&#32;" * 16,
    "&#x20;" * 16,
    "&#9;" * 16,
    "&Tab;" * 16,
    "&NewLine;" * 16,
    "&#x0A;" * 3 + SPACE16,
    "\x01" * 16,
    "&#1;" * 16,
]
SCHEMES = [
    "data:text/html,<script>alert(1)</script>",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "DATA:text/html,x",
    "d&#97;ta:text/html,x",
    "&#100;&#97;&#116;&#97;&#58;text/html,x",
    "data&colon;text/html,x",
    "da\tta:text/html,x",
    "javascript:alert(1)",
    "java&#x09;script:alert(1)",
    "vbscript:msgbox(1)",
    "data:image/svg+xml,<svg onload=alert(1)>",
]


def test_data_link_after_16_spaces_is_dropped() -> None:
    out = sanitize_html(f'<a href="{SPACE16}data:text/html,<script>alert(1)</script>">x</a>')
    assert out.html == '<a rel="noopener noreferrer nofollow">x</a>'


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("target", SCHEMES)
@pytest.mark.parametrize("template", ['<a href="{}">x</a>', "<a href='{}'>x</a>",
                                      '<img src="{}">', '<area href="{}">',
                                      '<blockquote cite="{}">q</blockquote>'])  # fmt: skip
def test_disguised_schemes_are_dropped(prefix: str, target: str, template: str) -> None:
    html = sanitize_html(template.format(prefix + target)).html
    assert bad_urls(html) == [], html
    assert "data:" not in html.lower().replace("&#58;", ":")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('<a href="  https://ok.example/a">x</a>',
         '<a href="  https://ok.example/a" rel="noopener noreferrer nofollow">x</a>'),
        ('<a href="mailto:ivan@example.ru">m</a>',
         '<a href="mailto:ivan@example.ru" rel="noopener noreferrer nofollow">m</a>'),
        ('<a href="tel:+79165551234">t</a>',
         '<a href="tel:+79165551234" rel="noopener noreferrer nofollow">t</a>'),
        ('<img src="cid:logo@x">', '<img src="cid:logo@x">'),
        ('<img src="CID:logo@x">', '<img src="CID:logo@x">'),
        ('<img src="data:image/png;base64,iVBORw0KGgo=">', "<img>"),
        ('<a href="ftp://files.example/x">f</a>', '<a rel="noopener noreferrer nofollow">f</a>'),
    ],
)  # fmt: skip
def test_allowed_schemes_are_kept(source: str, expected: str) -> None:
    assert sanitize_html(source).html == expected


def test_remote_and_data_images_are_counted_as_blocked() -> None:
    out = sanitize_html('<img src="https://t.example/p.gif"><img src="http://x/y.png">')
    assert (out.html, out.remote_images_blocked) == ("<img><img>", 2)


_FILLER = st.sampled_from([" ", "\t", "\n", "\r", "\x0c", "&#32;", "&#9;", "&#10;", "&Tab;",
                           "&NewLine;", "\x00", "&#0;", "\u00a0", "&nbsp;"])  # fmt: skip
_SCHEME_TEXT = st.sampled_from(["data", "javascript", "vbscript", "file", "blob", "filesystem"])


@settings(max_examples=300, deadline=None)
@given(
    prefix=st.lists(_FILLER, max_size=40).map("".join),
    scheme=_SCHEME_TEXT,
    case=st.lists(st.booleans(), min_size=10, max_size=10),
    inner=st.lists(st.sampled_from(["", "\t", "\n", "&#9;", "&#10;"]), min_size=10, max_size=10),
    colon=st.sampled_from([":", "&#58;", "&colon;", "&#x3a;"]),
    attr=st.sampled_from(["a href", "img src", "area href", "q cite", "del cite"]),
)
def test_no_disguise_lets_a_scheme_through(
    prefix: str, scheme: str, case: list[bool], inner: list[str], colon: str, attr: str
) -> None:
    letters = "".join(
        (ch.upper() if up else ch) + sep for ch, up, sep in zip(scheme, case, inner, strict=False)
    )
    tag, name = attr.split()
    source = f'<{tag} {name}="{prefix}{letters}{colon}alert(1)">x</{tag}>'
    html = sanitize_html(source).html
    assert bad_urls(html) == [], (source, html)


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("target", SCHEMES)
def test_outbound_reply_html_drops_disguised_schemes(prefix: str, target: str) -> None:
    html = sanitize_outbound_html(
        f'<p><a href="{prefix}{target}">x</a><img src="{prefix}{target}">'
        f'<q cite="{prefix}{target}">q</q></p>'
    )
    assert [u for u in urls_of(html) if u[2]] == [], html


def test_outbound_reply_html_keeps_ordinary_links() -> None:
    html = sanitize_outbound_html(
        '<a href="https://ok.example/">x</a><a href="mailto:a@b.ru">m</a>'
    )
    assert [u[2] for u in urls_of(html)] == ["https://ok.example/", "mailto:a@b.ru"]
