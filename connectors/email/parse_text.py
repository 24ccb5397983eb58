"""Plain-text helpers: the new part of a reply, its preview, signature phones (pure)."""

from __future__ import annotations

import re

from crm_core.identity import extract_phones

__all__ = ["new_part", "preview", "signature_phones"]

PREVIEW_CHARS = 300
SIGNATURE_LINES = 15
_HISTORY_LINE = re.compile(
    r"^\s*(?:"
    r"-{2,}\s*(?:original message|forwarded message|исходное сообщение|пересылаемое сообщение"
    r"|перенаправленное сообщение)\s*-{2,}"
    r"|_{10,}"
    r"|on\b.{0,300}\bwrote:"
    r"|am\b.{0,300}\bschrieb\b.{0,80}:"
    r"|.{0,300}\b(?:пишет|написал|написала|писал|писала)\s*:"
    r")\s*$",
    re.IGNORECASE,
)
_OUTLOOK_FROM = re.compile(r"^\s*\*?(?:from|от|von|de)\s*:\*?\s+\S", re.IGNORECASE)
_OUTLOOK_NEXT = re.compile(
    r"^\s*\*?(?:sent|date|to|subject|отправлено|дата|кому|тема)\s*:", re.IGNORECASE
)
# Company registration numbers look like phone numbers to a matcher.
_REQUISITES = re.compile(
    r"(?:ИНН|КПП|ОГРНИП|ОГРН|БИК|ОКПО|р/с|к/с|р/сч|к/сч|сч\.|счёт|счет|IBAN|SWIFT|INN)"
    r"[\s:№#.]*[\d\s/]{5,}",
    re.IGNORECASE,
)


_PHONE_LIKE = re.compile(r"\d(?:[\s\-().\u00a0/]{0,3}\d){6,}")


def _history_start(lines: list[str]) -> int | None:
    """Index of the first line of quoted history, or ``None``."""
    for i, line in enumerate(lines):
        if line.lstrip().startswith(">"):
            return i
        if _HISTORY_LINE.match(line):
            return i
        if i + 1 < len(lines) and re.match(r"^\s*on\b", line, re.I):
            joined = line + " " + lines[i + 1]
            if len(joined) < 400 and re.search(r"\bwrote:\s*$", joined, re.I):
                return i
        if i and _OUTLOOK_FROM.match(line):
            if any(_OUTLOOK_NEXT.match(n) for n in lines[i + 1 : i + 4]):
                return i
    return None


def new_part(text: str) -> str:
    """The text above the quoted history (the whole text when nothing is quoted)."""
    lines = text.splitlines()
    cut = _history_start(lines)
    if cut is None:
        return text.strip()
    head = "\n".join(lines[:cut]).strip()
    return head or text.strip()


def preview(text: str, limit: int = PREVIEW_CHARS) -> str:
    flat = " ".join(new_part(text).split())
    if len(flat) <= limit:
        return flat
    return flat[: limit - 1].rstrip() + "…"


def signature_phones(text: str, region: str = "RU") -> list[str]:
    """E.164 phones in the last lines of the author's own text (quotes excluded)."""
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith(">")]
    cut = _history_start(lines)
    if cut is not None:
        lines = lines[:cut]
    tail = [ln[:300] for ln in lines if ln.strip()][-SIGNATURE_LINES:]
    # Only lines with a phone-like run of digits go to the (slow) matcher.
    candidates = [ln for ln in (_REQUISITES.sub(" ", t) for t in tail) if _PHONE_LIKE.search(ln)]
    if not candidates:
        return []
    chunk = "\n".join(candidates)
    try:
        found = extract_phones(chunk, region)
    except Exception:  # phonenumbers on odd input: a missing phone is not an error
        return []
    return [p.e164 for p in found]
