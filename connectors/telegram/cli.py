"""``crmhub ingest telegram FILE.json --dry-run``: the event JSON, nothing stored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from connectors.telegram.normalize import normalize_update
from crm_core.events import NormalizeError

__all__ = ["DEFAULT_DRY_RUN_BOT", "dry_run"]

DEFAULT_DRY_RUN_BOT = "bot"


def load_json_file(path: str | Path) -> Any:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise NormalizeError(f"cannot read {path}: {exc}", "file") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise NormalizeError(f"{path} is not JSON: {exc}", "file") from None


def dry_run(path: str | Path, *, bot_name: str = DEFAULT_DRY_RUN_BOT) -> dict[str, Any]:
    """The JSON-able event for one Telegram update file; NormalizeError if unparseable."""
    event = normalize_update(load_json_file(path), bot_name=bot_name)
    return event.to_json()
