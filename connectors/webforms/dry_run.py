"""``crmhub ingest form FILE [--content-type urlencoded|multipart|json] --dry-run``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connectors.webforms.config import FormSpec
from connectors.webforms.normalize import normalize_form
from connectors.webforms.parsing import CONTENT_TYPES, mime_type_for, parse_body_full
from crm_core.events import InboundEvent, NormalizeError

__all__ = ["dry_run", "guess_content_type", "load_event"]

MAX_FILE_BYTES = 16 * 1024 * 1024


def guess_content_type(body: bytes) -> str:
    """What a stored body most likely is, when ``--content-type`` is not given: JSON
    (starts with ``{``/``[``), multipart (starts with a ``--boundary`` line), else
    urlencoded."""
    head = body.lstrip()[:1]
    if head in (b"{", b"["):
        return "json"
    if body.startswith(b"--") and b"content-disposition" in body[:4096].lower():
        return "multipart"
    return "urlencoded"


def load_event(
    path: str,
    *,
    content_type: str | None = None,
    form_key: str = "dry-run",
    received_at: datetime | None = None,
) -> InboundEvent:
    """A stored form body -> its event (for ``crmhub ingest form FILE`` with or without
    ``--dry-run``).  Raises :class:`NormalizeError` with a one-line reason."""
    if content_type is not None and (
        content_type.lower() not in CONTENT_TYPES and "/" not in content_type
    ):
        raise NormalizeError(
            f"unknown content type {content_type!r}: use {', '.join(CONTENT_TYPES)}",
            "content_type",
        )
    try:
        file = Path(path)
        if file.stat().st_size > MAX_FILE_BYTES:
            raise NormalizeError(f"{path}: larger than {MAX_FILE_BYTES} bytes", "file")
        body = file.read_bytes()
    except OSError as exc:
        raise NormalizeError(f"cannot read {path}: {exc.strerror or exc}", "file") from None
    parsed = parse_body_full(body, mime_type_for(content_type or guess_content_type(body)))
    return normalize_form(
        parsed.fields,
        form=FormSpec(key=form_key),
        content_type=parsed.kind,
        received_at=received_at or datetime.now(UTC),
        files=parsed.files,
    )


def dry_run(
    path: str, *, content_type: str | None = None, form_key: str = "dry-run"
) -> dict[str, Any]:
    """Normalize a stored payload and return the event's JSON (nothing is stored)."""
    return load_event(path, content_type=content_type, form_key=form_key).to_json()
