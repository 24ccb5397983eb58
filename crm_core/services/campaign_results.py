"""What campaigns brought: per-campaign counts, the recipients list as rows for an
export, and the analytics report "campaigns": replies turned into leads and deals.

Attribution (the analytics report): a recipient who **replied** (status ``replied``)
"turned into" the leads of their client created from the moment the message went
(``sent_at``) until ``ATTRIBUTION_DAYS`` later, and the deals of that client created in
the same window (won: stage ``won``, with their amount).  A client who got a campaign
twice counts for each campaign that reached them.  Every figure is aggregated in the
database, one statement per page of campaigns; leads and deals count only where the
actor may see them (a manager: their own).

Opens and clicks are not reported: tracking is off (no pixel, no redirected links).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, case, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.access import Actor, visible_clients, visible_deals, visible_leads
from crm_core.models import Campaign, CampaignRecipient, Client, Deal, Lead
from crm_core.services.common import NotFound, count_capped, iso

__all__ = [
    "ATTRIBUTION_DAYS",
    "RECIPIENT_STATUSES",
    "campaign_counts",
    "campaigns_report",
    "recipient_rows",
    "recipients_with_names",
]

RECIPIENT_STATUSES = (
    "pending",
    "sending",
    "sent",
    "failed",
    "bounced",
    "unsubscribed",
    "replied",
    "suppressed",
    "unknown",
)
# The statuses of a message the SMTP server accepted (a reply, a bounce or an unsubscribe
# came after): counted from the status alone, the (campaign_id, status, id) index answers.
SENT_STATUSES = ("sent", "replied", "bounced", "unsubscribed")
# A lead or deal this long after the message still counts as the campaign's.
ATTRIBUTION_DAYS = 90
EXPORT_BATCH = 1000


def _is_postgres(s: AsyncSession) -> bool:
    return bool(s.get_bind().dialect.name == "postgresql")


def _until(s: AsyncSession, column: Any) -> Any:
    """``column`` + ATTRIBUTION_DAYS, in the database's own date arithmetic."""
    if _is_postgres(s):
        return column + literal_column(f"interval '{ATTRIBUTION_DAYS} days'")
    # SQLite keeps UTC as 'YYYY-MM-DD HH:MM:SS.ffffff': the same shape compares as text.
    return func.strftime("%Y-%m-%d %H:%M:%f", column, f"+{ATTRIBUTION_DAYS} days")


def _money(value: Any) -> str:
    amount = Decimal(value or 0).quantize(Decimal("0.01"))
    return str(amount)


async def campaign_counts(s: AsyncSession, campaign_id: int) -> dict[str, Any]:
    """Counts of one campaign's recipients by status, plus ``sent_total`` (every message
    the SMTP server accepted, whatever happened after: a reply, a bounce, an unsubscribe;
    an ``unknown`` one is not counted: nobody knows)."""
    if await s.get(Campaign, campaign_id) is None:
        raise NotFound(f"campaign {campaign_id} not found")
    r = CampaignRecipient
    rows = (
        await s.execute(
            select(r.status, func.count()).where(r.campaign_id == campaign_id).group_by(r.status)
        )
    ).all()
    counts = dict.fromkeys(RECIPIENT_STATUSES, 0)
    for status, n in rows:
        counts[status] = counts.get(status, 0) + int(n)
    sent_total = sum(counts[st] for st in SENT_STATUSES)
    return {"counts": counts, "total": sum(counts.values()), "sent_total": sent_total}


def _replied(campaign_ids: Any) -> Any:
    """(campaign, client, first sent_at) of every replied recipient with a client."""
    r = CampaignRecipient
    return (
        select(
            r.campaign_id.label("campaign_id"),
            r.client_id.label("client_id"),
            func.min(r.sent_at).label("sent_at"),
        )
        .where(
            r.campaign_id.in_(campaign_ids),
            r.status == "replied",
            r.client_id.is_not(None),
            r.sent_at.is_not(None),
        )
        .group_by(r.campaign_id, r.client_id)
        .cte("replied")
    )


async def campaigns_report(
    s: AsyncSession,
    actor: Actor,
    start: datetime | None,
    end: datetime | None,
    *,
    limit: int = 50,
    offset: int = 0,
) -> dict[str, Any]:
    """Per campaign started in [start, end] (newest first, one page): recipients, sent,
    failed, bounced, unsubscribed, replied; and from the replies, leads and deals (count,
    won, won amount).  One statement: the page of campaigns, its recipients' counts and
    the leads and deals of the replied clients, each aggregated once."""
    c = Campaign
    page = select(c.id).where(c.started_at.is_not(None))
    if start is not None:
        page = page.where(c.started_at >= start)
    if end is not None:
        page = page.where(c.started_at < end)
    total = int(await s.scalar(select(func.count()).select_from(page.subquery())) or 0)
    ids = page.order_by(c.started_at.desc(), c.id.desc()).limit(limit).offset(offset).cte("page")
    id_list = select(ids.c.id)

    r = CampaignRecipient
    per_status = {
        st: func.count(case((r.status == st, 1)))
        for st in ("failed", "bounced", "unsubscribed", "replied", "unknown")
    }
    recipients = (
        select(
            r.campaign_id.label("campaign_id"),
            func.count().label("recipients"),
            func.count(case((r.status.in_(SENT_STATUSES), 1))).label("sent"),
            *(expr.label(st) for st, expr in per_status.items()),
        )
        .where(r.campaign_id.in_(id_list))
        .group_by(r.campaign_id)
        .subquery("rcpt")
    )
    replied = _replied(id_list)
    leads = (
        select(
            replied.c.campaign_id.label("campaign_id"),
            func.count(func.distinct(Lead.id)).label("leads"),
        )
        .join(
            Lead,
            and_(
                Lead.client_id == replied.c.client_id,
                Lead.created_at >= replied.c.sent_at,
                Lead.created_at < _until(s, replied.c.sent_at),
            ),
        )
        .where(visible_leads(actor))
        .group_by(replied.c.campaign_id)
        .subquery("lds")
    )
    won = Deal.stage == "won"
    deals = (
        select(
            replied.c.campaign_id.label("campaign_id"),
            func.count(Deal.id).label("deals"),
            func.count(case((won, 1))).label("deals_won"),
            func.coalesce(func.sum(case((won, Deal.amount))), 0).label("won_amount"),
        )
        .join(
            Deal,
            and_(
                Deal.client_id == replied.c.client_id,
                Deal.created_at >= replied.c.sent_at,
                Deal.created_at < _until(s, replied.c.sent_at),
            ),
        )
        .where(visible_deals(actor))
        .group_by(replied.c.campaign_id)
        .subquery("dls")
    )
    stmt = (
        select(
            c.id,
            c.name,
            c.status,
            c.started_at,
            c.finished_at,
            func.coalesce(recipients.c.recipients, 0),
            func.coalesce(recipients.c.sent, 0),
            *(func.coalesce(recipients.c[st], 0) for st in per_status),
            func.coalesce(leads.c.leads, 0),
            func.coalesce(deals.c.deals, 0),
            func.coalesce(deals.c.deals_won, 0),
            func.coalesce(deals.c.won_amount, 0),
        )
        .join(ids, ids.c.id == c.id)
        .outerjoin(recipients, recipients.c.campaign_id == c.id)
        .outerjoin(leads, leads.c.campaign_id == c.id)
        .outerjoin(deals, deals.c.campaign_id == c.id)
        .order_by(c.started_at.desc(), c.id.desc())
    )
    items = []
    for row in (await s.execute(stmt)).all():
        cid, name, status, started, finished, n, sent, *rest = row
        failed, bounced, unsub, replied_n, unknown, n_leads, n_deals, n_won, amount = rest
        items.append(
            {
                "campaign_id": cid,
                "name": name,
                "status": status,
                "started_at": started.isoformat() if started else None,
                "finished_at": finished.isoformat() if finished else None,
                "recipients": int(n),
                "sent": int(sent),
                "failed": int(failed),
                "bounced": int(bounced),
                "unsubscribed": int(unsub),
                "replied": int(replied_n),
                "unknown": int(unknown),
                "leads": int(n_leads),
                "deals": int(n_deals),
                "deals_won": int(n_won),
                "won_amount": _money(amount),
            }
        )
    return {
        "items": items,
        "total": total,
        "limit": limit,
        "offset": offset,
        "attribution_days": ATTRIBUTION_DAYS,
        "leads": sum(i["leads"] for i in items),
        "deals": sum(i["deals"] for i in items),
        "won_amount": _money(sum(Decimal(i["won_amount"]) for i in items)),
    }


async def recipient_rows(
    s: AsyncSession, campaign_id: int, status: str | None = None
) -> AsyncIterator[list[list[Any]]]:
    """The recipients of a campaign (optionally one status), in batches, by keyset on the
    recipient id: client id, client name, address, status, error, sent at, attempts."""
    r = CampaignRecipient
    after = 0
    while True:
        q = (
            select(r.id, r.client_id, Client.name, r.email, r.status, r.error, r.sent_at)
            .add_columns(r.attempts)
            .outerjoin(Client, Client.id == r.client_id)
            .where(r.campaign_id == campaign_id, r.id > after)
            .order_by(r.id)
            .limit(EXPORT_BATCH)
        )
        if status:
            q = q.where(r.status == status)
        rows = (await s.execute(q)).all()
        if not rows:
            return
        after = rows[-1][0]
        yield [
            [cid, name, email, st, err, sent.isoformat() if sent else None, attempts]
            for _, cid, name, email, st, err, sent, attempts in rows
        ]
        if len(rows) < EXPORT_BATCH:
            return


async def recipients_with_names(
    s: AsyncSession,
    actor: Actor,
    campaign_id: int,
    *,
    status: str | None,
    limit: int,
    after: int | None,
) -> dict[str, Any]:
    """One page of a campaign's recipients with their client's name (where the actor
    may see the client), in recipient order, by keyset on the recipient id (``after``:
    the previous page's ``next_after``)."""
    r = CampaignRecipient
    conds: list[Any] = [r.campaign_id == campaign_id]
    if status:
        conds.append(r.status == status)
    total = await count_capped(s, select(r.id).where(*conds), 1_000_000)
    if after is not None:
        conds.append(r.id > after)
    name = (
        select(Client.name)
        .where(Client.id == r.client_id, visible_clients(actor))
        .scalar_subquery()
    )
    rows = (
        await s.execute(
            select(r, name.label("client_name")).where(*conds).order_by(r.id).limit(limit)
        )
    ).all()
    items = [
        {
            "id": rec.id,
            "client_id": rec.client_id,
            "client_name": client_name,
            "contact_person_id": rec.contact_person_id,
            "email": rec.email,
            "status": rec.status,
            "error": rec.error,
            "attempts": rec.attempts,
            "sent_at": iso(rec.sent_at),
            "updated_at": iso(rec.updated_at),
        }
        for rec, client_name in rows
    ]
    return {
        "items": items,
        "total": total,
        "limit": limit,
        "next_after": str(items[-1]["id"]) if len(items) == limit else None,
    }
