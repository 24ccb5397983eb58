"""Old and new values for the audit log, without each service spelling them out.

Before each flush, the ORM's attribute history of every changed client, lead, deal,
task and sales plan in the session is remembered (``session.info``); the next
``services.common.audit()`` call for that row takes it as ``changes``: ``{field: [old,
new]}``.  Only rows already loaded and then changed are seen (bulk UPDATE statements
are not), which is how the services change what the audit log covers.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from crm_core.models import Client, Deal, Lead, SalesPlan, Task

__all__ = ["AUDITED", "take_changes"]

AUDITED: dict[type, str] = {
    Client: "client",
    Lead: "lead",
    Deal: "deal",
    Task: "task",
    SalesPlan: "sales_plan",
}
SKIP = frozenset({"id", "updated_at", "updated_by"})
_KEY = "crmhub.audit_changes"


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, list | dict):
        return value
    return value


@event.listens_for(Session, "before_flush")
def _remember(session: Session, _context: Any, _instances: Any) -> None:
    store: dict[tuple[str, int], dict[str, list[Any]]] | None = None
    for obj in session.dirty:
        entity = AUDITED.get(type(obj))
        if entity is None:
            continue
        state = inspect(obj)
        if state.identity is None:
            continue
        diff: dict[str, list[Any]] = {}
        for attr in state.mapper.column_attrs:
            if attr.key in SKIP:
                continue
            hist = state.attrs[attr.key].history
            if not hist.added:
                continue
            old = hist.deleted[0] if hist.deleted else None
            new = hist.added[0]
            if old != new:
                diff[attr.key] = [_plain(old), _plain(new)]
        if not diff:
            continue
        if store is None:
            store = session.info.setdefault(_KEY, {})
        merged = store.setdefault((entity, int(state.identity[0])), {})
        for key, (old, new) in diff.items():
            if key in merged:
                merged[key][1] = new  # keep the first old value of the transaction
            else:
                merged[key] = [old, new]


def take_changes(session: Session, entity: str, entity_id: int | None) -> dict[str, list[Any]]:
    """The changes remembered for one row since its last audit entry (and forget them)."""
    store = session.info.get(_KEY)
    if not store or entity_id is None:
        return {}
    changes = store.pop((entity, int(entity_id)), {})
    return {k: v for k, v in changes.items() if v[0] != v[1]}
