"""Website form submission -> :class:`InboundEvent` (PURE: no I/O, no clock).

Field names are mapped to canonical fields through the built-in aliases
(:mod:`connectors.webforms.aliases`) and the form's own aliases; UTM tags come from
``utm_*`` fields, Tilda's ``COOKIES``/``TILDAUTM`` and the ``page_url`` query string.
Everything else the visitor typed is kept in ``meta["fields"]``; the untouched input
is the event's ``raw``.

Meta keys: ``form_key``, ``platform`` (tilda, elementor, cf7, google_forms, generic),
``content_type``, ``utm`` (dict, possibly empty), ``page_url``, ``referrer``, ``form_id``,
``form_name``, ``company``, ``inn``, ``fields``, ``files``, ``invalid`` ({"phone"|"email":
reason}), ``phone_extensions`` ({e164: ext}), ``remote_ip``, ``idempotency`` (where the
``external_id`` comes from: key, tranid, response_id, hash), ``spam`` (the honeypot field).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from connectors.webforms.aliases import IDEMPOTENCY_FIELDS, UTM_KEYS, VOLATILE_FIELDS, canonical_of
from connectors.webforms.config import DEFAULT_HONEYPOT_FIELDS, FormSpec, squash_key
from crm_core.events import Channel, Classification, EventKind, InboundEvent, NormalizeError
from crm_core.identity import IdentityError, extract_phones, normalize_email, normalize_phone

__all__ = ["is_tilda_handshake", "normalize_form"]

MAX_NAME = 200
MAX_KEY = 200
_DROP = frozenset({"formtoken", "token", "csrf", "csrftoken", "nonce", "credit", "charset"})
_ELEMENTOR_RE = re.compile(r"^(fields|meta|form)\[([^\]]+)\](?:\[([^\]]+)\])?$")
_CF7_RE = re.compile(
    r"^(?:your-(?:name|email|subject|message)"
    r"|(?:tel|email|textarea|text|checkbox|acceptance|menu|radio)-\d+)$"
)
_EMAIL_SPLIT_RE = re.compile(r"[,;\s]+")
_SPACES_RE = re.compile(r"\s+")


@dataclass(slots=True)
class _Entry:
    key: str  # the field name as the visitor's form sent it (Elementor: the field id)
    value: str | list[str]
    label: str | None = None  # Elementor advanced data: the field's title


def _text(value: str | list[str]) -> str:
    if isinstance(value, list):
        return ", ".join(v.strip() for v in value if v.strip())
    return value.strip()


def _values(value: str | list[str]) -> list[str]:
    items = value if isinstance(value, list) else [value]
    return [v.strip() for v in items if v.strip()]


def _coerce(fields: Mapping[str, Any]) -> dict[str, str | list[str]]:
    if not isinstance(fields, Mapping):
        raise NormalizeError(f"form fields must be a mapping, got {type(fields).__name__}", "body")
    out: dict[str, str | list[str]] = {}
    for k, v in fields.items():
        if isinstance(v, list | tuple):
            out[str(k)] = ["" if i is None else str(i) for i in v]
        else:
            out[str(k)] = "" if v is None else str(v)
    return out


def is_tilda_handshake(fields: Mapping[str, Any]) -> bool:
    """Tilda checks a webhook URL by posting ``test=test`` and expecting 200."""
    return len(fields) == 1 and fields.get("test") == "test"


def _entries(fields: Mapping[str, str | list[str]]) -> tuple[list[_Entry], bool]:
    """Flatten Elementor's advanced data (``fields[id][value]``/``[title]``); else 1:1."""
    advanced: dict[str, dict[str, str | list[str]]] = {}
    entries: list[_Entry] = []
    for key, value in fields.items():
        m = _ELEMENTOR_RE.match(key)
        if m is None:
            entries.append(_Entry(key, value))
            continue
        group, ident, attr = m.group(1), m.group(2), m.group(3)
        if group == "form" and attr is None:
            entries.append(_Entry("form_id" if ident == "id" else f"form_{ident}", value))
        elif attr is None:
            entries.append(_Entry(key, value))
        else:
            advanced.setdefault(f"{group}:{ident}", {})[attr] = value
    for gid, attrs in advanced.items():
        group, ident = gid.split(":", 1)
        if "value" not in attrs:
            continue
        title = attrs.get("title") if group == "fields" else None
        label = _text(title) if title is not None else None
        # fields[name][value] -> name (titled), meta[page_url][value] -> page_url
        entries.append(_Entry(ident, attrs["value"], label or None))
    return entries, bool(advanced)


def _platform(fields: Mapping[str, Any], advanced: bool) -> str:
    keys = {k.lower() for k in fields}
    if "tranid" in keys or "TILDAUTM" in str(fields.get("COOKIES", "")):
        return "tilda"
    if advanced or {"form_id", "form_name"} <= keys:
        return "elementor"
    if fields.get("source") == "google_forms" or "response_id" in keys:
        return "google_forms"
    if any(_CF7_RE.match(k) for k in keys):
        return "cf7"
    return "generic"


def _tilda_utm(cookies: str) -> dict[str, str]:
    """``COOKIES`` -> UTM from ``TILDAUTM=utm_source%3Dx%7C%7C%7Cutm_medium%3Dy...``."""
    out: dict[str, str] = {}
    for part in cookies.split(";"):
        name, sep, value = part.strip().partition("=")
        if not sep or name.strip() != "TILDAUTM":
            continue
        for item in unquote(value).split("|||"):
            k, sep2, v = item.partition("=")
            k = k.strip().lower()
            if sep2 and k in UTM_KEYS and v.strip():
                out[k] = v.strip()
    return out


def _url_utm(url: str) -> dict[str, str]:
    try:
        query = urlsplit(url).query
    except ValueError:
        return {}
    return {
        k.lower(): v.strip()
        for k, v in parse_qsl(query, keep_blank_values=False)
        if k.lower() in UTM_KEYS and v.strip()
    }


def _hash_id(form_key: str, entries: Sequence[_Entry], received_at: datetime) -> str:
    minute = received_at.astimezone(UTC).replace(second=0, microsecond=0).isoformat()
    stable = sorted(
        (e.key, e.value if isinstance(e.value, str) else "\x1f".join(e.value))
        for e in entries
        if squash_key(e.key) not in VOLATILE_FIELDS
    )
    blob = json.dumps([form_key, stable, minute], ensure_ascii=False, separators=(",", ":"))
    return f"{form_key}:{hashlib.sha256(blob.encode()).hexdigest()[:32]}"


def _scoped_key(form_key: str, key: str) -> str:
    key = key.strip()
    if len(key) > MAX_KEY:
        key = hashlib.sha256(key.encode()).hexdigest()
    return f"{form_key}:{key}"


def normalize_form(
    fields: Mapping[str, str | list[str]],
    *,
    form: FormSpec | None = None,
    content_type: str = "urlencoded",
    received_at: datetime,
    region: str = "RU",
    idempotency_key: str | None = None,
    remote_ip: str | None = None,
    files: Sequence[str] = (),
) -> InboundEvent:
    """One submission -> a ``webform``/``form_submitted`` event (see the module doc).

    ``external_id``: ``idempotency_key`` (scoped ``form_key:key``), else the sender's
    id (Tilda ``tranid``, Google ``response_id``), else a hash of the form key, the
    fields and the minute received (a double click within the minute is one lead).
    A filled honeypot -> ``classification=spam``; no usable phone or email ->
    ``needs_review``.  Raises :class:`NormalizeError` only for input that is not a form.
    """
    data = _coerce(fields)
    form_key = form.key if form else "unknown"
    base_meta: dict[str, Any] = {"form_key": form_key, "content_type": content_type}
    if remote_ip:
        base_meta["remote_ip"] = remote_ip
    if is_tilda_handshake(data):
        return InboundEvent(
            channel=Channel.WEBFORM,
            kind=EventKind.IGNORED,
            external_id=f"{form_key}:tilda-test",
            occurred_at=received_at,
            meta={**base_meta, "platform": "tilda", "handshake": True},
            raw=dict(data),
            source=form_key,
        )
    entries, advanced = _entries(data)
    entries = [e for e in entries if _values(e.value)]  # blank fields carry nothing
    if not entries:
        raise NormalizeError("form submission has no filled fields", "body")

    honeypots = {squash_key(h) for h in (form.honeypot_fields if form else DEFAULT_HONEYPOT_FIELDS)}
    extra = dict(form.aliases) if form else {}
    meta: dict[str, Any] = {**base_meta, "platform": _platform(data, advanced)}
    spam_field: str | None = None
    sender_id: tuple[str, str] | None = None
    found: dict[str, list[_Entry]] = {}
    leftover: dict[str, str | list[str]] = {}
    cookies = ""
    for e in entries:
        sq = squash_key(e.key)
        if sq in honeypots:
            spam_field = spam_field or e.key
            continue
        if sq in IDEMPOTENCY_FIELDS or squash_key(e.key.rsplit(".", 1)[-1]) in IDEMPOTENCY_FIELDS:
            sender_id = sender_id or (e.key.rsplit(".", 1)[-1], _text(e.value))
            continue
        if sq == "cookies":
            cookies = _text(e.value)
            continue
        if sq in _DROP:
            continue
        canonical = canonical_of(e.key, extra)
        if canonical is None and e.label:
            canonical = canonical_of(e.label, extra)
        if canonical is None:
            label = e.label or e.key
            leftover[label if label not in leftover else e.key] = e.value
            continue
        found.setdefault(canonical, []).append(e)

    def first(canonical: str) -> str | None:
        for e in found.get(canonical, []):
            return _text(e.value)[:2000]
        return None

    invalid: dict[str, str] = {}
    identities: list[str] = []
    extensions: dict[str, str] = {}
    for e in found.get("phone", []):
        for value in _values(e.value):
            phones = extract_phones(value, region)
            if not phones:
                try:
                    phones = [normalize_phone(value, region)]
                except IdentityError as exc:
                    invalid.setdefault("phone", str(exc))
                    continue
            for p in phones:
                identities.append(p.identity)
                if p.extension:
                    extensions[p.e164] = p.extension
    for e in found.get("email", []):
        for value in _values(e.value):
            for address in _EMAIL_SPLIT_RE.split(value):
                if not address:
                    continue
                try:
                    identities.append("email:" + normalize_email(address))
                except IdentityError as exc:
                    invalid.setdefault("email", str(exc))

    name = first("name")
    if not name:
        parts = [first(p) for p in ("first_name", "middle_name", "last_name")]
        name = " ".join(p for p in parts if p) or None
    if name:
        name = _SPACES_RE.sub(" ", name).strip()[:MAX_NAME] or None
    comments = [_text(e.value) for e in found.get("comment", [])]
    text = "\n\n".join(c for c in comments if c) or None

    utm: dict[str, str] = {}
    page_url = first("page_url")
    for source in (_url_utm(page_url) if page_url else {}, _tilda_utm(cookies)):
        utm.update(source)
    for key in UTM_KEYS:
        tag = first(key)
        if tag:
            utm[key] = tag
    meta["utm"] = {k: utm[k] for k in UTM_KEYS if k in utm}
    for key in ("page_url", "referrer", "form_id", "form_name", "company", "inn"):
        mapped = first(key)
        if mapped:
            meta[key] = mapped
    if leftover:
        meta["fields"] = leftover
    if files:
        meta["files"] = list(files)
    if invalid:
        meta["invalid"] = invalid
    if extensions:
        meta["phone_extensions"] = extensions

    external_id: str
    if idempotency_key and idempotency_key.strip():
        external_id, meta["idempotency"] = _scoped_key(form_key, idempotency_key), "key"
    elif sender_id and sender_id[1]:
        external_id, meta["idempotency"] = sender_id[1][:MAX_KEY], squash_key(sender_id[0])
    else:
        external_id, meta["idempotency"] = _hash_id(form_key, entries, received_at), "hash"

    classification = Classification.REGULAR
    if spam_field is not None:
        classification = Classification.SPAM
        meta["spam"] = {"honeypot": spam_field}
    elif not identities:
        classification = Classification.NEEDS_REVIEW

    subject = first("subject") or (form.name if form and form.name else None) or first("form_name")
    return InboundEvent(
        channel=Channel.WEBFORM,
        kind=EventKind.FORM_SUBMITTED,
        external_id=external_id,
        occurred_at=received_at,
        identities=tuple(identities),
        display_name=name,
        subject=subject,
        text=text,
        meta=meta,
        raw=dict(data),
        classification=classification,
        source=form_key,
    )
