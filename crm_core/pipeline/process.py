"""Steps 3-5 for one event, inside the caller's transaction: match, assign, log.

Pure domain logic over a session; ``worker.py`` owns transactions, retries and step 6
(notify, after commit).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.events import Channel, Classification, Direction, EventKind, InboundEvent
from crm_core.models import (
    Client,
    ContactPoint,
    InboxEvent,
    Interaction,
    Lead,
    OutboxCommand,
    Task,
    User,
)
from crm_core.pipeline.answered import (
    answering_user,
    call_event_ids,
    reassign_to_answerer,
    rules_of,
)
from crm_core.pipeline.assign import Assigner, Assignment
from crm_core.pipeline.calls import close_unseen_calls
from crm_core.pipeline.campaign_feedback import campaign_feedback
from crm_core.pipeline.complaints import apply_complaint
from crm_core.pipeline.linking import link_identities
from crm_core.pipeline.match import Match, match_event
from crm_core.pipeline.record import live_events_for, record_attachments
from crm_core.pipeline.replies import close_first_reply, logged_reply
from crm_core.services.segments import segment_owner

__all__ = ["LEAD_KINDS", "Outcome", "PipelineConfig", "process_event"]

# Events that open a lead when the sender is not known yet.
LEAD_KINDS = frozenset(
    {
        EventKind.FORM_SUBMITTED,
        EventKind.LEAD_FORM_SUBMITTED,
        EventKind.CALL_STARTED,
        EventKind.CALL_ENDED,
        EventKind.MESSAGE_RECEIVED,
        EventKind.EMAIL_RECEIVED,
        EventKind.CALLBACK_QUERY,
    }
)
# A known client's request that still deserves its own lead (a new enquiry).
REQUEST_KINDS = frozenset({EventKind.FORM_SUBMITTED, EventKind.LEAD_FORM_SUBMITTED})
# Events that are a timeline entry of their own.
LOGGED_KINDS = frozenset(
    {
        EventKind.FORM_SUBMITTED,
        EventKind.LEAD_FORM_SUBMITTED,
        EventKind.CALL_ENDED,
        EventKind.EMAIL_RECEIVED,
        EventKind.EMAIL_SENT,
        EventKind.MESSAGE_RECEIVED,
        EventKind.MESSAGE_SENT,
        EventKind.CALLBACK_QUERY,
    }
)
NO_LEAD_CLASSES = frozenset(
    {Classification.AUTO_REPLY, Classification.BOUNCE, Classification.BULK, Classification.SPAM}
)


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    callback_due_minutes: int = 30
    attachments_dir: str = "./var/attachments"
    lead_title_max: int = 300
    secret_key: str | None = None  # signs unsubscribe tokens (spam complaints are checked)


@dataclass(slots=True)
class Outcome:
    lead_id: int | None = None
    client_id: int | None = None
    interaction_id: int | None = None
    created_lead: bool = False
    follow_up: list[int] = field(default_factory=list)  # inbox rows this event wrote
    live: list[tuple[str, dict[str, Any], list[int] | None, int | None]] = field(
        default_factory=list
    )


def _lead_title(event: InboundEvent) -> str:
    name = event.display_name or (event.identities[0].split(":", 1)[1] if event.identities else "")
    labels = {
        Channel.CALL: "Звонок",
        Channel.EMAIL: "Письмо",
        Channel.WEBFORM: "Заявка с сайта",
        Channel.TELEGRAM: "Telegram",
        Channel.VK: "ВКонтакте",
    }
    return f"{labels.get(event.channel, event.channel.value)}: {name}".strip(": ")[:300]


async def _ensure_points(
    s: AsyncSession, event: InboundEvent, m: Match, *, lead_id: int | None, client_id: int | None
) -> None:
    """Create the contact points the event brought; unique (kind, value) settles races."""
    for ident in event.identities:
        if ident in m.points:
            continue
        kind, value = ident.split(":", 1)
        cp = ContactPoint(
            kind=kind,
            value=value,
            lead_id=lead_id,
            client_id=client_id,
            label=event.display_name if kind in ("telegram", "vk") else None,
        )
        ext = (event.meta.get("phone_extensions") or {}) if kind == "phone" else {}
        if isinstance(ext, dict) and value in ext:
            cp.extension = str(ext[value])[:16]
        s.add(cp)
        m.points[ident] = cp
    # No flush here: the interaction's flush (or the savepoint's end) writes them, and a
    # unique violation there is the race the worker retries.


async def _outbox_links(s: AsyncSession, event: InboundEvent) -> OutboxCommand | None:
    call_id = event.meta.get("crm_call_id")
    if not call_id:
        return None
    return await s.scalar(select(OutboxCommand).where(OutboxCommand.idempotency_key == call_id))


async def process_event(
    s: AsyncSession,
    event: InboundEvent,
    event_id: int,
    assigner: Assigner,
    cfg: PipelineConfig,
) -> Outcome:
    out = Outcome()
    if event.meta.get("parse_error"):
        raise ValueError(f"payload could not be parsed: {event.meta['parse_error']}")
    if event.kind == EventKind.IGNORED:
        return out
    if event.kind == EventKind.CALLS_RECONCILED:
        out.follow_up = await close_unseen_calls(s, event)
        return out
    m = await match_event(s, event)
    await link_identities(s, event, m)
    client, lead = m.client, m.lead
    out.client_id = client.id if client else None

    if event.kind == EventKind.SUBSCRIPTION_CHANGED:
        for cp in m.points.values():
            cp.unreachable = not bool(event.meta.get("allowed", True))
            cp.unreachable_reason = None if not cp.unreachable else "unsubscribed"
        return out
    if event.classification == Classification.BOUNCE:
        for addr in event.meta.get("bounced_addresses") or []:
            await s.execute(
                update(ContactPoint)
                .where(ContactPoint.kind == "email", ContactPoint.value == str(addr).lower())
                .values(unreachable=True, unreachable_reason="bounced")
            )
    if event.meta.get("complaint_tokens"):  # an ARF spam complaint about a campaign email
        await apply_complaint(s, event, cfg.secret_key)
    if event.kind == EventKind.MESSAGE_EDITED:
        return await _apply_edit(s, event, out)
    if event.kind == EventKind.MESSAGE_SENT and (mine := await logged_reply(s, event)):
        out.interaction_id, out.client_id, out.lead_id = mine.id, mine.client_id, mine.lead_id
        return out  # our own reply, already logged by the outbox

    link = await _outbox_links(s, event)
    inbound = event.direction == Direction.INBOUND
    wants_lead = (
        inbound
        and event.kind in LEAD_KINDS
        and event.classification not in NO_LEAD_CLASSES
        and not (event.kind == EventKind.CALL_ENDED and link is not None)
    )
    new_request = client is not None and event.kind in REQUEST_KINDS and lead is None
    assignment: Assignment | None = None
    if wants_lead and (lead is None and (client is None or new_request)):
        assignment = await _segment_assignment(s, client) or await assigner.assign(s, event, client)
        lead = Lead(
            status="new",
            source=event.channel.value,
            source_ref=event.source,
            title=_lead_title(event),
            name=event.display_name,
            company=(event.meta.get("company") or None),
            client_id=client.id if client else None,
            owner_id=assignment.user_id,
            queue=assignment.queue,
            needs_review=event.classification == Classification.NEEDS_REVIEW,
            utm=dict(event.meta.get("utm") or {}),
            rule_id=assignment.rule_id,
            assign_reason=assignment.reason,
            priority=assignment.priority,
            tags=list(assignment.tags),
            first_event_id=event_id,
        )
        s.add(lead)
        await s.flush()
        out.created_lead = True
        if assignment.task or assignment.sla_minutes:
            spec = assignment.task or {}
            minutes = int(spec.get("due_in_minutes") or assignment.sla_minutes or 15)
            s.add(
                Task(
                    kind=str(spec.get("kind") or "first_reply"),
                    title=str(spec.get("title") or f"Ответить на заявку #{lead.id}"),
                    due_at=event.occurred_at + timedelta(minutes=minutes),
                    remind_at=event.occurred_at + timedelta(minutes=minutes),
                    sla_due_at=event.occurred_at + timedelta(minutes=minutes),
                    assignee_id=assignment.user_id,
                    lead_id=lead.id,
                    client_id=lead.client_id,
                )
            )
    if lead is not None and (wants_lead or client is None):
        await _ensure_points(
            s,
            event,
            m,
            lead_id=None if client else lead.id,
            client_id=client.id if client else None,
        )
    elif client is not None and inbound:
        await _ensure_points(s, event, m, lead_id=None, client_id=client.id)
    out.lead_id = lead.id if lead else None
    answerer = await answering_user(s, event)
    if answerer is not None and lead is not None:
        await reassign_to_answerer(s, event, lead, answerer, rules_of(assigner))

    if event.kind in LOGGED_KINDS:
        inter = _interaction(event, event_id, m, lead, link)
        if inter.user_id is None and answerer is not None:
            inter.user_id = answerer.id  # the operator who took the call
        s.add(inter)
        await s.flush()
        out.interaction_id = inter.id
        if client is not None:
            await _touch_last_contact(s, client.id, inter.occurred_at)
        await record_attachments(s, inter, event, cfg.attachments_dir)
        if out.client_id is None and link is not None:
            out.client_id = link.client_id
        await _call_tasks(s, event, inter, lead, client, cfg, assignment)
        if _is_reply(event):
            await close_first_reply(
                s,
                lead_id=inter.lead_id,
                client_id=inter.client_id,
                at=event.occurred_at,
                how=f"{event.channel.value} {event.direction.value}",
            )
    await campaign_feedback(s, event, out, out.interaction_id)
    out.live.extend(await live_events_for(s, event, m, lead, out))
    return out


async def _segment_assignment(s: AsyncSession, client: Client | None) -> Assignment | None:
    """A known client in a segment with managers: the lead goes to its owner among them
    (given one now if it has no owner); see ``crm_core.services.segments``."""
    if client is None:
        return None
    found = await segment_owner(s, client)
    if found is None:
        return None
    user_id, name = found
    return Assignment(user_id, "segment_owner", f"client's owner in segment {name}")


def _interaction(
    event: InboundEvent, event_id: int, m: Match, lead: Lead | None, link: OutboxCommand | None
) -> Interaction:
    meta = dict(event.meta)
    if len(str(meta.get("fields", ""))) > 20_000:
        meta.pop("fields", None)
    if event.channel == Channel.EMAIL:
        meta.setdefault("from", event.emails[:1] if event.direction == Direction.INBOUND else [])
        meta.setdefault("references", list(event.thread_refs))
    message_key = meta.get("message_key") or (
        meta.get("message_id") if event.channel == Channel.EMAIL else None
    )
    if event.channel == Channel.CALL:
        message_key = event.external_id
    if m.person is not None and m.client is not None:
        # A company's contact person called or wrote: the company's timeline names them.
        meta["contact_person"] = {"id": m.person.id, "name": m.person.name}
    if message_key and event.channel in (Channel.TELEGRAM, Channel.VK):
        message_key = f"{event.source or ''}:{message_key}"
    return Interaction(
        client_id=(m.client.id if m.client else None) or (link.client_id if link else None),
        lead_id=(lead.id if lead else None) or (link.lead_id if link else None),
        deal_id=m.deal_id or (link.deal_id if link else None),
        channel=event.channel.value,
        direction=event.direction.value,
        kind=event.kind.value,
        outcome=meta.get("outcome"),
        classification=event.classification.value,
        duration_s=_int(meta.get("talk_seconds")),
        ring_s=_int(meta.get("ring_seconds")),
        recording_url=meta.get("recording_url"),
        recording_file=(str(meta["recording_file"])[:1000] if meta.get("recording_file") else None),
        subject=(event.subject or None) and event.subject[:1000],
        body=event.text,
        html=event.html,
        thread_id=m.thread_id,
        message_key=str(message_key)[:500] if message_key else None,
        user_id=(link.created_by if link else None),
        event_id=event_id,
        meta=meta,
        occurred_at=event.occurred_at,
    )


async def _touch_last_contact(s: AsyncSession, client_id: int, at: Any) -> None:
    """``clients.last_contact_at`` moves forward only; ``updated_at`` (profile edits)
    stays as it was."""
    await s.execute(
        update(Client)
        .where(
            Client.id == client_id,
            or_(Client.last_contact_at.is_(None), Client.last_contact_at < at),
        )
        .values(last_contact_at=at, updated_at=Client.updated_at)
        .execution_options(synchronize_session=False)
    )


def _is_reply(event: InboundEvent) -> bool:
    """The client got an answer: a message or email sent to them (from VK's or Telegram's
    own interface, or the manager's mail program), or a call that was answered."""
    if event.kind == EventKind.CALL_ENDED:
        return event.meta.get("outcome") == "answered"
    return event.direction == Direction.OUTBOUND


def _int(v: Any) -> int | None:
    try:
        return int(v) if v is not None else None
    except (TypeError, ValueError):
        return None


async def _call_tasks(
    s: AsyncSession,
    event: InboundEvent,
    inter: Interaction,
    lead: Lead | None,
    client: Any,
    cfg: PipelineConfig,
    assignment: Assignment | None,
) -> None:
    """A missed inbound call opens a "call back" task; an answered call closes it."""
    if event.kind != EventKind.CALL_ENDED:
        return
    outcome = event.meta.get("outcome")
    owner_id = (client.owner_id if client else None) or (lead.owner_id if lead else None)
    scope = Task.client_id == client.id if client else (Task.lead_id == (lead.id if lead else -1))
    if outcome == "answered":
        now = event.occurred_at
        await s.execute(
            update(Task)
            .where(scope, Task.kind == "call_back", Task.status == "open")
            .values(status="done", closed_at=now, note="closed by an answered call")
        )
        return
    if event.direction != Direction.INBOUND or outcome not in ("missed", "busy", "failed"):
        return
    existing = await s.scalar(
        select(Task.id).where(scope, Task.kind == "call_back", Task.status == "open").limit(1)
    )
    if existing is not None:
        return
    caller = event.phones[0] if event.phones else event.meta.get("caller_raw") or ""
    due = event.occurred_at + timedelta(minutes=cfg.callback_due_minutes)
    if owner_id is None and event.meta.get("extensions_rung"):
        owner_id = await s.scalar(
            select(User.id).where(User.extension.in_(list(event.meta["extensions_rung"]))).limit(1)
        )
    if lead is not None and await _lead_of_this_call(s, event, lead):
        # A new caller's lead opened by this very call: the rules' task ("contact the new
        # lead") becomes the call back, so a missed call opens one task, not two.
        opened = await s.scalar(
            select(Task)
            .where(
                Task.lead_id == lead.id,
                Task.status == "open",
                Task.created_by.is_(None),
                Task.kind != "call_back",
            )
            .order_by(Task.id)
            .limit(1)
        )
        if opened is not None:
            opened.kind = "call_back"
            opened.title = f"Перезвонить {caller}".strip()
            opened.due_at = opened.remind_at = due
            opened.interaction_id = inter.id
            opened.assignee_id = opened.assignee_id or owner_id
            return
    s.add(
        Task(
            kind="call_back",
            title=f"Перезвонить {caller}".strip(),
            due_at=due,
            remind_at=due,
            assignee_id=owner_id,
            client_id=client.id if client else None,
            lead_id=lead.id if lead else None,
            interaction_id=inter.id,
        )
    )


async def _lead_of_this_call(s: AsyncSession, event: InboundEvent, lead: Lead) -> bool:
    if lead.first_event_id is None:
        return False
    found = await s.scalar(
        call_event_ids(event).where(InboxEvent.id == lead.first_event_id).limit(1)
    )
    return found is not None


async def _apply_edit(s: AsyncSession, event: InboundEvent, out: Outcome) -> Outcome:
    key = event.meta.get("message_key")
    if key:
        key = f"{event.source or ''}:{key}"
        inter = await s.scalar(
            select(Interaction).where(
                Interaction.channel == event.channel.value, Interaction.message_key == key
            )
        )
        if inter is not None:
            history = list((inter.meta or {}).get("edits") or [])
            history.append({"at": event.occurred_at.isoformat(), "previous": inter.body})
            inter.body = event.text
            inter.meta = {**(inter.meta or {}), "edits": history}
            out.interaction_id = inter.id
            out.client_id = inter.client_id
            out.lead_id = inter.lead_id
            return out
    raise LookupError(f"edited message {key!r} is not on any timeline yet")
