"""Shared helpers for the email parser tests: the recorded fixtures and their index."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from connectors.email.normalize import parse_message
from crm_core.events import InboundEvent

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "email"
INDEX: list[dict[str, Any]] = json.loads((FIXTURES / "index.json").read_text("utf-8"))
OWN = frozenset({"manager1@crm.example"})


def load(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def parse(name: str, **kwargs: Any) -> InboundEvent:
    kwargs.setdefault("own_addresses", OWN)
    return parse_message(load(name), **kwargs)
