"""Calls that ended while nobody was listening.

The AMI connector keeps a call's state in memory until it ends.  If crmhub stops (a
restart, a crash) or loses the PBX mid-call, the end may never be seen, and a missed
call would never become a "call back" task.  After every login the connector sends a
``calls_reconciled`` event with the Linkedids the PBX still has live; here every call
of that PBX whose ``call_started`` is in the inbox (received before the PBX was asked,
within ``LOOKBACK``) with no ``call_ended``, and which is not live any more, gets a
``call_ended`` of its own: ``answered`` if its answer was seen, else ``missed`` (so an
inbound one opens a call-back task), marked ``reconciled`` and ``ended_unseen``; its
end time is when the PBX was asked.  They are written as ordinary inbox rows: the
inbox's unique key (channel, kind, external id) keeps a real ``call_ended`` and this one
from both landing, whichever comes first.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from crm_core.events import Channel, EventKind, InboundEvent
from crm_core.models import InboxEvent
from crm_core.pipeline.inbox import inbox_insert, inbox_row

__all__ = ["LOOKBACK", "close_unseen_calls"]

LOOKBACK = timedelta(hours=12)  # a call older than this is not closed any more
LIMIT = 500


def _asked_at(event: InboundEvent) -> datetime:
    raw = event.meta.get("asked_at")
    if isinstance(raw, int | float):
        return datetime.fromtimestamp(float(raw), UTC)
    return event.occurred_at


async def close_unseen_calls(s: AsyncSession, event: InboundEvent) -> list[int]:
    """Writes the missing ``call_ended`` events; returns their new inbox ids."""
    pbx = event.source or str(event.meta.get("pbx") or "")
    live = {str(x) for x in event.meta.get("live_linkedids") or []}
    asked = _asked_at(event)
    T, E = InboxEvent, aliased(InboxEvent)
    ended = exists().where(
        E.channel == Channel.CALL.value,
        E.kind == EventKind.CALL_ENDED.value,
        E.external_id == T.external_id,
    )
    started = (
        await s.execute(
            select(T.external_id, T.payload)
            .where(
                T.channel == Channel.CALL.value,
                T.kind == EventKind.CALL_STARTED.value,
                T.source == pbx,
                # persisted before the PBX was asked: its channel existed then, so
                # the PBX's list of live calls is the truth about it
                T.received_at < asked,
                T.received_at > asked - LOOKBACK,
                ~ended,
            )
            .order_by(T.id)
            .limit(LIMIT)
        )
    ).all()
    gone = [(ext, payload) for ext, payload in started if ext.split(":", 1)[-1] not in live]
    if not gone:
        return []
    answered = set(
        await s.scalars(
            select(T.external_id).where(
                T.channel == Channel.CALL.value,
                T.kind == EventKind.CALL_ANSWERED.value,
                T.external_id.in_([ext for ext, _ in gone]),
            )
        )
    )
    rows = [inbox_row(_ended(InboundEvent.from_json(p), ext in answered, asked)) for ext, p in gone]
    postgres = s.get_bind().dialect.name == "postgresql"
    res = await s.execute(inbox_insert(postgres=postgres), rows)
    return [int(r[0]) for r in res]


def _ended(started: InboundEvent, answered: bool, at: datetime) -> InboundEvent:
    meta: dict[str, Any] = {
        **started.meta,
        "outcome": "answered" if answered else "missed",
        "ring_seconds": None,
        "talk_seconds": None,
        "hangup_side": None,
        "reconciled": True,
        "ended_unseen": True,
    }
    return dataclasses.replace(
        started, kind=EventKind.CALL_ENDED, occurred_at=max(at, started.occurred_at), meta=meta
    )
