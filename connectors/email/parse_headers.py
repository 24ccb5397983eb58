"""Header decoding that survives real-world mail (pure, no I/O).

The stdlib ``email.policy.default`` parses the MIME structure; header *values* are
decoded here from the raw stored text, because real mail carries raw 8-bit bytes
(UTF-8, windows-1251, latin-1), encoded words split inside a multibyte character,
encoded words inside quotes, unknown charsets and unpadded base64, and the policy
either replaces such bytes with U+FFFD or raises on some of them.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
from datetime import UTC, datetime
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime
from functools import lru_cache
from typing import Any

from crm_core.identity import IdentityError, normalize_email

_cached_normalize_email = lru_cache(maxsize=8192)(normalize_email)

__all__ = [
    "SUBJECT_TOKEN_KINDS",
    "decode_bytes",
    "decode_header_text",
    "format_subject_token",
    "header_addresses",
    "header_date",
    "header_text",
    "message_ids",
    "normalize_message_id",
    "normalize_subject",
    "parse_subject_token",
    "raw_header",
]

_CHARSET_ALIASES = {
    "utf8": "utf-8",
    "win-1251": "cp1251",
    "windows-1251": "cp1251",
    "cp-1251": "cp1251",
    "x-cp1251": "cp1251",
    "koi8r": "koi8-r",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "ks_c_5601-1987": "cp949",
    "iso-8859-8-i": "iso-8859-8",
    "latin1": "latin-1",
    "ansi_x3.4-1968": "ascii",
    "us-ascii": "ascii",
}
_HIGH_RUN = re.compile(rb"[\xc0-\xff]{3,}")
_CTRL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SURROGATES = re.compile(r"[\udc80-\udcff]")
_ENCODED_WORD = re.compile(r"=\?([^?\s\"]+)\?([bBqQ])\?([^?\s]*)\?=")
_Q_HEX = re.compile(rb"=([0-9A-Fa-f]{2})")


def _codec(charset: str | None) -> str | None:
    """A Python codec name for a MIME charset, or ``None`` when unknown."""
    if not charset:
        return None
    name = charset.strip().strip("\"'").lower().split("*", 1)[0]
    name = _CHARSET_ALIASES.get(name, name)
    try:
        return codecs.lookup(name).name
    except (LookupError, ValueError):
        return None


def _guess_8bit(data: bytes) -> str:
    """Decode bytes of unknown charset: UTF-8, else windows-1251 for Cyrillic-looking
    runs of high bytes, else windows-1252 (latin-1 superset)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    high = sum(1 for b in data if b >= 0x80)
    as_utf8 = data.decode("utf-8", errors="replace")
    bad = as_utf8.count("\ufffd")
    if high >= 4 and bad * 8 <= high:  # mostly valid UTF-8 (truncated char, one bad byte)
        return as_utf8
    if _HIGH_RUN.search(data):
        return data.decode("cp1251", errors="replace")
    return data.decode("cp1252", errors="replace")


def decode_bytes(data: bytes, charset: str | None = None) -> str:
    """Bytes to text with the declared charset, falling back to a guess; never raises."""
    codec = _codec(charset)
    if codec is None or codec == "ascii":
        return _guess_8bit(data)
    try:
        return data.decode(codec)
    except UnicodeDecodeError:
        if codec == "utf-8":
            return _guess_8bit(data)
        return data.decode(codec, errors="replace")
    except (LookupError, ValueError):  # pragma: no cover - codec found but unusable
        return _guess_8bit(data)


def _undo_surrogates(value: str) -> str:
    """Header text from a BytesParser keeps raw 8-bit bytes as surrogate escapes."""
    if not _SURROGATES.search(value):
        return value
    return _guess_8bit(value.encode("utf-8", errors="surrogateescape"))


def _word_bytes(encoding: str, text: str) -> bytes | None:
    if encoding in "bB":
        data = text.encode("ascii", errors="ignore")
        data += b"=" * (-len(data) % 4)
        try:
            return base64.b64decode(data)
        except (binascii.Error, ValueError):
            return None
    raw = text.replace("_", " ").encode("utf-8", errors="replace")
    return _Q_HEX.sub(lambda m: bytes([int(m.group(1), 16)]), raw)


def decode_header_text(value: str) -> str:
    """Decode RFC 2047 words leniently.

    Whitespace between adjacent encoded words is dropped; adjacent words in the same
    charset are joined as bytes before decoding (a character split across words);
    unknown charsets are guessed; unpadded base64 is tolerated; a word that is not
    terminated is left as it is.  Control characters are removed.
    """
    value = _undo_surrogates(value)
    if "=?" not in value:
        return _CTRL.sub("", value)
    out: list[str] = []
    pending: list[Any] = []  # [charset, bytearray] of the encoded run being built
    pos = 0
    for m in _ENCODED_WORD.finditer(value):
        between = value[pos : m.start()]
        data = _word_bytes(m.group(2), m.group(3))
        if data is None:
            continue  # left in place: the next literal slice includes it
        if between.strip() or not pending:
            if pending:
                out.append(decode_bytes(bytes(pending[1]), pending[0]))
                pending = []
            out.append(between)
        charset = m.group(1).split("*", 1)[0]
        if pending and _codec(pending[0]) == _codec(charset):
            pending[1].extend(data)
        else:
            if pending:
                out.append(decode_bytes(bytes(pending[1]), pending[0]))
            pending = [charset, bytearray(data)]
        pos = m.end()
    if pending:
        out.append(decode_bytes(bytes(pending[1]), pending[0]))
    out.append(value[pos:])
    return _CTRL.sub("", "".join(out))


def raw_header(msg: Message, name: str) -> str | None:
    """The first raw (undecoded, unfolded) value of a header, or ``None``."""
    lname = name.lower()
    for key, value in msg.raw_items():
        if key.lower() == lname:
            return re.sub(r"\r?\n[ \t]*", " ", str(value)).strip()
    return None


def header_text(msg: Message, name: str) -> str | None:
    """A decoded single-line header value (``None`` when the header is absent)."""
    raw = raw_header(msg, name)
    if raw is None:
        return None
    return " ".join(decode_header_text(raw).split())


def _split_addresses(value: str) -> list[str]:
    """Split an address list at top-level commas (not inside quotes, <>, comments)."""
    pieces: list[str] = []
    buf: list[str] = []
    quoted = escaped = False
    angle = paren = 0
    for ch in value:
        if escaped:
            escaped = False
        elif ch == "\\" and (quoted or paren):
            escaped = True
        elif ch == '"' and not paren:
            quoted = not quoted
        elif not quoted:
            if ch == "(":
                paren += 1
            elif ch == ")" and paren:
                paren -= 1
            elif ch == "<" and not paren:
                angle += 1
            elif ch == ">" and angle and not paren:
                angle -= 1
            elif ch in ",;" and not angle and not paren:
                pieces.append("".join(buf))
                buf = []
                continue
        buf.append(ch)
    pieces.append("".join(buf))
    out = []
    for piece in pieces:
        piece = _GROUP_PREFIX.sub("", piece.strip())
        if piece:
            out.append(piece)
    return out


_GROUP_PREFIX = re.compile(r'^[^"<>@,:()]*:\s*(?=\S)|^[^"<>@,:()]*:\s*$')


def header_addresses(msg: Message, name: str) -> tuple[list[tuple[str, str]], list[str]]:
    """``([(display_name, normalized_address)], [malformed pieces])`` of an address header.

    Display names are decoded after splitting, so a decoded comma or angle bracket
    never splits an address.  Duplicates are dropped.
    """
    good: list[tuple[str, str]] = []
    bad: list[str] = []
    seen: set[str] = set()
    lname = name.lower()
    values = [
        re.sub(r"\r?\n[ \t]*", " ", _undo_surrogates(str(v)))
        for k, v in msg.raw_items()
        if k.lower() == lname
    ]
    for value in values:
        for piece in _split_addresses(value):
            try:
                pairs = getaddresses([piece])
            except Exception:  # malformed beyond the parser: fall back to bare addresses
                pairs = [("", a) for a in re.findall(r"[^\s<>,;\"']+@[^\s<>,;\"']+", piece)]
            found = False
            for disp, addr in pairs:
                try:
                    norm = _cached_normalize_email(addr) if addr else ""
                except IdentityError:
                    norm = ""
                if not norm:
                    continue
                found = True
                if norm not in seen:
                    seen.add(norm)
                    good.append((" ".join(decode_header_text(disp).split()), norm))
            if not found and piece.strip("<> "):
                bad.append(" ".join(decode_header_text(piece).split())[:200])
    return good, bad


def normalize_message_id(value: str | None) -> str | None:
    """``<Local@Example.COM>`` -> ``Local@example.com``; ``None`` for an unusable id."""
    if not value:
        return None
    value = _undo_surrogates(value).strip()
    m = re.search(r"<([^<>]*)>", value)
    ident = (m.group(1) if m else value).strip().strip("<>").strip()
    if not ident or len(ident) > 900 or any(ch.isspace() for ch in ident):
        return None
    local, sep, domain = ident.rpartition("@")
    if sep and local:
        return f"{local}@{domain.lower()}"
    return ident


def message_ids(value: str | None) -> list[str]:
    """Every Message-ID in an In-Reply-To / References value, in order, deduplicated."""
    if not value:
        return []
    value = _undo_surrogates(value)
    found = re.findall(r"<([^<>]+)>", value)
    if not found:
        found = [t for t in re.split(r"[\s,]+", value) if "@" in t]
    out: list[str] = []
    for ident in found:
        norm = normalize_message_id(f"<{ident}>")
        if norm and norm not in out:
            out.append(norm)
    return out


def header_date(msg: Message) -> datetime | None:
    """The Date header as an aware UTC datetime, or ``None`` when missing/invalid."""
    raw = raw_header(msg, "Date")
    if not raw:
        return None
    try:
        dt = parsedate_to_datetime(_undo_surrogates(raw))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if dt is None or not 1970 <= dt.year <= 2200:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    try:
        return dt.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


SUBJECT_TOKEN_KINDS = {"D": "deal", "L": "lead", "C": "client", "T": "task"}
_TOKEN_RE = re.compile(r"\[#\s*([DLCT])-(\d{1,12})\s*\]", re.IGNORECASE)
_PREFIX_RE = re.compile(
    r"^\s*(?:(?:re|fwd?|aw|wg|sv|vs|ответ|отв|пересл|переслать|rif|tr)\s*(?:\[\d+\]|\(\d+\))?\s*[:：]\s*)+",
    re.IGNORECASE,
)


def parse_subject_token(subject: str | None) -> dict[str, Any] | None:
    """``"Re: Счёт [#D-123]"`` -> ``{"kind": "deal", "id": 123}`` (the last token wins)."""
    if not subject:
        return None
    found = _TOKEN_RE.findall(subject)
    if not found:
        return None
    letter, num = found[-1]
    return {"kind": SUBJECT_TOKEN_KINDS[letter.upper()], "id": int(num)}


def format_subject_token(kind: str, ident: int) -> str:
    """The token our outbound mail puts in the subject: ``[#D-123]``."""
    letters = {v: k for k, v in SUBJECT_TOKEN_KINDS.items()}
    return f"[#{letters[kind]}-{int(ident)}]"


def normalize_subject(subject: str | None) -> str:
    """Subject without reply/forward prefixes and tokens, for heuristic threading."""
    if not subject:
        return ""
    s = _TOKEN_RE.sub(" ", subject)
    s = _PREFIX_RE.sub("", s)
    return " ".join(s.split()).casefold()
