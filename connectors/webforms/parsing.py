"""Request bodies of website forms -> flat ``{field: str | [str, ...]}`` dicts (pure).

Shared by the webhook handler and ``crmhub ingest form FILE --dry-run``.

* ``application/x-www-form-urlencoded``: repeated keys become lists; a trailing ``[]``
  (``services[]=a&services[]=b``) is dropped from the key.
* ``multipart/form-data``: text parts become fields; file parts are not kept, their
  names are returned in :attr:`ParsedBody.files`.  A missing boundary parameter is
  detected from the body's first line (stored bodies).
* ``application/json``: one object; nested objects are flattened with dotted keys
  (``answers.Телефон``), lists of scalars stay lists, scalars become text.
"""

from __future__ import annotations

import email.message
import email.parser
import email.policy
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from crm_core.events import NormalizeError

__all__ = [
    "CONTENT_TYPES",
    "FieldValue",
    "Fields",
    "ParsedBody",
    "flatten_json",
    "mime_type_for",
    "parse_body",
    "parse_body_full",
]

FieldValue = str | list[str]
Fields = dict[str, FieldValue]

# Short names accepted by the CLI (``--content-type``) -> MIME type.
CONTENT_TYPES: dict[str, str] = {
    "urlencoded": "application/x-www-form-urlencoded",
    "multipart": "multipart/form-data",
    "json": "application/json",
}

MAX_FIELDS = 1000
MAX_JSON_DEPTH = 8


@dataclass(slots=True)
class ParsedBody:
    fields: Fields
    files: list[str] = field(default_factory=list)  # "field: filename" of ignored file parts
    kind: str = "urlencoded"  # urlencoded | multipart | json


def mime_type_for(name: str) -> str:
    """``urlencoded``/``multipart``/``json`` or a MIME type -> a Content-Type header."""
    return CONTENT_TYPES.get(name.strip().lower(), name)


def _add(fields: Fields, key: str, value: str) -> None:
    if key.endswith("[]"):
        key = key[:-2]
    if len(fields) >= MAX_FIELDS and key not in fields:
        raise NormalizeError(f"too many fields (more than {MAX_FIELDS})", "body")
    old = fields.get(key)
    if old is None:
        fields[key] = value
    elif isinstance(old, list):
        old.append(value)
    else:
        fields[key] = [old, value]


def _params(header: str) -> tuple[str, dict[str, str]]:
    mime, _, rest = header.partition(";")
    params: dict[str, str] = {}
    for part in rest.split(";"):
        k, sep, v = part.partition("=")
        if sep:
            params[k.strip().lower()] = v.strip().strip('"')
    return mime.strip().lower(), params


def _decode(body: bytes, charset: str) -> str:
    try:
        return body.decode(charset)
    except LookupError:
        raise NormalizeError(f"unknown charset {charset!r}", "Content-Type") from None
    except UnicodeDecodeError as exc:
        raise NormalizeError(f"body is not valid {charset} (byte {exc.start})", "body") from None


def _parse_urlencoded(body: bytes, charset: str) -> Fields:
    text = _decode(body, charset).strip().lstrip("\ufeff")
    try:
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            encoding=charset,
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except UnicodeDecodeError as exc:
        raise NormalizeError(f"a %-escape is not valid {charset}: {exc.reason}", "body") from None
    except ValueError as exc:
        raise NormalizeError(f"urlencoded body is malformed: {exc}", "body") from None
    fields: Fields = {}
    for key, value in pairs:
        if key:
            _add(fields, key, value)
    return fields


_BOUNDARY_RE = re.compile(rb"^\s*--([^\r\n]{1,200}?)\s*\r?\n")


def _parse_multipart(body: bytes, params: dict[str, str]) -> ParsedBody:
    boundary = params.get("boundary")
    if not boundary:
        m = _BOUNDARY_RE.match(body)
        if not m:
            raise NormalizeError("multipart body without a boundary", "Content-Type")
        boundary = m.group(1).decode("latin-1")
    if b"\r\n" not in body and b"\n" in body:
        body = body.replace(b"\n", b"\r\n")  # a stored body saved with Unix line ends
    head = f'Content-Type: multipart/form-data; boundary="{boundary}"\r\n\r\n'.encode()
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not msg.is_multipart():
        raise NormalizeError("multipart body has no parts", "body")
    parts = msg.get_payload()
    if not isinstance(parts, list) or not parts:
        raise NormalizeError(f"multipart body has no parts for boundary {boundary!r}", "body")
    fields: Fields = {}
    files: list[str] = []
    default_charset = params.get("charset", "utf-8")
    for part in parts:
        if not isinstance(part, email.message.Message):
            continue
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or not name:
            continue
        filename = part.get_param("filename", header="content-disposition")
        if filename is not None:
            files.append(f"{name}: {filename}")
            continue
        payload = part.get_payload(decode=True)
        raw = payload if isinstance(payload, bytes) else b""
        charset = part.get_content_charset() or default_charset
        _add(fields, name, _decode(raw, charset))
    if "_charset_" in fields:  # HTML forms may announce the charset of the other parts
        fields.pop("_charset_")
    return ParsedBody(fields=fields, files=files, kind="multipart")


def _scalar(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def flatten_json(obj: dict[str, Any], prefix: str = "", depth: int = 0) -> Fields:
    """Nested JSON object -> flat fields with dotted keys (``answers.Имя``)."""
    if depth > MAX_JSON_DEPTH:
        raise NormalizeError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels", prefix or "body")
    out: Fields = {}
    for k, v in obj.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict):
            out.update(flatten_json(v, key, depth + 1))
        elif isinstance(v, list):
            if all(not isinstance(i, dict | list) for i in v):
                out[key] = [_scalar(i) for i in v]
            else:
                for n, item in enumerate(v):
                    if isinstance(item, dict):
                        out.update(flatten_json(item, f"{key}.{n}", depth + 1))
                    else:
                        out[f"{key}.{n}"] = _scalar(item)
        else:
            out[key] = _scalar(v)
        if len(out) > MAX_FIELDS:
            raise NormalizeError(f"too many fields (more than {MAX_FIELDS})", "body")
    return out


def _parse_json(body: bytes, charset: str) -> Fields:
    text = _decode(body, "utf-8-sig" if charset.lower() in ("utf-8", "utf8") else charset)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NormalizeError(
            f"body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", "body"
        ) from None
    except RecursionError:
        raise NormalizeError("JSON nested too deeply", "body") from None
    if not isinstance(data, dict):
        raise NormalizeError(f"JSON body must be an object, got {type(data).__name__}", "body")
    return flatten_json(data)


def parse_body_full(body: bytes, content_type_header: str) -> ParsedBody:
    """Parse a form body; raises :class:`NormalizeError` naming what is wrong."""
    mime, params = _params(content_type_header or "")
    charset = params.get("charset", "utf-8")
    if mime in ("", "text/plain", "application/octet-stream"):
        # sendBeacon / no-cors fetch post text/plain: sniff JSON vs urlencoded
        stripped = body.lstrip(b"\xef\xbb\xbf \t\r\n")
        if stripped.startswith(b"{"):
            mime = "application/json"
        elif stripped.startswith(b"--"):
            mime = "multipart/form-data"
        else:
            mime = "application/x-www-form-urlencoded"
    if mime == "application/x-www-form-urlencoded":
        return ParsedBody(fields=_parse_urlencoded(body, charset), kind="urlencoded")
    if mime == "multipart/form-data":
        return _parse_multipart(body, params)
    if mime == "application/json" or mime.endswith("+json"):
        return ParsedBody(fields=_parse_json(body, charset), kind="json")
    raise NormalizeError(
        f"unsupported Content-Type {mime!r}: use urlencoded, multipart/form-data or JSON",
        "Content-Type",
    )


def parse_body(body: bytes, content_type_header: str) -> Fields:
    """Form body -> ``{field: str | [str, ...]}`` (file parts of multipart dropped)."""
    return parse_body_full(body, content_type_header).fields
