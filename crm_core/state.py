"""Durable key/value state for connectors (``crm_core.ports.StateStore``)."""

from __future__ import annotations

from typing import Any

from crm_core.db import Database
from crm_core.models import ConnectorStateRow, utcnow

__all__ = ["DbStateStore"]


class DbStateStore:
    """IMAP UIDVALIDITY and last UID per folder, and the like, in ``connector_state``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, key: str) -> dict[str, Any] | None:
        async with self.db.sessions() as s:
            row = await s.get(ConnectorStateRow, key)
            return dict(row.value) if row is not None else None

    async def set(self, key: str, value: dict[str, Any]) -> None:
        async with self.db.transaction() as s:
            row = await s.get(ConnectorStateRow, key)
            if row is None:
                s.add(ConnectorStateRow(key=key, value=dict(value), updated_at=utcnow()))
            else:
                row.value = dict(value)
                row.updated_at = utcnow()
