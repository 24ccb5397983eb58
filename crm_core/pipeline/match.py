"""Step 3, ``match``: who is this?  Contact points first, then the thread, then open leads."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.events import Channel, InboundEvent
from crm_core.models import Client, ContactPerson, ContactPoint, Deal, Interaction, Lead

__all__ = [
    "BATCH_POINTS",
    "OPEN_LEAD_STATUSES",
    "Match",
    "match_event",
    "parse_our_message_id",
    "prefetch_points",
]

# ``session.info`` key of a batch's contact points (identity -> point, None: there is
# none), loaded once per batch transaction by :func:`prefetch_points` and kept current by
# the pipeline as it creates points; without it every event queries its own.
BATCH_POINTS = "crmhub.batch_points"

OPEN_LEAD_STATUSES = ("new", "in_progress")
# Our outbound Message-IDs name the outbox command whose sent email is the interaction:
# <crmhub.o123.5f1c2e@mail.example.ru>
_OUR_MSGID = re.compile(r"^crmhub\.o(\d+)\.[0-9a-z]+@", re.IGNORECASE)


def parse_our_message_id(ref: str) -> int | None:
    """The outbox id encoded in one of our Message-IDs, or None."""
    m = _OUR_MSGID.match(ref.strip("<>"))
    return int(m.group(1)) if m else None


@dataclass(slots=True)
class Match:
    points: dict[str, ContactPoint] = field(default_factory=dict)  # identity -> point
    client: Client | None = None
    person: ContactPerson | None = None  # the company's contact person whose point matched
    lead: Lead | None = None  # an open lead of the same identity
    deal_id: int | None = None  # from the thread or a subject token
    thread_id: str | None = None
    thread_interaction: Interaction | None = None
    how: str = "none"  # contact_point | thread | lead | none

    @property
    def known(self) -> bool:
        return self.client is not None or self.lead is not None


@functools.lru_cache(maxsize=32)
def _points_query(n: int) -> Any:
    """Contact points of ``n`` (kind, value) pairs, ``k0``/``v0`` ...: ORs of equalities,
    one seek each on the (kind, value) unique index on both databases (SQLite runs a
    row-value IN as a scan of that index).  Built once per ``n``."""
    cp = ContactPoint
    pairs = ((cp.kind == bindparam(f"k{i}")) & (cp.value == bindparam(f"v{i}")) for i in range(n))
    return select(cp).where(or_(*pairs))


async def match_event(s: AsyncSession, event: InboundEvent) -> Match:
    m = Match()
    pairs = [tuple(i.split(":", 1)) for i in event.identities if ":" in i]
    known: dict[str, ContactPoint | None] | None = s.info.get(BATCH_POINTS)
    if pairs and known is not None and all(f"{k}:{v}" in known for k, v in pairs):
        for k, v in pairs:
            point = known[f"{k}:{v}"]
            if point is not None:
                m.points[f"{k}:{v}"] = point
    elif pairs:
        params = {f"k{i}": k for i, (k, _) in enumerate(pairs)}
        params.update({f"v{i}": v for i, (_, v) in enumerate(pairs)})
        rows = await s.scalars(_points_query(len(pairs)), params)
        for point in rows:
            m.points[f"{point.kind}:{point.value}"] = point
    # Identities in the event's order: the sender's address before signature phones.
    for ident in event.identities:
        cp = m.points.get(ident)
        if cp is None:
            continue
        client_id = cp.client_id
        person: ContactPerson | None = None
        if cp.contact_person_id is not None:
            person = await s.get(ContactPerson, cp.contact_person_id)
            client_id = person.client_id if person else client_id
        if client_id is not None and m.client is None:
            m.client = await s.get(Client, client_id)
            m.how = "contact_point"
            if person is not None and person.client_id == client_id:
                m.person = person
        if cp.lead_id is not None and m.lead is None:
            lead = await s.get(Lead, cp.lead_id)
            if lead is not None and lead.status in OPEN_LEAD_STATUSES:
                m.lead = lead
                if m.how == "none":
                    m.how = "lead"
                if m.client is None and lead.client_id is not None:
                    m.client = await s.get(Client, lead.client_id)
    if m.client is not None and m.lead is None:
        # A known client's request still open as a lead (e.g. a second form the same day).
        m.lead = await s.scalar(
            select(Lead)
            .where(Lead.client_id == m.client.id, Lead.status.in_(OPEN_LEAD_STATUSES))
            .order_by(Lead.id.desc())
            .limit(1)
        )
    await _match_thread(s, event, m)
    return m


async def prefetch_points(s: AsyncSession, events: list[InboundEvent]) -> None:
    """Load, in a few queries, the contact points of every identity of ``events`` and the
    leads, clients and contact persons they name into the session, and set
    :data:`BATCH_POINTS`: :func:`match_event` then finds them without a query each."""
    by_kind: dict[str, set[str]] = {}
    for event in events:
        for ident in event.identities:
            kind, sep, value = ident.partition(":")
            if sep:
                by_kind.setdefault(kind, set()).add(value)
    known: dict[str, ContactPoint | None] = {}
    for kind, values in by_kind.items():
        ordered = sorted(values)
        for i in range(0, len(ordered), 500):
            part = ordered[i : i + 500]
            for value in part:
                known.setdefault(f"{kind}:{value}", None)
            rows = await s.scalars(
                select(ContactPoint).where(ContactPoint.kind == kind, ContactPoint.value.in_(part))
            )
            for point in rows:
                known[f"{point.kind}:{point.value}"] = point
    points = [p for p in known.values() if p is not None]
    # The session's identity map holds unchanged objects weakly: keep them for the batch.
    held: list[object] = list(points)
    client_ids = {p.client_id for p in points if p.client_id is not None}
    person_ids = {p.contact_person_id for p in points if p.contact_person_id is not None}
    if person_ids:
        persons = list(
            await s.scalars(select(ContactPerson).where(ContactPerson.id.in_(person_ids)))
        )
        held.extend(persons)
        client_ids |= {p.client_id for p in persons if p.client_id is not None}
    lead_ids = {p.lead_id for p in points if p.lead_id is not None}
    if lead_ids:
        leads = list(await s.scalars(select(Lead).where(Lead.id.in_(lead_ids))))
        held.extend(leads)
        client_ids |= {lead.client_id for lead in leads if lead.client_id is not None}
    if client_ids:
        held.extend(await s.scalars(select(Client).where(Client.id.in_(client_ids))))
    s.info[BATCH_POINTS] = known
    s.info[BATCH_POINTS + ".held"] = held


async def _match_thread(s: AsyncSession, event: InboundEvent, m: Match) -> None:
    refs = [r.strip("<>") for r in event.thread_refs if r]
    if event.channel in (Channel.TELEGRAM, Channel.VK):
        chat = event.meta.get("chat_id") or event.meta.get("peer_id")
        if chat is not None:
            m.thread_id = f"{event.channel.value}:{event.source or ''}:{chat}"
        return
    if event.channel != Channel.EMAIL:
        return
    thread: Interaction | None = None
    our_ids = [i for i in (parse_our_message_id(r) for r in refs) if i is not None]
    if our_ids:
        thread = await s.scalar(select(Interaction).where(Interaction.outbox_id == our_ids[-1]))
    if thread is None and refs:
        thread = await s.scalar(
            select(Interaction)
            .where(Interaction.channel == "email", Interaction.message_key.in_(refs))
            .order_by(Interaction.id.desc())
            .limit(1)
        )
    if thread is not None:
        # Join only when the sender belongs to the thread's client or lead: a reply from
        # another person (a forwarded newsletter) must not merge into someone else's thread.
        same_client = m.client is not None and thread.client_id == m.client.id
        same_lead = m.lead is not None and thread.lead_id == m.lead.id
        if same_client or same_lead:
            m.thread_interaction = thread
            m.thread_id = thread.thread_id
            m.deal_id = thread.deal_id
            if m.how == "none":
                m.how = "thread"
    token = event.meta.get("subject_token")
    if isinstance(token, dict):
        # The client's mail program dropped the headers: the subject token joins the
        # thread, but only when the sender belongs to the token's client (or lead).
        scope = None
        ident = _int(token.get("id"))
        if token.get("kind") == "deal" and m.client is not None and ident:
            deal = await s.get(Deal, ident)
            if deal is not None and deal.client_id == m.client.id:
                m.deal_id = m.deal_id or deal.id
                scope = Interaction.deal_id == deal.id
        elif token.get("kind") == "lead" and m.lead is not None and ident == m.lead.id:
            scope = Interaction.lead_id == m.lead.id
        if scope is not None and m.thread_id is None:
            last = await s.scalar(
                select(Interaction)
                .where(scope, Interaction.channel == "email", Interaction.thread_id.is_not(None))
                .order_by(Interaction.id.desc())
                .limit(1)
            )
            if last is not None:
                m.thread_interaction = last
                m.thread_id = last.thread_id
                if m.how == "none":
                    m.how = "thread"
    if m.thread_id is None:
        m.thread_id = refs[0] if refs else event.external_id


def _int(value: object) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None
