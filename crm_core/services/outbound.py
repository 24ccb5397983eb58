"""Outbound actions from the CRM: click-to-call, email, messenger replies.

Each writes one outbox command in the caller's transaction (the outbox worker sends it);
a retried request with the same idempotency key finds the same command.  Managers act
only on what they may see (``crm_core.access``).
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import nh3
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.access import (
    Actor,
    visible_clients,
    visible_deals,
    visible_interactions,
    visible_leads,
    visible_tasks,
)
from crm_core.identity import IdentityError, normalize_email, normalize_phone
from crm_core.models import (
    Client,
    ContactPoint,
    Deal,
    Interaction,
    Lead,
    OutboxCommand,
    Task,
    User,
)
from crm_core.outbox import enqueue
from crm_core.services.common import Invalid, NotFound, audit

__all__ = [
    "OUTBOUND_URL_SCHEMES",
    "Target",
    "resolve_target",
    "sanitize_outbound_html",
    "send_email",
    "send_message",
    "start_call",
]


# A manager's HTML reply: links only to these schemes (nh3 checks them as a browser
# parses the URL, so leading spaces or entities cannot disguise ``data:``/``javascript:``).
# ``cite`` is a URL nh3 does not scheme-check: dropped.
OUTBOUND_URL_SCHEMES = frozenset({"http", "https", "mailto", "tel", "cid"})
_OUTBOUND_ATTRIBUTES = {k: set(v) - {"cite"} for k, v in nh3.ALLOWED_ATTRIBUTES.items()}


def sanitize_outbound_html(html: str) -> str:
    return nh3.clean(
        html,
        attributes=_OUTBOUND_ATTRIBUTES,
        url_schemes=set(OUTBOUND_URL_SCHEMES),
        url_relative="deny",
    )


@dataclass(slots=True)
class Target:
    client_id: int | None = None
    lead_id: int | None = None
    deal_id: int | None = None
    task_id: int | None = None


async def _one(s: AsyncSession, model: Any, ident: int, cond: Any, what: str) -> Any:
    row = await s.scalar(select(model).where(model.id == ident, cond))
    if row is None:
        raise NotFound(f"{what} {ident} not found", f"{what}_id")
    return row


async def resolve_target(
    s: AsyncSession,
    actor: Actor,
    *,
    client_id: int | None = None,
    lead_id: int | None = None,
    deal_id: int | None = None,
    task_id: int | None = None,
) -> Target:
    """What the action is about, checked against what the actor may see."""
    t = Target()
    if task_id is not None:
        task: Task = await _one(s, Task, task_id, visible_tasks(actor), "task")
        t.task_id = task.id
        client_id = client_id or task.client_id
        lead_id = lead_id or task.lead_id
        deal_id = deal_id or task.deal_id
    if deal_id is not None:
        deal: Deal = await _one(s, Deal, deal_id, visible_deals(actor), "deal")
        t.deal_id = deal.id
        client_id = client_id or deal.client_id
        lead_id = lead_id or deal.lead_id
    if lead_id is not None:
        lead: Lead = await _one(s, Lead, lead_id, visible_leads(actor), "lead")
        t.lead_id = lead.id
        client_id = client_id or lead.client_id
    if client_id is not None:
        client: Client = await _one(s, Client, client_id, visible_clients(actor), "client")
        t.client_id = client.id
    return t


async def _points(s: AsyncSession, t: Target, kind: str) -> list[ContactPoint]:
    conds = []
    if t.client_id is not None:
        conds.append(ContactPoint.client_id == t.client_id)
    if t.lead_id is not None:
        conds.append(ContactPoint.lead_id == t.lead_id)
    if not conds:
        return []
    from sqlalchemy import or_

    q = (
        select(ContactPoint)
        .where(ContactPoint.kind == kind, or_(*conds))
        .order_by(ContactPoint.unreachable, ContactPoint.id)
    )
    return list(await s.scalars(q))


async def start_call(
    s: AsyncSession,
    actor: Actor,
    *,
    number: str | None = None,
    target: Target,
    idempotency_key: str | None = None,
    pbx: str | None = None,
    region: str = "RU",
) -> OutboxCommand:
    """Click-to-call: the actor's extension rings first, then the client's number."""
    user = await s.get(User, actor.user_id)
    if user is None or not user.extension:
        raise Invalid("you have no phone extension: ask an admin to set one", "extension")
    if number:
        try:
            e164 = normalize_phone(number, region).e164
        except IdentityError as exc:
            raise Invalid(str(exc), "number") from None
        if not actor.is_admin and target.client_id is None and target.lead_id is None:
            # A bare number: allowed only if it is not someone else's client.
            cp = await s.scalar(
                select(ContactPoint).where(ContactPoint.kind == "phone", ContactPoint.value == e164)
            )
            if cp is not None and (cp.client_id or cp.lead_id):
                found = await resolve_target(
                    s, actor, client_id=cp.client_id, lead_id=None if cp.client_id else cp.lead_id
                )
                target.client_id, target.lead_id = found.client_id, found.lead_id
    else:
        phones = await _points(s, target, "phone")
        if not phones:
            raise Invalid(
                "no phone number to call: give `number` or a client with a phone", "number"
            )
        e164 = phones[0].value
    key = idempotency_key or f"call-{uuid.uuid4().hex}"
    payload = {
        "extension": user.extension,
        "number": e164,
        "crm_call_id": key,
        "pbx": pbx,
        "caller_id": user.name or None,
    }
    row, created = await enqueue(
        s,
        channel="call",
        kind="originate",
        payload=payload,
        idempotency_key=key,
        created_by=actor.user_id,
        client_id=target.client_id,
        lead_id=target.lead_id,
        deal_id=target.deal_id,
        task_id=target.task_id,
    )
    if created:
        await audit(s, actor, "call.start", "outbox", row.id, {"number": e164})
    return row


def _addresses(values: list[str] | None, field: str) -> list[str]:
    out = []
    for v in values or []:
        try:
            out.append(normalize_email(v))
        except IdentityError as exc:
            raise Invalid(str(exc), field) from None
    return out


async def send_email(
    s: AsyncSession,
    actor: Actor,
    *,
    target: Target,
    to: list[str] | None,
    cc: list[str] | None,
    subject: str,
    text: str | None,
    html: str | None,
    reply_to: int | None = None,
    attachments: list[dict[str, Any]] | None = None,
    from_address: str,
    idempotency_key: str | None = None,
) -> OutboxCommand:
    """An email in the thread: Message-ID, In-Reply-To, References and the subject token."""
    if not (text or html):
        raise Invalid("an email needs `text` or `html`", "text")
    recipients = _addresses(to, "to")
    copies = _addresses(cc, "cc")
    in_reply_to = None
    references: list[str] = []
    thread_id = None
    if reply_to is not None:
        prev: Interaction = await _one(
            s, Interaction, reply_to, visible_interactions(actor), "interaction"
        )
        if prev.channel != "email" or not prev.message_key:
            raise Invalid(f"interaction {reply_to} is not an email", "reply_to")
        in_reply_to = f"<{prev.message_key}>"
        references = [f"<{r.strip('<>')}>" for r in (prev.meta or {}).get("references") or []]
        references = [r for r in dict.fromkeys(references) if r != in_reply_to][-20:]
        references.append(in_reply_to)
        thread_id = prev.thread_id
        target.client_id = target.client_id or prev.client_id
        target.lead_id = target.lead_id or prev.lead_id
        target.deal_id = target.deal_id or prev.deal_id
        if not recipients and prev.direction == "in":
            sender = (prev.meta or {}).get("reply_to") or (prev.meta or {}).get("from") or []
            if isinstance(sender, str):  # the email parser stores one address
                sender = [sender]
            sender = [str(i) for i in sender if i]
            recipients = _addresses(sender, "to") if sender else []
    if not recipients:
        recipients = [p.value for p in await _points(s, target, "email") if not p.unreachable][:1]
    if not recipients:
        raise Invalid("no recipient: give `to` or a client with an email address", "to")
    token = (
        f"[#D-{target.deal_id}]"
        if target.deal_id
        else (f"[#L-{target.lead_id}]" if target.lead_id and not target.client_id else "")
    )
    subj = subject.strip()
    if token and token not in subj:
        subj = f"{subj} {token}".strip()
    key = idempotency_key or f"email-{uuid.uuid4().hex}"
    # Lower-case domain: Message-IDs are compared the way the email parser normalizes
    # them (``normalize_message_id``), so a stored id and a reference always match.
    domain = from_address.rsplit("@", 1)[-1].strip().strip(">").lower() or "localhost"
    row, created = await enqueue(
        s,
        channel="email",
        kind="send_email",
        payload={},
        idempotency_key=key,
        created_by=actor.user_id,
        client_id=target.client_id,
        lead_id=target.lead_id,
        deal_id=target.deal_id,
        task_id=target.task_id,
    )
    if created:
        # Our Message-ID names the outbox row, so a reply finds its thread even when the
        # client's mail program keeps only In-Reply-To.
        message_id = f"<crmhub.o{row.id}.{secrets.token_hex(4)}@{domain}>"
        row.payload = {
            "from": from_address,
            "to": recipients,
            "cc": copies,
            "subject": subj,
            "text": text,
            "html": sanitize_outbound_html(html) if html else None,
            "attachments": attachments or [],
            "message_id": message_id,
            "in_reply_to": in_reply_to,
            "references": references,
            "thread_id": thread_id or message_id.strip("<>"),
        }
        await audit(s, actor, "email.send", "outbox", row.id, {"to": recipients, "subject": subj})
    return row


async def send_message(
    s: AsyncSession,
    actor: Actor,
    *,
    target: Target,
    text: str,
    files: list[str] | None = None,
    idempotency_key: str | None = None,
) -> OutboxCommand:
    """A reply by the messenger the client last wrote from (Telegram or VK)."""
    if not text.strip():
        raise Invalid("`text` is empty", "text")
    conds = []
    if target.client_id:
        conds.append(Interaction.client_id == target.client_id)
    if target.lead_id:
        conds.append(Interaction.lead_id == target.lead_id)
    if not conds:
        raise Invalid("give client_id, lead_id or deal_id", "client_id")
    from sqlalchemy import or_

    last = await s.scalar(
        select(Interaction)
        .where(
            or_(*conds), Interaction.channel.in_(["telegram", "vk"]), Interaction.direction == "in"
        )
        .order_by(Interaction.occurred_at.desc(), Interaction.id.desc())
        .limit(1)
    )
    if last is None:
        raise Invalid("this client has not written from Telegram or VK yet", "client_id")
    meta = last.meta or {}
    key = idempotency_key or f"msg-{uuid.uuid4().hex}"
    payload: dict[str, Any]
    if last.channel == "telegram":
        chat_id = meta.get("chat_id") or meta.get("user_id")
        payload = {
            "bot": meta.get("bot"),
            "chat_id": chat_id,
            "text": text,
            "files": files or [],
        }
        if meta.get("business_connection_id"):
            payload["business_connection_id"] = meta["business_connection_id"]
        person = meta.get("user_id") or chat_id
    else:
        from random import SystemRandom

        peer_id = meta.get("peer_id") or meta.get("from_id") or meta.get("user_id")
        payload = {
            "group_id": meta.get("group_id"),
            "peer_id": peer_id,
            "text": text,
            "files": files or [],
            # Stored with the command: VK drops a second send with the same random_id,
            # so a retry after a lost answer never delivers twice.
            "random_id": SystemRandom().randint(1, 2**31 - 1),
        }
        person = meta.get("from_id") or meta.get("user_id") or peer_id
    if not (payload.get("chat_id") or payload.get("peer_id")):
        raise Invalid(f"the last {last.channel} message names no chat to answer", "client_id")
    point = await s.scalar(
        select(ContactPoint).where(
            ContactPoint.kind == last.channel, ContactPoint.value == str(person)
        )
    )
    if point is not None and point.unreachable:
        reason = point.unreachable_reason or "unreachable"
        raise Invalid(f"the client cannot be reached on {last.channel}: {reason}", "client_id")
    payload["thread_id"] = last.thread_id
    row, created = await enqueue(
        s,
        channel=last.channel,
        kind="send_message",
        payload=payload,
        idempotency_key=key,
        created_by=actor.user_id,
        client_id=target.client_id or last.client_id,
        lead_id=target.lead_id or last.lead_id,
        deal_id=target.deal_id,
    )
    if created:
        await audit(s, actor, "message.send", "outbox", row.id, {"channel": last.channel})
    return row
