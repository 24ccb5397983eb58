"""Handlers: calls (filled in by its issue)."""

from __future__ import annotations

from typing import Any

__all__ = ["ROUTES"]

ROUTES: list[tuple[str, str, Any]] = []
