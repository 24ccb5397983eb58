"""Helpers for the SLA/reminder tests: users and tasks written straight to the database."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from crm_core.db import Database
from crm_core.models import Lead, Task, User

__all__ = ["add_lead", "add_task", "add_users"]


async def add_users(db: Database, *specs: dict[str, Any]) -> list[int]:
    """Each spec: email, role (default manager), team, timezone, active."""
    out = []
    async with db.transaction() as s:
        for spec in specs:
            u = User(
                email=spec["email"],
                name=spec.get("name", spec["email"].split("@")[0]),
                role=spec.get("role", "manager"),
                team=spec.get("team"),
                timezone=spec.get("timezone", "Europe/Moscow"),
                active=spec.get("active", True),
                token_hash=secrets.token_hex(32),
            )
            s.add(u)
            await s.flush()
            out.append(u.id)
    return out


async def add_task(db: Database, **kw: Any) -> int:
    kw.setdefault("kind", "call_back")
    kw.setdefault("title", "Перезвонить +79165551234")
    kw.setdefault("status", "open")
    if "due_at" in kw and "remind_at" not in kw:
        kw["remind_at"] = kw["due_at"]
    async with db.transaction() as s:
        t = Task(**kw)
        s.add(t)
        await s.flush()
        return t.id


async def add_lead(db: Database, created_at: datetime, queue: str, **kw: Any) -> int:
    async with db.transaction() as s:
        lead = Lead(
            status="new",
            source="webform",
            source_ref="site",
            title=kw.pop("title", "Заявка"),
            queue=queue,
            owner_id=None,
            created_at=created_at,
            **kw,
        )
        s.add(lead)
        await s.flush()
        return lead.id
