"""The admin-editable list of client statuses (``client_statuses``).

Everyone reads the list; admins add a status, rename it (Russian and English names),
reorder the list and deactivate a status.  A client keeps an inactive status it already
has, but no client can be given one.  A status some client has cannot be deleted, only
deactivated; an unused one can.  The key never changes (it is what the clients hold)."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.access import Actor
from crm_core.models import Client, ClientStatus
from crm_core.services.common import Conflict, Forbidden, Invalid, NotFound, audit

__all__ = [
    "DEFAULT_STATUSES",
    "active_status_keys",
    "create_status",
    "default_status",
    "delete_status",
    "list_statuses",
    "require_active_status",
    "seed_default_statuses",
    "status_dict",
    "update_status",
]

# (key, Russian name, English name, position): what migration 0006 seeds.
DEFAULT_STATUSES = (
    ("cold", "Холодный", "Cold", 10),
    ("thinking", "Думает", "Thinking", 20),
    ("ready", "Готов купить", "Ready to buy", 30),
    ("active", "Активный", "Active", 40),
    ("regular", "Постоянный", "Regular", 50),
    ("lost", "Потерян", "Lost", 60),
)
_KEY = re.compile(r"^[a-z][a-z0-9_]{0,19}$")


def _admin(actor: Actor) -> None:
    if not actor.is_admin:
        raise Forbidden("only admins may do this")


def status_dict(st: ClientStatus, used: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "key": st.key,
        "name_ru": st.name_ru,
        "name_en": st.name_en,
        "position": st.position,
        "active": st.active,
    }
    if used is not None:
        out["clients"] = used
    return out


async def seed_default_statuses(s: AsyncSession) -> None:
    """Insert the default statuses that are missing (a database built without the
    migrations' seed, e.g. a test that truncated every table)."""
    have = set(await s.scalars(select(ClientStatus.key)))
    for key, ru, en, pos in DEFAULT_STATUSES:
        if key not in have:
            s.add(ClientStatus(key=key, name_ru=ru, name_en=en, position=pos, active=True))
    await s.flush()


async def list_statuses(s: AsyncSession, *, with_counts: bool = False) -> list[dict[str, Any]]:
    rows = list(
        await s.scalars(select(ClientStatus).order_by(ClientStatus.position, ClientStatus.key))
    )
    counts: dict[str, int] = {}
    if with_counts:
        got = await s.execute(select(Client.status, func.count()).group_by(Client.status))
        counts = {k: int(n) for k, n in got}
    return [status_dict(r, counts.get(r.key, 0) if with_counts else None) for r in rows]


async def active_status_keys(s: AsyncSession) -> list[str]:
    rows = await s.scalars(
        select(ClientStatus.key)
        .where(ClientStatus.active.is_(True))
        .order_by(ClientStatus.position, ClientStatus.key)
    )
    return list(rows)


async def default_status(s: AsyncSession) -> str:
    """A new client's status when none is given: ``cold`` while it is active, else the
    first active status of the list."""
    keys = await active_status_keys(s)
    return "cold" if "cold" in keys or not keys else keys[0]


async def require_active_status(s: AsyncSession, key: str) -> str:
    """``key`` if it is an active status; Invalid naming ``status`` otherwise."""
    keys = await active_status_keys(s)
    if key not in keys:
        raise Invalid(f"status must be one of {', '.join(keys)}", "status")
    return key


def _names(data: dict[str, Any], st: ClientStatus | None) -> None:
    for name in ("name_ru", "name_en"):
        if name in data:
            value = (data[name] or "").strip()
            if not value:
                raise Invalid(f"{name} must not be empty", name)
            if len(value) > 100:
                raise Invalid(f"{name} is longer than 100 characters", name)
            data[name] = value
        elif st is None:
            raise Invalid(f"{name} is required", name)


async def create_status(s: AsyncSession, actor: Actor, data: dict[str, Any]) -> ClientStatus:
    """``data``: key, name_ru, name_en, position (default: after the last), active."""
    _admin(actor)
    key = str(data.get("key") or "").strip()
    if not _KEY.match(key):
        raise Invalid("key must be 1-20 characters a-z, 0-9, _ starting with a letter", "key")
    if await s.get(ClientStatus, key) is not None:
        raise Conflict(f"status {key} already exists", "key")
    data = dict(data)
    _names(data, None)
    position = data.get("position")
    if position is None:
        position = int(await s.scalar(select(func.max(ClientStatus.position))) or 0) + 10
    st = ClientStatus(
        key=key,
        name_ru=data["name_ru"],
        name_en=data["name_en"],
        position=int(position),
        active=bool(data.get("active", True)),
    )
    s.add(st)
    await s.flush()
    await audit(s, actor, "create", "client_status", None, status_dict(st))
    return st


async def _get(s: AsyncSession, key: str) -> ClientStatus:
    st = await s.get(ClientStatus, key)
    if st is None:
        raise NotFound(f"status {key} not found")
    return st


async def update_status(
    s: AsyncSession, actor: Actor, key: str, changes: dict[str, Any]
) -> ClientStatus:
    """Rename (name_ru, name_en), move (position) or (de)activate (active)."""
    _admin(actor)
    st = await _get(s, key)
    changes = {k: v for k, v in changes.items() if v is not None}
    _names(changes, st)
    if changes.get("active") is False and st.active:
        others = [k for k in await active_status_keys(s) if k != key]
        if not others:
            raise Conflict("at least one status must stay active", "active")
    for name in ("name_ru", "name_en", "position", "active"):
        if name in changes:
            setattr(st, name, changes[name])
    await s.flush()
    await audit(s, actor, "update", "client_status", None, {"key": key, **changes})
    return st


async def delete_status(s: AsyncSession, actor: Actor, key: str) -> None:
    """Only a status no client has; a used one is deactivated instead (PATCH active=false)."""
    _admin(actor)
    st = await _get(s, key)
    used = int(await s.scalar(select(func.count()).where(Client.status == key)) or 0)
    if used:
        raise Conflict(
            f"status {key} is used by {used} clients: deactivate it instead of deleting", "key"
        )
    if st.active and [k for k in await active_status_keys(s) if k != key] == []:
        raise Conflict("at least one status must stay active", "active")
    await s.delete(st)
    await s.flush()
    await audit(s, actor, "delete", "client_status", None, {"key": key})
