"""Answered calls: who answered, and the lead of a new caller going to them.

The lead of a new caller is created while the call rings (the caller card needs it), so
the rules choose its owner before anybody answers.  When the call is answered by an
operator whose extension belongs to a user, the rule set's ``answered_calls`` chain
(default ``strategy: answered_by``) decides again; a lead this call created, that no
person has touched since, goes with its open tasks to the one chosen.  Missed calls keep
what the rules decided.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.events import Channel, Direction, EventKind, InboundEvent
from crm_core.models import AuditEntry, InboxEvent, Lead, Task, User, utcnow
from crm_core.pipeline.rules_assigner import build_roster
from crm_core.routing_context import context_from_event
from routing_rules import RuleSet, decide_answered

__all__ = ["answering_user", "call_event_ids", "is_answered_call", "reassign_to_answerer"]


def is_answered_call(event: InboundEvent) -> bool:
    if event.channel != Channel.CALL:
        return False
    if event.kind == EventKind.CALL_ANSWERED:
        return True
    return event.kind == EventKind.CALL_ENDED and event.meta.get("outcome") == "answered"


async def answering_user(s: AsyncSession, event: InboundEvent) -> User | None:
    """The user whose extension answered (inbound) or placed (outbound) the call."""
    ext = event.meta.get("answered_by")
    if not ext or not is_answered_call(event):
        return None
    user: User | None = await s.scalar(select(User).where(User.extension == str(ext)))
    return user


def call_event_ids(event: InboundEvent) -> Any:
    """The inbox rows of the same call (every kind shares the call's external id)."""
    return select(InboxEvent.id).where(
        InboxEvent.channel == event.channel.value, InboxEvent.external_id == event.external_id
    )


async def _untouched_lead_of_call(s: AsyncSession, event: InboundEvent, lead: Lead) -> bool:
    if lead.status != "new" or lead.first_event_id is None:
        return False
    created_here = await s.scalar(
        select(InboxEvent.id).where(
            InboxEvent.id == lead.first_event_id,
            InboxEvent.channel == event.channel.value,
            InboxEvent.external_id == event.external_id,
        )
    )
    if created_here is None:
        return False
    touched = await s.scalar(
        select(AuditEntry.id)
        .where(
            AuditEntry.entity == "lead",
            AuditEntry.entity_id == lead.id,
            AuditEntry.user_id.is_not(None),
        )
        .limit(1)
    )
    return touched is None


def rules_of(assigner: Any) -> RuleSet:
    """The rule set the assigner routes with (no rules file: the default set)."""
    rules: Callable[[], RuleSet] | None = getattr(assigner, "rules", None)
    return rules() if callable(rules) else RuleSet.default()


async def reassign_to_answerer(
    s: AsyncSession, event: InboundEvent, lead: Lead | None, user: User, rules: RuleSet
) -> bool:
    """Give a new caller's lead (and its open tasks) to the one the ``answered_calls`` rules
    choose, by default who answered.  True if the lead changed hands."""
    if lead is None or event.direction != Direction.INBOUND:
        return False
    if not await _untouched_lead_of_call(s, event, lead):
        return False
    ctx = replace(context_from_event(event, None), answered_by=user.id)
    now = utcnow()
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    d = decide_answered(ctx, rules, await build_roster(s), now)
    if d.user_id is None or d.user_id == lead.owner_id:
        return False
    previous = lead.owner_id
    lead.owner_id = d.user_id
    lead.queue = None
    lead.rule_id = d.rule_id
    lead.assign_reason = f"{d.reason} / {d.reason_ru}"
    await s.execute(
        update(Task)
        .where(Task.lead_id == lead.id, Task.status == "open", Task.created_by.is_(None))
        .values(assignee_id=d.user_id)
        .execution_options(synchronize_session=False)
    )
    s.add(
        AuditEntry(
            user_id=None,
            action="reassign",
            entity="lead",
            entity_id=lead.id,
            details={
                "from": previous,
                "to": d.user_id,
                "rule_id": d.rule_id,
                "reason": d.reason,
                "reason_ru": d.reason_ru,
                "call": event.external_id,
            },
        )
    )
    return True
