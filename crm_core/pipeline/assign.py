"""Step 4, ``assign``: a known client keeps its owner; a new lead is routed.

``Assigner.assign`` runs inside the lead's own transaction, so the round-robin
pointer it moves commits (or rolls back) together with the assignment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.events import InboundEvent
from crm_core.models import Client, RoutingPointer, User, utcnow

__all__ = ["Assigner", "Assignment", "RoundRobinAssigner", "lock_pointer", "save_pointer"]


@dataclass(frozen=True, slots=True)
class Assignment:
    user_id: int | None
    rule_id: str
    reason: str
    queue: str | None = None
    priority: str | None = None
    tags: tuple[str, ...] = ()
    sla_minutes: int | None = None
    task: dict[str, Any] | None = field(default=None)  # {"kind", "title", "due_in_minutes"}


class Assigner(Protocol):
    async def assign(
        self, s: AsyncSession, event: InboundEvent, client: Client | None
    ) -> Assignment: ...


async def lock_pointer(s: AsyncSession, key: str, *, postgres: bool) -> RoutingPointer:
    """Read a round-robin pointer, locked until commit (PostgreSQL ``FOR UPDATE``)."""
    q = select(RoutingPointer).where(RoutingPointer.key == key)
    if postgres:
        q = q.with_for_update()
    ptr = await s.scalar(q)
    if ptr is None:
        if postgres:
            from sqlalchemy.dialects.postgresql import insert

            await s.execute(
                insert(RoutingPointer)
                .values(key=key, last_user_id=None, updated_at=utcnow())
                .on_conflict_do_nothing()
            )
            ptr = await s.scalar(q.execution_options(populate_existing=True))
        else:
            ptr = RoutingPointer(key=key, last_user_id=None)
            s.add(ptr)
    assert ptr is not None
    return ptr


def save_pointer(ptr: RoutingPointer, user_id: int) -> None:
    ptr.last_user_id = user_id
    ptr.updated_at = utcnow()


class RoundRobinAssigner:
    """The default until a rules file says otherwise: even round robin over active managers."""

    def __init__(self, *, postgres: bool) -> None:
        self.postgres = postgres

    async def assign(
        self, s: AsyncSession, event: InboundEvent, client: Client | None
    ) -> Assignment:
        if client is not None and client.owner_id is not None:
            owner = await s.get(User, client.owner_id)
            if owner is not None and owner.active:
                return Assignment(owner.id, "sticky_owner", f"client's owner {owner.name}")
        ptr = await lock_pointer(s, "default", postgres=self.postgres)
        ids = list(
            await s.scalars(
                select(User.id)
                .where(User.active.is_(True), User.role == "manager")
                .order_by(User.id)
            )
        )
        if not ids:
            return Assignment(None, "default", "no active manager: waiting in the queue", "default")
        last = ptr.last_user_id or 0
        chosen = next((i for i in ids if i > last), ids[0])
        save_pointer(ptr, chosen)
        return Assignment(chosen, "default", "round robin among active managers")
