"""Calls that ended while nobody was listening.

The AMI connector keeps a call's state in memory until it ends.  If crmhub stops (a
restart, a crash) or loses the PBX mid-call, the end may never be seen, and a missed
call would never become a "call back" task.  After every login the connector sends a
``calls_reconciled`` event with the Linkedids the PBX still has live; here every call
of that PBX whose ``call_started`` is in the inbox (received before the PBX was asked,
within ``LOOKBACK``) with no ``call_ended``, and which is not live any more, gets a
``call_ended`` of its own: ``answered`` if its answer was seen, else ``missed`` (so an
inbound one opens a call-back task), marked ``reconciled`` and ``ended_unseen``.  They
are written as ordinary inbox rows: the inbox's unique key (channel, kind, external id)
keeps a real ``call_ended`` and this one from both landing, whichever comes first.

What was persisted is kept: the operator who answered (``answered_by``), the ring time
(from ``call_started`` to ``call_answered``), and a talk time up to the end.  The end
is dated no later than the last moment the call was seen alive: the connector's
"alive" mark (``meta.alive`` of the report: ``{"at", "linkedids"}``, persisted every
few seconds while the link is up) if it lists the call, else the last persisted event
of the call; never before that event, never after the PBX was asked.
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
    answers = {
        ext: payload
        for ext, payload in (
            await s.execute(
                select(T.external_id, T.payload).where(
                    T.channel == Channel.CALL.value,
                    T.kind == EventKind.CALL_ANSWERED.value,
                    T.external_id.in_([ext for ext, _ in gone]),
                )
            )
        ).all()
    }
    seen_at, seen_ids = _alive(event)
    rows = []
    for ext, payload in gone:
        start = InboundEvent.from_json(payload)
        answer = InboundEvent.from_json(answers[ext]) if ext in answers else None
        last = answer.occurred_at if answer is not None else start.occurred_at
        last = max(last, start.occurred_at)
        end = last
        if seen_at is not None and ext.split(":", 1)[-1] in seen_ids:
            end = max(last, min(seen_at, asked))
        rows.append(inbox_row(_ended(start, answer, end)))
    postgres = s.get_bind().dialect.name == "postgresql"
    res = await s.execute(inbox_insert(postgres=postgres), rows)
    return [int(r[0]) for r in res]


def _alive(event: InboundEvent) -> tuple[datetime | None, set[str]]:
    """The connector's last "alive" mark carried by the report, if any."""
    mark = event.meta.get("alive")
    if not isinstance(mark, dict) or not isinstance(mark.get("at"), int | float):
        return None, set()
    return datetime.fromtimestamp(float(mark["at"]), UTC), {
        str(x) for x in mark.get("linkedids") or []
    }


def _secs(delta: timedelta) -> int:
    return max(0, int(delta.total_seconds() + 0.5))


def _ended(started: InboundEvent, answered: InboundEvent | None, at: datetime) -> InboundEvent:
    base = answered if answered is not None else started
    meta: dict[str, Any] = {
        **started.meta,
        **base.meta,
        "outcome": "answered" if answered is not None else "missed",
        "hangup_side": None,
        "reconciled": True,
        "ended_unseen": True,
    }
    if answered is not None:
        meta["ring_seconds"] = _secs(answered.occurred_at - started.occurred_at)
        meta["talk_seconds"] = _secs(at - answered.occurred_at)
    else:
        meta["ring_seconds"] = _secs(at - started.occurred_at)
        meta["talk_seconds"] = 0
    return dataclasses.replace(started, kind=EventKind.CALL_ENDED, occurred_at=at, meta=meta)
