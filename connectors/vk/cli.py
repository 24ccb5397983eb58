"""``crmhub ingest vk FILE.json --dry-run``: the event JSON, nothing stored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from connectors.vk.normalize import normalize_callback
from crm_core.events import NormalizeError

__all__ = ["dry_run"]


def dry_run(path: str | Path, *, group_id: int | None = None) -> dict[str, Any]:
    """The JSON-able event of one Callback API body (group: the payload's ``group_id``)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise NormalizeError(f"cannot read {path}: {exc}", "file") from None
    except ValueError as exc:
        raise NormalizeError(f"{path} is not JSON: {exc}", "file") from None
    if group_id is None:
        raw = data.get("group_id") if isinstance(data, dict) else None
        if (
            isinstance(raw, bool)
            or not isinstance(raw, int | str)
            or not str(raw).isascii()
            or not str(raw).isdigit()
        ):
            raise NormalizeError(f"group_id missing or not a number: {raw!r}", "group_id")
        group_id = int(raw)
    event = normalize_callback(data, group_id=group_id)
    if event is None:
        return {"channel": "vk", "kind": "confirmation", "group_id": group_id}
    return event.to_json()
