"""HTML of inbound mail: sanitized with nh3, and turned into plain text (pure).

Policy: no scripts, styles, forms, frames, objects, event handlers or ``style``
attributes beyond a few harmless properties. Every URL attribute (``href``, ``src``)
keeps only the schemes of :data:`LINK_SCHEMES`, checked by nh3 (ammonia)
on the URL as a browser parses it, so leading spaces, tabs, newlines and character
references cannot disguise a ``data:`` or ``javascript:`` URL. Images keep only
``cid:`` (inline parts); remote images are dropped (they are tracking pixels and leak
that the mail was read) and counted so the UI can say "remote images blocked";
``data:`` images are dropped too.
"""

from __future__ import annotations

import html as _html
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import nh3

__all__ = ["LINK_SCHEMES", "SanitizedHtml", "html_to_text", "sanitize_html"]

_TAGS = set(nh3.ALLOWED_TAGS) | {"font", "center", "tfoot"}
# ``cite`` holds a URL that nh3 does not scheme-check (and browsers never show): dropped.
_ATTRIBUTES: dict[str, set[str]] = {k: set(v) - {"cite"} for k, v in nh3.ALLOWED_ATTRIBUTES.items()}
_ATTRIBUTES.setdefault("*", set()).update({"style", "align", "title", "dir", "lang"})
_ATTRIBUTES["font"] = {"color", "face", "size"}
for _t in ("table", "td", "th", "tr", "tbody"):
    _ATTRIBUTES.setdefault(_t, set()).update({"bgcolor", "width", "height", "valign"})
_ATTRIBUTES["table"].update({"border", "cellpadding", "cellspacing"})
_STYLE_PROPS = {
    "color",
    "background-color",
    "font-weight",
    "font-style",
    "font-size",
    "font-family",
    "text-align",
    "text-decoration",
    "vertical-align",
}
LINK_SCHEMES = frozenset({"http", "https", "mailto", "tel", "cid"})
_DANGEROUS_WORDS = ("expression", "javascript", "vbscript", "url", "@import", "behavio", "\\")


def _dangerous_style(value: str) -> bool:
    low = value.lower()
    return any(word in low for word in _DANGEROUS_WORDS)


class _Counter:
    __slots__ = ("blocked",)

    def __init__(self) -> None:
        self.blocked = 0


def _make_filter(counter: _Counter) -> Callable[[str, str, str], str | None]:
    # nh3 has already dropped every URL whose scheme is not in LINK_SCHEMES.
    def attribute_filter(tag: str, attr: str, value: str) -> str | None:
        if attr == "src":
            if tag == "img" and urlsplit(value).scheme.lower() == "cid":
                return value
            counter.blocked += 1  # an allowed scheme, but remote: http(s), mailto...
            return None
        if attr == "style" and _dangerous_style(value):
            return None
        return value

    return attribute_filter


@dataclass(frozen=True, slots=True)
class SanitizedHtml:
    html: str
    remote_images_blocked: int


def sanitize_html(source: str) -> SanitizedHtml:
    """Sanitize an HTML document or fragment; never raises."""
    counter = _Counter()
    cleaner = nh3.Cleaner(
        tags=_TAGS,
        clean_content_tags={"script", "style", "title", "noscript", "template", "textarea"},
        attributes=_ATTRIBUTES,
        attribute_filter=_make_filter(counter),
        url_schemes=set(LINK_SCHEMES),
        filter_style_properties=_STYLE_PROPS,
        url_relative="deny",
        link_rel="noopener noreferrer nofollow",
    )
    try:
        out = cleaner.clean(source)
    except Exception:  # defensive: nh3 should not raise on str input
        out = _html.escape(source)
    return SanitizedHtml(out.strip(), counter.blocked)


_BLOCK_RE = re.compile(
    r"<\s*(?:br|/p|p|/div|div|/h[1-6]|h[1-6]|li|/li|/tr|tr|/table|hr|/blockquote|blockquote|"
    r"/ul|/ol|/pre|pre|/title)\b[^>]*>",
    re.IGNORECASE,
)
_TEXT_CLEANER = nh3.Cleaner(
    tags=set(),
    clean_content_tags={"script", "style", "head", "title", "noscript", "template"},
    attributes={},
)
_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")
_BLANKS = re.compile(r"\n\s*\n\s*\n+")


def html_to_text(source: str) -> str:
    """Plain text of HTML for search and previews (block elements become lines)."""
    if not source:
        return ""
    marked = _BLOCK_RE.sub(lambda m: m.group(0) + "\ue000", source)
    try:
        stripped = _TEXT_CLEANER.clean(marked)
    except Exception:
        stripped = re.sub(r"<[^>]*>", " ", marked)
    # Newlines inside HTML source are just spaces; block ends become lines.
    stripped = stripped.replace("\r", " ").replace("\n", " ").replace("\ue000", "\n")
    text = _html.unescape(stripped)
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip()
