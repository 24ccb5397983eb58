"""Campaigns: a mass email to an audience, personalised, each recipient once.

This module holds what the API does with a campaign before and around sending: save
(templates checked at once), the audience (segments, a list filter or chosen clients,
minus exclusions, then which addresses), preview, the state changes (start, pause,
resume, cancel) and the results.  Sending itself is ``crm_core.campaigns``.

Templates are Jinja2 in a ``SandboxedEnvironment`` with ``StrictUndefined``: HTML
autoescaped, text and subject not.  A template that does not parse, or that names
something the recipient data does not have, is refused at save naming ``subject``,
``html`` or ``text`` and the line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy import ColumnElement, Select, and_, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.access import Actor, visible_clients
from crm_core.identity import IdentityError, normalize_email
from crm_core.models import (
    Campaign,
    CampaignRecipient,
    Client,
    ContactPerson,
    ContactPoint,
    CustomField,
    Interaction,
    OutboxCommand,
    Segment,
    User,
    utcnow,
)
from crm_core.services import bulk, consent
from crm_core.services.common import (
    Conflict,
    Forbidden,
    Invalid,
    ListFilter,
    NotFound,
    ServiceError,
    audit,
    count_capped,
    iso,
)

__all__ = [
    "ADDRESS_MODES",
    "CAMPAIGN_STATUSES",
    "RECIPIENT_STATUSES",
    "CampaignPolicy",
    "Rendered",
    "TemplateInvalid",
    "Templates",
    "audience_count",
    "campaign_dict",
    "cancel",
    "check_templates",
    "create_campaign",
    "get_campaign",
    "list_campaigns",
    "mark_unsubscribed",
    "materialize",
    "pause",
    "preview",
    "recipient_context",
    "recipients_page",
    "resume",
    "start",
    "status_counts",
    "update_campaign",
]

CAMPAIGN_STATUSES = ("draft", "scheduled", "sending", "paused", "cancelled", "done")
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
ADDRESS_MODES = ("primary", "all", "contacts")
EDITABLE = ("draft", "scheduled", "paused")
MAX_IDS = 10_000
INSERT_CHUNK = 1000
CAMPAIGN_CHANNEL = "campaign"
CAMPAIGN_KIND = "campaign_email"


@dataclass(frozen=True, slots=True)
class CampaignPolicy:
    """Settings the services need: ``public_url`` (links in messages), whether managers
    may start campaigns to their own clients, the secret that signs unsubscribe links."""

    public_url: str = "http://127.0.0.1:8080"
    managers_allowed: bool = False
    secret: str = ""


# -- templates ------------------------------------------------------------------------


_HTML_ENV = SandboxedEnvironment(autoescape=True, undefined=jinja2.StrictUndefined)
_TEXT_ENV = SandboxedEnvironment(autoescape=False, undefined=jinja2.StrictUndefined)
TEMPLATE_FIELDS = ("subject", "html", "text")


class TemplateInvalid(ServiceError):
    """A template that does not parse or render (HTTP 400 naming subject, html or text)."""


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    html: str
    text: str


class Templates:
    """The three compiled templates of a campaign."""

    def __init__(self, subject: str, html: str, text: str) -> None:
        self.sources = {"subject": subject, "html": html, "text": text}
        self.compiled: dict[str, jinja2.Template] = {}
        for name, source in self.sources.items():
            env = _HTML_ENV if name == "html" else _TEXT_ENV
            try:
                self.compiled[name] = env.from_string(source or "")
            except jinja2.TemplateSyntaxError as exc:
                raise TemplateInvalid(
                    f"{name}: template error on line {exc.lineno}: {exc.message}", name
                ) from None

    def render(self, context: Mapping[str, Any]) -> Rendered:
        """Raises ``TemplateInvalid(field)`` naming the template and the line."""
        out: dict[str, str] = {}
        for name, tpl in self.compiled.items():
            try:
                out[name] = tpl.render(context)
            except jinja2.TemplateError as exc:
                raise TemplateInvalid(f"{name}: {_line(exc)}{exc}", name) from None
            except Exception as exc:  # a type error in an expression: the template's fault
                msg = f"{name}: {_line(exc)}{type(exc).__name__}: {exc}"
                raise TemplateInvalid(msg, name) from None
        subject = " ".join(out["subject"].split())
        return Rendered(subject=subject, html=out["html"], text=out["text"])


def _line(exc: Exception) -> str:
    import traceback

    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename == "<template>":
            return f"line {frame.lineno}: "
    return ""


async def _custom_keys(s: AsyncSession) -> list[str]:
    rows = await s.scalars(
        select(CustomField.key).where(CustomField.entity == "client", CustomField.active)
    )
    return list(rows)


def _sample(custom_keys: Iterable[str], with_contact: bool) -> dict[str, Any]:
    client = {
        "id": 1,
        "name": "ООО Пример",
        "full_name": "ООО Пример",
        "kind": "company",
        "inn": "7707083893",
        "city": "Москва",
        "region": "Москва",
        "industry": "Торговля",
        "website": "https://example.ru",
        "custom": {k: "" for k in custom_keys},
    }
    return {
        "client": client,
        "contact": {"name": "Иван Петров", "position": "Директор"} if with_contact else None,
        "owner": {"name": "Менеджер", "email": "m@example.ru", "phone": "", "signature": ""},
        "unsubscribe_url": "https://crm.example.ru/unsubscribe/sample",
        "campaign": {"name": "sample"},
    }


async def check_templates(
    s: AsyncSession, subject: str, html: str, text: str, addresses: str
) -> Templates:
    """Compile and render with sample data (a client recipient and a contact person
    recipient, as ``addresses`` allows): any error is a 400 at save."""
    if not (subject or "").strip():
        raise Invalid("subject is empty", "subject")
    if not (html or "").strip() and not (text or "").strip():
        raise Invalid("a campaign needs html or text", "text")
    tpl = Templates(subject, html, text)
    keys = await _custom_keys(s)
    if addresses != "contacts":
        _check_render(tpl, _sample(keys, False), "when the recipient is the client itself")
    if addresses != "primary":
        _check_render(tpl, _sample(keys, True), "when the recipient is a contact person")
    return tpl


def _check_render(tpl: Templates, ctx: dict[str, Any], when: str) -> None:
    try:
        tpl.render(ctx)
    except TemplateInvalid as exc:
        hint = ""
        if ctx["contact"] is None and ("contact" in exc.message or "'None'" in exc.message):
            hint = " (there is no contact person: use {% if contact %} ... {% endif %})"
        raise TemplateInvalid(f"{exc.message} ({when}){hint}", exc.field) from None


# -- recipient data -------------------------------------------------------------------


async def with_secret(s: AsyncSession, policy: CampaignPolicy) -> CampaignPolicy:
    """The policy with the installation's signing secret (the setting, else the one
    kept in the database; the first call writes it: call inside a transaction)."""
    if policy.secret:
        return policy
    return replace(policy, secret=await consent.signing_secret(s, None))


def unsubscribe_link(policy: CampaignPolicy, campaign_id: int, email: str) -> str:
    """The one place a campaign message's unsubscribe link is made (signed by the
    consent service; the link's page works without login)."""
    if not email:  # a preview for a client without an address
        return f"{policy.public_url.rstrip('/')}/u/preview"
    token = consent.make_unsubscribe_token(policy.secret, email, campaign_id)
    return consent.unsubscribe_url(policy.public_url, token)


def unsubscribe_headers(url: str) -> dict[str, str]:
    """The one place the RFC 8058 headers are made."""
    return consent.list_unsubscribe_headers(url)


async def suppressed_among(s: AsyncSession, emails: list[str]) -> set[str]:
    """The one place suppression is asked (unsubscribed, bounced, complained, withdrawn)."""
    return await consent.suppressed(s, emails)


def client_context(client: Client, custom_keys: Iterable[str]) -> dict[str, Any]:
    custom = {k: "" for k in custom_keys}
    custom.update({k: v for k, v in (client.custom or {}).items() if v is not None})
    return {
        "id": client.id,
        "name": client.name,
        "full_name": client.full_name or client.name,
        "kind": client.kind,
        "inn": client.inn or "",
        "city": client.city or "",
        "region": client.region or "",
        "industry": client.industry or "",
        "website": client.website or "",
        "custom": custom,
    }


def owner_context(user: User | None) -> dict[str, Any]:
    if user is None:
        return {"name": "", "email": "", "phone": "", "signature": ""}
    return {
        "name": user.name or "",
        "email": user.email,
        "phone": user.phone or "",
        "signature": user.signature or "",
    }


async def recipient_context(
    s: AsyncSession,
    policy: CampaignPolicy,
    campaign: Campaign,
    client: Client,
    contact: ContactPerson | None,
    email: str,
    custom_keys: Iterable[str] | None = None,
) -> dict[str, Any]:
    keys = custom_keys if custom_keys is not None else await _custom_keys(s)
    owner = await s.get(User, client.owner_id) if client.owner_id else None
    return {
        "client": client_context(client, keys),
        "contact": {"name": contact.name, "position": contact.position or ""} if contact else None,
        "owner": owner_context(owner),
        "unsubscribe_url": unsubscribe_link(policy, campaign.id, email),
        "campaign": {"name": campaign.name},
    }


# -- saving ---------------------------------------------------------------------------


def _may_manage(actor: Actor, policy: CampaignPolicy) -> None:
    if actor.is_admin or actor.is_supervisor:
        return
    if not policy.managers_allowed:
        raise Forbidden("only admins and supervisors send campaigns", "role")


def visible_campaigns(actor: Actor) -> ColumnElement[bool]:
    if actor.is_admin or actor.is_supervisor:
        return Campaign.id.is_not(None)
    return Campaign.created_by == actor.user_id


async def get_campaign(s: AsyncSession, actor: Actor, campaign_id: int) -> Campaign:
    row = await s.scalar(
        select(Campaign).where(Campaign.id == campaign_id, visible_campaigns(actor))
    )
    if row is None:
        raise NotFound(f"campaign {campaign_id} not found")
    return row


def _ids(value: Any, field: str) -> list[int]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_IDS:
        raise Invalid(f"{field} must be a list of at most {MAX_IDS} ids", field)
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise Invalid(f"{field}: {v!r} is not an id", field)
        out.append(v)
    return sorted(set(out))


async def _check_segments(s: AsyncSession, ids: list[int], field: str) -> None:
    if not ids:
        return
    found = set(await s.scalars(select(Segment.id).where(Segment.id.in_(ids))))
    missing = [i for i in ids if i not in found]
    if missing:
        raise Invalid(f"{field}: segment {missing[0]} does not exist", field)


def _clean_audience(data: Mapping[str, Any]) -> dict[str, Any]:
    """The audience part of a request, checked for shape (existence at save/start)."""
    segment_ids = _ids(data.get("segment_ids"), "segment_ids")
    client_ids = _ids(data.get("client_ids"), "client_ids")
    flt = data.get("filter")
    if flt is not None and not isinstance(flt, dict):
        raise Invalid("filter must be an object (the clients list's filters)", "filter")
    given = [bool(segment_ids), flt is not None, bool(client_ids)]
    if sum(given) == 0:
        raise Invalid("give segment_ids, filter or client_ids", "segment_ids")
    days = data.get("exclude_contacted_days")
    if days is not None and (isinstance(days, bool) or not isinstance(days, int) or days < 1):
        raise Invalid(
            "exclude_contacted_days must be a positive number of days", "exclude_contacted_days"
        )
    addresses = data.get("addresses") or "primary"
    if addresses not in ADDRESS_MODES:
        raise Invalid(f"addresses must be one of {', '.join(ADDRESS_MODES)}", "addresses")
    positions = data.get("positions") or []
    if not isinstance(positions, list) or not all(isinstance(p, str) for p in positions):
        raise Invalid("positions must be a list of texts", "positions")
    return {
        "segment_ids": segment_ids,
        "filter": flt,
        "client_ids": client_ids,
        "exclude_segment_ids": _ids(data.get("exclude_segment_ids"), "exclude_segment_ids"),
        "exclude_client_ids": _ids(data.get("exclude_client_ids"), "exclude_client_ids"),
        "exclude_contacted_days": days,
        "addresses": addresses,
        "positions": [p.strip() for p in positions if p.strip()][:50],
    }


AUDIENCE_KEYS = (
    "segment_ids",
    "filter",
    "client_ids",
    "exclude_segment_ids",
    "exclude_client_ids",
    "exclude_contacted_days",
    "addresses",
    "positions",
)


def _send_at(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise Invalid("send_at must be an ISO date and time", "send_at") from None
    if moment.tzinfo is None:
        raise Invalid("send_at needs a time zone (e.g. +03:00 or Z)", "send_at")
    return moment


def _name(value: Any) -> str:
    name = str(value or "").strip()
    if not name or len(name) > 200:
        raise Invalid("name must be 1-200 characters", "name")
    return name


async def create_campaign(
    s: AsyncSession,
    actor: Actor,
    policy: CampaignPolicy,
    data: Mapping[str, Any],
    smtp_accounts: Iterable[str] = ("default",),
) -> Campaign:
    _may_manage(actor, policy)
    audience = _clean_audience(data)
    await _check_segments(s, audience["segment_ids"], "segment_ids")
    await _check_segments(s, audience["exclude_segment_ids"], "exclude_segment_ids")
    if audience["filter"] is not None:
        await _selection(s, actor, {"filters": audience["filter"]})  # refuses unknown filters
    account = str(data.get("smtp_account") or "default")
    if account not in set(smtp_accounts):
        raise Invalid(f"smtp_account {account!r} is not configured", "smtp_account")
    subject, html, text = (str(data.get(k) or "") for k in TEMPLATE_FIELDS)
    await check_templates(s, subject, html, text, audience["addresses"])
    row = Campaign(
        name=_name(data.get("name")),
        subject=subject,
        html=html,
        text=text,
        audience=audience,
        smtp_account=account,
        send_at=_send_at(data.get("send_at")),
        created_by=actor.user_id,
        status="draft",
    )
    s.add(row)
    await s.flush()
    await audit(s, actor, "campaign.create", "campaign", row.id, {"name": row.name})
    return row


async def update_campaign(
    s: AsyncSession,
    actor: Actor,
    policy: CampaignPolicy,
    campaign_id: int,
    data: Mapping[str, Any],
    smtp_accounts: Iterable[str] = ("default",),
) -> Campaign:
    _may_manage(actor, policy)
    row = await get_campaign(s, actor, campaign_id)
    if row.status != "draft":
        raise Conflict(
            f"campaign {campaign_id} is {row.status}: only a draft can be edited", "status"
        )
    if "name" in data:
        row.name = _name(data["name"])
    if any(k in data for k in AUDIENCE_KEYS):
        merged = {**row.audience, **{k: data[k] for k in AUDIENCE_KEYS if k in data}}
        audience = _clean_audience(merged)
        await _check_segments(s, audience["segment_ids"], "segment_ids")
        await _check_segments(s, audience["exclude_segment_ids"], "exclude_segment_ids")
        if audience["filter"] is not None:
            await _selection(s, actor, {"filters": audience["filter"]})
        row.audience = audience
    if "smtp_account" in data:
        account = str(data["smtp_account"] or "default")
        if account not in set(smtp_accounts):
            raise Invalid(f"smtp_account {account!r} is not configured", "smtp_account")
        row.smtp_account = account
    if "send_at" in data:
        row.send_at = _send_at(data["send_at"])
    for k in TEMPLATE_FIELDS:
        if k in data:
            setattr(row, k, str(data[k] or ""))
    await check_templates(
        s, row.subject, row.html, row.text, row.audience.get("addresses", "primary")
    )
    await audit(s, actor, "campaign.update", "campaign", row.id, {"fields": sorted(data)})
    await s.flush()
    return row


# -- the audience -----------------------------------------------------------------------


async def _selection(s: AsyncSession, actor: Actor, selection: dict[str, Any]) -> Select[Any]:
    """``SELECT clients.id``: a segment through the mass operations' selection, the
    clients list's filters through the list's own conditions."""
    if "filters" in selection:
        return await _filter_query(s, actor, selection["filters"] or {})
    return await bulk.select_clients(s, actor, selection)


FILTER_BASE = ("phone", "email", "owner_id", "status", "q")


async def _filter_query(s: AsyncSession, actor: Actor, filters: Mapping[str, Any]) -> Select[Any]:
    from crm_core.services.clients import _conditions

    def moment(key: str) -> datetime | None:
        raw = filters.get(key)
        if raw is None:
            return None
        try:
            return datetime.fromisoformat(str(raw))
        except ValueError:
            raise Invalid(f"filter.{key} must be an ISO date or time", f"filter.{key}") from None

    base = {k: filters.get(k) for k in FILTER_BASE}
    extra = {
        k: v
        for k, v in filters.items()
        if k not in FILTER_BASE and k not in ("created_from", "created_to", "sort")
    }
    flt = ListFilter(
        phone=base["phone"],
        email=base["email"],
        owner_id=int(base["owner_id"]) if base["owner_id"] is not None else None,
        status=base["status"],
        q=base["q"],
        created_from=moment("created_from"),
        created_to=moment("created_to"),
        extra=extra,
    )
    return select(Client.id).where(visible_clients(actor), *await _conditions(s, flt))


async def _audience_clients(
    s: AsyncSession, actor: Actor, audience: Mapping[str, Any]
) -> Select[Any]:
    """``SELECT clients.id`` of the audience, after exclusions; only clients the starter
    may see (a manager: their own)."""
    parts: list[Any] = []
    seg_ids = list(audience.get("segment_ids") or [])
    segs = {g.id: g for g in await s.scalars(select(Segment).where(Segment.id.in_(seg_ids)))}
    for sid in seg_ids:
        seg = segs.get(sid)
        if seg is None:
            raise Invalid(f"segment {sid} no longer exists", "segment_ids")
        q = await _selection(s, actor, {"segment_id": sid, "segment_kind": seg.kind})
        parts.append(Client.id.in_(q))
    if audience.get("filter") is not None:
        parts.append(Client.id.in_(await _selection(s, actor, {"filters": audience["filter"]})))
    if audience.get("client_ids"):
        parts.append(Client.id.in_(list(audience["client_ids"])))
    conds: list[Any] = [or_(*parts), visible_clients(actor)]
    ex_ids = list(audience.get("exclude_segment_ids") or [])
    if ex_ids:
        exs = {g.id: g for g in await s.scalars(select(Segment).where(Segment.id.in_(ex_ids)))}
        for sid in ex_ids:
            seg = exs.get(sid)
            if seg is None:
                raise Invalid(f"segment {sid} no longer exists", "exclude_segment_ids")
            q = await _selection(s, actor, {"segment_id": sid, "segment_kind": seg.kind})
            conds.append(Client.id.not_in(q))
    if audience.get("exclude_client_ids"):
        conds.append(Client.id.not_in(list(audience["exclude_client_ids"])))
    days = audience.get("exclude_contacted_days")
    if days:
        since = utcnow() - timedelta(days=int(days))
        conds.append(or_(Client.last_contact_at.is_(None), Client.last_contact_at < since))
        mailed = select(CampaignRecipient.client_id).where(
            CampaignRecipient.sent_at >= since, CampaignRecipient.client_id.is_not(None)
        )
        conds.append(Client.id.not_in(mailed))
    return select(Client.id).where(*conds)


def _addresses_query(clients: Select[Any], audience: Mapping[str, Any]) -> Select[Any]:
    mode = audience.get("addresses") or "primary"
    q: Any = (
        select(
            ContactPoint.client_id,
            ContactPoint.contact_person_id,
            ContactPoint.value,
            ContactPerson.position,
        )
        .outerjoin(ContactPerson, ContactPerson.id == ContactPoint.contact_person_id)
        .where(
            ContactPoint.kind == "email",
            ContactPoint.client_id.in_(clients),
            ContactPoint.unreachable.is_(False),
        )
        .order_by(
            ContactPoint.client_id, ContactPoint.contact_person_id.is_not(None), ContactPoint.id
        )
    )
    if mode == "contacts":
        q = q.where(ContactPoint.contact_person_id.is_not(None))
        positions = [p.lower() for p in audience.get("positions") or []]
        if positions:
            q = q.where(
                or_(
                    *[
                        func.lower(ContactPerson.position).contains(p, autoescape=True)
                        for p in positions
                    ]
                )
            )
    return q


async def _addresses(
    s: AsyncSession, actor: Actor, audience: Mapping[str, Any]
) -> list[tuple[int, int | None, str]]:
    """(client, contact person, address) of every recipient, one per address."""
    clients = await _audience_clients(s, actor, audience)
    mode = audience.get("addresses") or "primary"
    out: list[tuple[int, int | None, str]] = []
    seen_clients: set[int] = set()
    seen: set[str] = set()
    for client_id, person_id, value, _pos in (
        await s.execute(_addresses_query(clients, audience))
    ).all():
        if mode == "primary":
            if client_id in seen_clients:
                continue
            seen_clients.add(client_id)
        key = value.lower()
        if key in seen:
            continue
        seen.add(key)
        out.append((client_id, person_id, value))
    return out


async def audience_count(s: AsyncSession, actor: Actor, campaign: Campaign) -> dict[str, int]:
    """Before start: how many clients and addresses, and how many are suppressed."""
    if campaign.materialized:
        total = await s.scalar(
            select(func.count()).where(CampaignRecipient.campaign_id == campaign.id)
        )
        return {"clients": int(campaign.total), "addresses": int(total or 0), "suppressed": 0}
    starter = await _starter(s, actor, campaign)
    clients = await _audience_clients(s, starter, campaign.audience)
    n_clients = await count_capped(s, clients, 1_000_000)
    rows = await _addresses(s, starter, campaign.audience)
    emails = [r[2] for r in rows]
    suppressed = await suppressed_among(s, emails) if emails else set()
    return {"clients": n_clients, "addresses": len(rows), "suppressed": len(suppressed)}


async def _starter(s: AsyncSession, actor: Actor, campaign: Campaign) -> Actor:
    who = campaign.started_by or actor.user_id
    user = await s.get(User, who)
    return Actor.of(user) if user is not None else actor


async def materialize(s: AsyncSession, campaign: Campaign, actor: Actor) -> int:
    """Write the recipient list (and one outbox command per recipient to send) in the
    caller's transaction; invalid addresses are ``failed`` with the reason, suppressed
    ones ``suppressed``.  Returns the number of recipients."""
    rows = await _addresses(s, actor, campaign.audience)
    suppressed = await suppressed_among(s, [r[2] for r in rows]) if rows else set()
    now = utcnow()
    n = 0
    for start_i in range(0, len(rows), INSERT_CHUNK):
        chunk = rows[start_i : start_i + INSERT_CHUNK]
        values = []
        for client_id, person_id, value in chunk:
            status, error = "pending", None
            try:
                email = normalize_email(value)
            except IdentityError as exc:
                email, status, error = value[:320], "failed", str(exc)
            if status == "pending" and (email in suppressed or value in suppressed):
                status, error = "suppressed", "the address is suppressed (unsubscribed or bounced)"
            values.append(
                {
                    "campaign_id": campaign.id,
                    "client_id": client_id,
                    "contact_person_id": person_id,
                    "email": email,
                    "status": status,
                    "error": error,
                    "attempts": 0,
                    "updated_at": now,
                }
            )
        # Two spellings may normalize to one address: one recipient each.
        uniq = list({v["email"]: v for v in values}.values())
        existing = set(
            await s.scalars(
                select(CampaignRecipient.email).where(
                    CampaignRecipient.campaign_id == campaign.id,
                    CampaignRecipient.email.in_([v["email"] for v in uniq]),
                )
            )
        )
        uniq = [v for v in uniq if v["email"] not in existing]
        if not uniq:
            continue
        result = await s.execute(
            insert(CampaignRecipient).returning(
                CampaignRecipient.id, CampaignRecipient.client_id, CampaignRecipient.status
            ),
            uniq,
        )
        made = result.all()
        n += len(made)
        pending = [(rid, cid) for rid, cid, st in made if st == "pending"]
        if not pending:
            continue
        ob = await s.execute(
            insert(OutboxCommand).returning(OutboxCommand.id, OutboxCommand.idempotency_key),
            [
                {
                    "channel": CAMPAIGN_CHANNEL,
                    "kind": CAMPAIGN_KIND,
                    "payload": {"campaign_id": campaign.id, "recipient_id": rid},
                    "idempotency_key": f"campaign:{campaign.id}:{rid}",
                    "status": "pending",
                    "attempts": 0,
                    "created_by": campaign.started_by,
                    "client_id": cid,
                    "next_attempt_at": now,
                    "created_at": now,
                }
                for rid, cid in pending
            ],
        )
        links = [{"id": int(key.rsplit(":", 1)[1]), "outbox_id": oid} for oid, key in ob.all()]
        await s.execute(update(CampaignRecipient), links)
    return n


# -- state changes ----------------------------------------------------------------------


async def start(
    s: AsyncSession,
    actor: Actor,
    policy: CampaignPolicy,
    campaign_id: int,
    smtp_error: str | None = None,
) -> Campaign:
    """Draft -> scheduled (``send_at`` in the future) or sending.  Refused with a clear
    error: a template that does not render, a vanished segment, an empty audience, an
    SMTP account that refuses login (``smtp_error``, checked by the caller)."""
    _may_manage(actor, policy)
    row = await get_campaign(s, actor, campaign_id)
    if row.status != "draft":
        raise Conflict(f"campaign {campaign_id} is {row.status}, not a draft", "status")
    await check_templates(
        s, row.subject, row.html, row.text, row.audience.get("addresses", "primary")
    )
    row.started_by = actor.user_id
    counts = await audience_count(s, actor, row)
    if counts["addresses"] == 0:
        raise Invalid(
            "the audience is empty: no client with an email address matches", "segment_ids"
        )
    if smtp_error:
        raise Invalid(f"SMTP account {row.smtp_account!r}: {smtp_error}", "smtp_account")
    now = utcnow()
    row.status = "scheduled" if row.send_at is not None and row.send_at > now else "sending"
    row.started_at = now
    row.error = None
    row.locked_by = row.locked_until = None
    await audit(s, actor, "campaign.start", "campaign", row.id, {"status": row.status, **counts})
    await s.flush()
    return row


async def pause(
    s: AsyncSession, actor: Actor, policy: CampaignPolicy, campaign_id: int
) -> Campaign:
    _may_manage(actor, policy)
    row = await get_campaign(s, actor, campaign_id)
    if row.status not in ("sending", "scheduled"):
        raise Conflict(f"campaign {campaign_id} is {row.status}: nothing to pause", "status")
    row.status = "paused"
    await audit(s, actor, "campaign.pause", "campaign", row.id, {})
    return row


async def resume(
    s: AsyncSession, actor: Actor, policy: CampaignPolicy, campaign_id: int
) -> Campaign:
    _may_manage(actor, policy)
    row = await get_campaign(s, actor, campaign_id)
    if row.status != "paused":
        raise Conflict(f"campaign {campaign_id} is {row.status}, not paused", "status")
    now = utcnow()
    row.status = "scheduled" if row.send_at is not None and row.send_at > now else "sending"
    await audit(s, actor, "campaign.resume", "campaign", row.id, {})
    return row


async def cancel(
    s: AsyncSession, actor: Actor, policy: CampaignPolicy, campaign_id: int
) -> Campaign:
    _may_manage(actor, policy)
    row = await get_campaign(s, actor, campaign_id)
    if row.status in ("cancelled", "done"):
        raise Conflict(f"campaign {campaign_id} is already {row.status}", "status")
    row.status = "cancelled"
    row.finished_at = utcnow()
    await audit(s, actor, "campaign.cancel", "campaign", row.id, {})
    return row


async def mark_unsubscribed(s: AsyncSession, campaign_id: int | None, email: str) -> None:
    """The recipient of ``campaign_id`` at ``email`` used the unsubscribe link (the
    address itself is suppressed by the consent service)."""
    if campaign_id is None:
        return
    try:
        address = normalize_email(email)
    except IdentityError:
        return
    R = CampaignRecipient
    await s.execute(
        update(R)
        .where(
            R.campaign_id == campaign_id,
            R.email == address,
            R.status.in_(("sent", "unknown", "replied", "bounced", "pending")),
        )
        .values(status="unsubscribed", updated_at=utcnow())
    )


# -- reading ----------------------------------------------------------------------------


async def status_counts(s: AsyncSession, campaign_ids: list[int]) -> dict[int, dict[str, int]]:
    out: dict[int, dict[str, int]] = {
        cid: dict.fromkeys(RECIPIENT_STATUSES, 0) for cid in campaign_ids
    }
    if not campaign_ids:
        return out
    q = (
        select(CampaignRecipient.campaign_id, CampaignRecipient.status, func.count())
        .where(CampaignRecipient.campaign_id.in_(campaign_ids))
        .group_by(CampaignRecipient.campaign_id, CampaignRecipient.status)
    )
    for cid, status, n in (await s.execute(q)).all():
        out[cid][status] = int(n)
    return out


def campaign_dict(c: Campaign, counts: Mapping[str, int] | None = None) -> dict[str, Any]:
    counts = dict(counts or dict.fromkeys(RECIPIENT_STATUSES, 0))
    return {
        "id": c.id,
        "name": c.name,
        "status": c.status,
        "subject": c.subject,
        "html": c.html,
        "text": c.text,
        **{k: c.audience.get(k) for k in AUDIENCE_KEYS},
        "smtp_account": c.smtp_account,
        "send_at": iso(c.send_at),
        "created_by": c.created_by,
        "started_by": c.started_by,
        "total": sum(counts.values()),
        "counts": counts,
        "error": c.error,
        "created_at": iso(c.created_at),
        "started_at": iso(c.started_at),
        "finished_at": iso(c.finished_at),
    }


async def list_campaigns(
    s: AsyncSession, actor: Actor, *, limit: int, offset: int, status: str | None
) -> dict[str, Any]:
    conds: list[Any] = [visible_campaigns(actor)]
    if status:
        conds.append(Campaign.status == status)
    q = select(Campaign).where(*conds)
    total = await count_capped(s, q, 100_000)
    rows = list(await s.scalars(q.order_by(Campaign.id.desc()).limit(limit).offset(offset)))
    counts = await status_counts(s, [r.id for r in rows])
    return {
        "items": [campaign_dict(r, counts[r.id]) for r in rows],
        "total": total,
        "limit": limit,
        "offset": offset,
    }


def recipient_dict(r: CampaignRecipient, interaction_id: int | None = None) -> dict[str, Any]:
    return {
        "id": r.id,
        "client_id": r.client_id,
        "contact_person_id": r.contact_person_id,
        "email": r.email,
        "status": r.status,
        "error": r.error,
        "attempts": r.attempts,
        "message_id": r.message_id,
        "interaction_id": interaction_id,
        "sent_at": iso(r.sent_at),
        "updated_at": iso(r.updated_at),
    }


async def recipients_page(
    s: AsyncSession,
    actor: Actor,
    campaign_id: int,
    *,
    limit: int,
    offset: int,
    status: str | None,
    after: int | None = None,
) -> dict[str, Any]:
    await get_campaign(s, actor, campaign_id)
    conds: list[Any] = [CampaignRecipient.campaign_id == campaign_id]
    if status:
        if status not in RECIPIENT_STATUSES:
            raise Invalid(f"status must be one of {', '.join(RECIPIENT_STATUSES)}", "status")
        conds.append(CampaignRecipient.status == status)
    q = select(CampaignRecipient).where(*conds)
    total = await count_capped(s, q, 1_000_000)
    page = q.order_by(CampaignRecipient.id)
    if after is not None:
        page = page.where(CampaignRecipient.id > after)
    joined: Any = page.add_columns(Interaction.id).outerjoin(
        Interaction, Interaction.outbox_id == CampaignRecipient.outbox_id
    )
    found = (await s.execute(joined.limit(limit).offset(offset))).all()
    rows = [r for r, _i in found]
    return {
        "items": [recipient_dict(r, i) for r, i in found],
        "total": total,
        "limit": limit,
        "offset": offset,
        "next_after": str(rows[-1].id) if len(rows) == limit else None,
    }


async def preview(
    s: AsyncSession,
    actor: Actor,
    policy: CampaignPolicy,
    campaign_id: int,
    client_id: int,
    contact_person_id: int | None = None,
) -> dict[str, Any]:
    """The messages as one recipient would get them."""
    policy = await with_secret(s, policy)
    campaign = await get_campaign(s, actor, campaign_id)
    client = await s.scalar(select(Client).where(Client.id == client_id, visible_clients(actor)))
    if client is None:
        raise NotFound(f"client {client_id} not found", "client_id")
    contact = None
    if contact_person_id is not None:
        contact = await s.scalar(
            select(ContactPerson).where(
                ContactPerson.id == contact_person_id, ContactPerson.client_id == client.id
            )
        )
        if contact is None:
            raise NotFound(f"contact person {contact_person_id} not found", "contact_person_id")
    email = await s.scalar(
        select(ContactPoint.value)
        .where(
            ContactPoint.kind == "email",
            ContactPoint.client_id == client.id,
            and_(
                ContactPoint.contact_person_id == contact.id
                if contact
                else ContactPoint.contact_person_id.is_(None)
            ),
        )
        .order_by(ContactPoint.id)
        .limit(1)
    )
    tpl = Templates(campaign.subject, campaign.html, campaign.text)
    ctx = await recipient_context(s, policy, campaign, client, contact, email or "")
    out = tpl.render(ctx)
    return {"email": email, "subject": out.subject, "html": out.html, "text": out.text}
