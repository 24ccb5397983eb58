"""``crmhub ingest email FILE.eml --dry-run``: parse a file and return the event JSON."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from connectors.email.normalize import parse_message
from crm_core.events import NormalizeError

__all__ = ["dry_run"]


def dry_run(
    path: str,
    *,
    mailbox: str | None = None,
    own_addresses: Iterable[str] = frozenset(),
    region: str = "RU",
) -> dict[str, Any]:
    """The JSON-able event for one ``.eml`` file (no raw bytes, no attachment contents,
    HTML already sanitized).  Raises :class:`NormalizeError` for an unreadable file or
    input that is not a mail message at all."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise NormalizeError(f"cannot read {path}: {exc.strerror or exc}", "path") from None
    event = parse_message(raw, mailbox=mailbox, own_addresses=own_addresses, region=region)
    return event.to_json()
