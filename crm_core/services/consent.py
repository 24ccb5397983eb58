"""Email consent: who may receive campaigns, unsubscribe links and their signed tokens.

An address's state lives in ``email_consent`` (keyed on the normalized address):

- ``granted``: the person agreed (a manager recorded it, an import said "yes");
- ``withdrawn``: consent taken back (a manager, an import saying "no");
- ``unsubscribed``: the person used an unsubscribe link or their mail program's button;
- ``bounced``: the address does not exist (a hard bounce matched to a campaign message);
- ``complained``: the person marked a message as spam (an ARF feedback report).

No row means nothing was recorded.  Every state but ``granted`` suppresses the address
from campaigns (:func:`suppressed`).  The last three are the address's own doing or the
mail system's: an import never lifts them, and a manager only with a note saying why.
Every change is one ``email_consent_events`` row; repeating the current state changes
nothing and records nothing (a one-click POST sent twice is one entry).

Unsubscribe tokens are ``1.<address, base64url>.<campaign id or empty>.<HMAC-SHA256,
base64url>``, signed with the installation's secret (:func:`signing_secret`): no row is
needed to answer a link, and a link cannot be forged or pointed at another address.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import unicodedata
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, String, any_, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.access import Actor
from crm_core.identity import IdentityError, normalize_email
from crm_core.models import (
    ConnectorStateRow,
    ContactPerson,
    ContactPoint,
    EmailConsent,
    EmailConsentEvent,
    User,
    utcnow,
)
from crm_core.services.common import Invalid

__all__ = [
    "CONSENT_STATES",
    "SUPPRESSING_STATES",
    "SUPPRESS_REASONS",
    "ConsentResult",
    "UnsubscribeTokenError",
    "client_consent",
    "client_emails",
    "consent_history",
    "consent_of",
    "list_unsubscribe_headers",
    "make_unsubscribe_token",
    "mask_email",
    "normalize_address",
    "read_unsubscribe_token",
    "set_consent",
    "set_consent_many",
    "signing_secret",
    "suppress",
    "suppressed",
    "unsubscribe_url",
]

SUPPRESS_REASONS = ("unsubscribed", "bounced", "complained")
# Set by people (a manager, an import); the reasons above by the address or mail servers.
SET_STATES = ("granted", "withdrawn")
CONSENT_STATES = SET_STATES + SUPPRESS_REASONS
SUPPRESSING_STATES = ("withdrawn", *SUPPRESS_REASONS)
HISTORY_LIMIT = 20  # history entries per address on the client card
SUPPRESSED_BATCH = 5000  # addresses per query of suppressed() on SQLite (its bind limit)
MAX_NOTE = 500
MAX_SOURCE = 50

ConsentResult = Literal["changed", "unchanged", "kept"]


# --- the signing secret --------------------------------------------------------------

SECRET_STATE_KEY = "crmhub.secret_key"


async def signing_secret(s: AsyncSession, configured: str | None = None) -> str:
    """The installation's signing secret: the ``secret_key`` setting when set, otherwise
    a random key made once and kept in the database (``connector_state``), so that every
    hub process signs and checks links with the same key across restarts.

    The caller commits ``s`` (the first call writes the key)."""
    if configured:
        return configured
    row = await s.get(ConnectorStateRow, SECRET_STATE_KEY)
    if row is None:
        stmt = _insert(s, ConnectorStateRow)
        # Two processes starting at once: the first insert wins, both read its key.
        await s.execute(
            stmt.values(
                key=SECRET_STATE_KEY,
                value={"key": secrets.token_urlsafe(48), "created_at": utcnow().isoformat()},
                updated_at=utcnow(),
            ).on_conflict_do_nothing(index_elements=["key"])
        )
        row = await s.scalar(
            select(ConnectorStateRow)
            .where(ConnectorStateRow.key == SECRET_STATE_KEY)
            .execution_options(populate_existing=True)
        )
    assert row is not None
    key = row.value.get("key") if isinstance(row.value, dict) else None
    if not isinstance(key, str) or len(key) < 16:
        raise RuntimeError(f"connector_state {SECRET_STATE_KEY!r} holds no usable key")
    return key


# --- tokens and headers --------------------------------------------------------------

TOKEN_VERSION = "1"
MAX_TOKEN = 1024
_B64 = re.compile(r"[A-Za-z0-9_-]+")
_ID = re.compile(r"[1-9][0-9]{0,17}")


class UnsubscribeTokenError(ValueError):
    """The token is not one of ours: ``reason`` is ``malformed`` (cut, wrong shape) or
    ``signature`` (altered, or signed with another key: a rotated secret)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(part: str, what: str) -> bytes:
    if not _B64.fullmatch(part):
        raise UnsubscribeTokenError("malformed", f"the link's {what} is not base64url")
    try:
        raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError):
        raise UnsubscribeTokenError("malformed", f"the link's {what} is cut short") from None
    if _b64(raw) != part:  # one encoding only: no two texts of the same token
        raise UnsubscribeTokenError("malformed", f"the link's {what} is not canonical")
    return raw


def _mac(secret: str, email: bytes, campaign: str) -> bytes:
    msg = b"\x00".join((b"crmhub-unsubscribe", TOKEN_VERSION.encode(), email, campaign.encode()))
    return hmac.new(secret.encode(), msg, hashlib.sha256).digest()


def make_unsubscribe_token(secret: str, email: str, campaign_id: int | None) -> str:
    """A URL-safe token naming ``email`` (normalized) and the campaign, signed with
    HMAC-SHA256 under ``secret``."""
    if not secret:
        raise ValueError("the signing secret is empty")
    addr = normalize_email(email)
    if campaign_id is not None and (
        isinstance(campaign_id, bool) or not isinstance(campaign_id, int) or campaign_id < 1
    ):
        raise ValueError(f"campaign_id must be a positive integer, not {campaign_id!r}")
    campaign = "" if campaign_id is None else str(campaign_id)
    mac = _mac(secret, addr.encode(), campaign)
    return f"{TOKEN_VERSION}.{_b64(addr.encode())}.{campaign}.{_b64(mac)}"


def read_unsubscribe_token(secret: str, token: str) -> tuple[str, int | None]:
    """``(email, campaign_id)`` of a token made by :func:`make_unsubscribe_token` with the
    same secret; :class:`UnsubscribeTokenError` for anything else.  The signature is
    compared in constant time."""
    if not isinstance(token, str) or not token:
        raise UnsubscribeTokenError("malformed", "the link has no token")
    if len(token) > MAX_TOKEN:
        raise UnsubscribeTokenError("malformed", "the link's token is too long")
    parts = token.split(".")
    if len(parts) != 4 or parts[0] != TOKEN_VERSION:
        raise UnsubscribeTokenError("malformed", "the link's token is not a crmhub token")
    _, email_part, campaign, mac_part = parts
    if campaign and not _ID.fullmatch(campaign):
        raise UnsubscribeTokenError("malformed", "the link's campaign number is not a number")
    email_raw = _unb64(email_part, "address")
    mac = _unb64(mac_part, "signature")
    if len(mac) != hashlib.sha256().digest_size:
        raise UnsubscribeTokenError("malformed", "the link's signature is cut short")
    expected = _mac(secret, email_raw, campaign)
    # Compared before the address is parsed: an unsigned text is never looked at further.
    if not hmac.compare_digest(mac, expected):
        raise UnsubscribeTokenError(
            "signature", "the link's signature does not match (altered, or an old link)"
        )
    try:
        email = email_raw.decode("utf-8")
    except UnicodeDecodeError:  # pragma: no cover - only a holder of the key could sign it
        raise UnsubscribeTokenError("malformed", "the link's address is not text") from None
    return email, (int(campaign) if campaign else None)


def unsubscribe_url(public_url: str, token: str) -> str:
    """The page of the link: ``{public_url}/u/{token}``."""
    return f"{public_url.rstrip('/')}/u/{token}"


_HEADER_UNSAFE = re.compile(r"[\s<>,\x00-\x1f\x7f]")


def list_unsubscribe_headers(url: str, mailto: str | None = None) -> dict[str, str]:
    """``List-Unsubscribe`` (the link, and a ``mailto:`` if given) and
    ``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` (RFC 8058: the mail program
    POSTs to the link; RFC 8058 asks for an HTTPS link and a DKIM signature covering both
    headers)."""
    if not re.match(r"https?://", url) or _HEADER_UNSAFE.search(url):
        raise ValueError(f"unsubscribe URL {url!r} is not an http(s) URL")
    targets = [f"<{url}>"]
    if mailto:
        if _HEADER_UNSAFE.search(mailto):
            raise ValueError(f"unsubscribe mailto {mailto!r} is not an address")
        addr = mailto if mailto.lower().startswith("mailto:") else f"mailto:{mailto}"
        targets.insert(0, f"<{addr}>")
    return {
        "List-Unsubscribe": ", ".join(targets),
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def mask_email(email: str) -> str:
    """``ivan.petrov@example.ru`` -> ``i***v@example.ru``: enough for its owner to
    recognise, not enough for someone who found the link to learn the address."""
    local, sep, domain = email.rpartition("@")
    if not sep:
        return "***"
    if len(local) <= 2:
        shown = local[:1] + "***"
    else:
        shown = f"{local[0]}***{local[-1]}"
    return f"{shown}@{domain}"


# --- states --------------------------------------------------------------------------


def _key(email: str) -> str:
    """The stored form of an address, cheaply: campaigns pass contact points (already
    normalized); other text is lower-cased, and validated only when not ASCII."""
    raw = email.strip().strip("<>").strip()
    if raw.lower().startswith("mailto:"):
        raw = raw[7:]
    if raw.isascii():
        return raw.lower()
    try:
        return normalize_email(raw)
    except IdentityError:
        return unicodedata.normalize("NFC", raw).lower()


async def suppressed(s: AsyncSession, emails: Iterable[str]) -> set[str]:
    """The addresses among ``emails`` that must not receive campaigns (withdrawn,
    unsubscribed, bounced, complained), in their normalized form.  One primary-key query
    per :data:`SUPPRESSED_BATCH` addresses."""
    keys = sorted({_key(e) for e in emails if isinstance(e, str) and e.strip()})
    out: set[str] = set()
    for chunk in _batches(s, keys):
        rows = await s.scalars(
            select(EmailConsent.email).where(
                _among(s, chunk), EmailConsent.state.in_(SUPPRESSING_STATES)
            )
        )
        out.update(rows)
    return out


def _batches(s: AsyncSession, keys: list[str]) -> list[list[str]]:
    """PostgreSQL takes any number of addresses as one array parameter; SQLite's bind
    limit asks for batches of :data:`SUPPRESSED_BATCH`."""
    if s.get_bind().dialect.name == "postgresql":
        return [keys] if keys else []
    return [keys[i : i + SUPPRESSED_BATCH] for i in range(0, len(keys), SUPPRESSED_BATCH)]


def _among(s: AsyncSession, chunk: list[str]) -> ColumnElement[bool]:
    if s.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import ARRAY

        return EmailConsent.email == any_(bindparam("emails", chunk, type_=ARRAY(String)))
    return EmailConsent.email.in_(chunk)


def normalize_address(email: str) -> str:
    """The stored form of ``email``; :class:`Invalid` (field ``email``) if it is not one."""
    return _address(email)


def _address(email: str) -> str:
    try:
        return normalize_email(email)
    except IdentityError as exc:
        raise Invalid(str(exc), "email") from None


def _source(source: str) -> str:
    source = (source or "").strip()
    if not source or len(source) > MAX_SOURCE:
        raise Invalid(f"source must be 1..{MAX_SOURCE} characters", "source")
    return source


async def _lock(s: AsyncSession, email: str) -> EmailConsent | None:
    q = select(EmailConsent).where(EmailConsent.email == email)
    if s.get_bind().dialect.name == "postgresql":
        q = q.with_for_update()
    return await s.scalar(q.execution_options(populate_existing=True))


async def _change(
    s: AsyncSession,
    email: str,
    state: str,
    source: str,
    *,
    campaign_id: int | None,
    actor: Actor | None,
    note: str | None,
) -> ConsentResult:
    """Write ``state`` for ``email`` (and one history entry) unless it is already so."""
    now = utcnow()
    user_id = actor.user_id if actor else None
    previous: str | None = None
    row = await _lock(s, email)
    if row is None:
        stmt = _insert(s, EmailConsent)
        res: Any = await s.execute(
            stmt.values(
                email=email,
                state=state,
                source=source,
                campaign_id=campaign_id,
                updated_by=user_id,
                updated_at=now,
            ).on_conflict_do_nothing(index_elements=["email"])
        )
        if res.rowcount != 1:  # a concurrent first write won: go on from its state
            row = await _lock(s, email)
            assert row is not None
    if row is not None:
        if row.state == state:
            return "unchanged"
        previous = row.state
        row.state = state
        row.source = source
        row.campaign_id = campaign_id
        row.updated_by = user_id
        row.updated_at = now
    s.add(
        EmailConsentEvent(
            email=email,
            state=state,
            previous_state=previous,
            source=source,
            campaign_id=campaign_id,
            user_id=user_id,
            note=note,
            at=now,
        )
    )
    await s.flush()
    return "changed"


async def suppress(
    s: AsyncSession,
    email: str,
    reason: str,
    source: str,
    campaign_id: int | None = None,
    actor: Actor | None = None,
    note: str | None = None,
) -> ConsentResult:
    """Record that ``email`` must get no more campaigns: ``reason`` is ``unsubscribed``,
    ``bounced`` or ``complained``; ``source`` says where it came from
    (``unsubscribe_page``, ``one_click``, ``bounce``, ``arf`` ...).  Idempotent: the
    same reason again changes nothing (``"unchanged"``).  The caller commits."""
    if reason not in SUPPRESS_REASONS:
        raise Invalid(f"reason must be one of {', '.join(SUPPRESS_REASONS)}", "reason")
    return await _change(
        s,
        _address(email),
        reason,
        _source(source),
        campaign_id=campaign_id,
        actor=actor,
        note=_note(note),
    )


def _note(note: str | None) -> str | None:
    if note is None:
        return None
    if not isinstance(note, str):
        raise Invalid("note must be text", "note")
    note = note.strip()
    if len(note) > MAX_NOTE:
        raise Invalid(f"note must be at most {MAX_NOTE} characters", "note")
    if "\x00" in note:
        raise Invalid("note must not contain the NUL character", "note")
    return note or None


async def set_consent(
    s: AsyncSession,
    email: str,
    state: str,
    source: str,
    actor: Actor | None,
    note: str | None = None,
    campaign_id: int | None = None,
) -> ConsentResult:
    """Record consent given (``granted``) or taken back (``withdrawn``).

    An address that unsubscribed, bounced or complained keeps that state against an
    import (``"kept"``: an old spreadsheet must not resubscribe anyone); a person
    (``actor``) may lift it only with a ``note`` saying why (the client asked again by
    phone, the mailbox exists again); ``withdrawn`` over it is ``"kept"`` too (it would
    say less).  The caller commits."""
    if state not in SET_STATES:
        raise Invalid(f"state must be one of {', '.join(SET_STATES)}", "state")
    addr = _address(email)
    source = _source(source)
    note = _note(note)
    current = await s.scalar(select(EmailConsent.state).where(EmailConsent.email == addr))
    if current in SUPPRESS_REASONS and state == "withdrawn":
        return "kept"  # already refused, by the address itself: that says more
    if current in SUPPRESS_REASONS and state == "granted":
        if actor is None or source == "import":
            return "kept"
        if not note:
            why = {
                "unsubscribed": "unsubscribed itself",
                "bounced": "bounced (its mail server says it does not exist)",
                "complained": "complained of spam",
            }[current]
            raise Invalid(f"{addr} {why}: say in the note why consent is granted again", "note")
    return await _change(s, addr, state, source, campaign_id=campaign_id, actor=actor, note=note)


async def set_consent_many(
    s: AsyncSession,
    states: dict[str, str],
    source: str,
    actor: Actor | None,
    note: str | None = None,
) -> tuple[dict[str, int], list[str]]:
    """:func:`set_consent` for many addresses at once (an import's chunk): ``states`` maps
    normalized addresses to ``granted``/``withdrawn``.  A few queries whatever the
    number; the same rules (an own refusal is kept).  Counts of ``changed``,
    ``unchanged`` and ``kept``, and the kept addresses.  The caller commits."""
    counts = {"changed": 0, "unchanged": 0, "kept": 0}
    kept: list[str] = []
    if not states:
        return counts, kept
    for state in states.values():
        if state not in SET_STATES:
            raise Invalid(f"state must be one of {', '.join(SET_STATES)}", "state")
    source = _source(source)
    note = _note(note)
    current = await consent_of(s, states)
    now = utcnow()
    user_id = actor.user_id if actor else None
    fresh: list[dict[str, Any]] = []
    moved: dict[str, list[str]] = {}
    events: list[dict[str, Any]] = []
    for email, state in states.items():
        before = current.get(email)
        if before == state:
            counts["unchanged"] += 1
            continue
        if before in SUPPRESS_REASONS:  # the address's own refusal stays
            counts["kept"] += 1
            if state == "granted":
                kept.append(email)
            continue
        counts["changed"] += 1
        if before is None:
            fresh.append(
                {
                    "email": email,
                    "state": state,
                    "source": source,
                    "campaign_id": None,
                    "updated_by": user_id,
                    "updated_at": now,
                }
            )
        else:
            moved.setdefault(state, []).append(email)
        events.append(
            {
                "email": email,
                "state": state,
                "previous_state": before,
                "source": source,
                "campaign_id": None,
                "user_id": user_id,
                "note": note,
                "at": now,
            }
        )
    if fresh:
        await s.execute(
            _insert(s, EmailConsent).on_conflict_do_nothing(index_elements=["email"]), fresh
        )
    for state, emails in moved.items():
        for i in range(0, len(emails), SUPPRESSED_BATCH):
            await s.execute(
                update(EmailConsent)
                .where(
                    EmailConsent.email.in_(emails[i : i + SUPPRESSED_BATCH]),
                    EmailConsent.state.not_in(SUPPRESS_REASONS),
                )
                .values(
                    state=state, source=source, campaign_id=None, updated_by=user_id, updated_at=now
                )
            )
    if events:
        await s.execute(insert(EmailConsentEvent), events)
    return counts, kept


def _insert(s: AsyncSession, model: Any) -> Any:
    """An INSERT that can say ``ON CONFLICT DO NOTHING`` on either database."""
    if s.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(model)
    from sqlalchemy.dialects.sqlite import insert as lite_insert

    return lite_insert(model)


async def consent_of(s: AsyncSession, emails: Iterable[str]) -> dict[str, str]:
    """``{normalized address: state}`` for the addresses that have one (batched)."""
    keys = sorted({_key(e) for e in emails if isinstance(e, str) and e.strip()})
    out: dict[str, str] = {}
    for chunk in _batches(s, keys):
        rows = await s.execute(
            select(EmailConsent.email, EmailConsent.state).where(_among(s, chunk))
        )
        out.update({e: st for e, st in rows})
    return out


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


async def _event_dicts(s: AsyncSession, events: list[EmailConsentEvent]) -> list[dict[str, Any]]:
    user_ids = {e.user_id for e in events if e.user_id is not None}
    names: dict[int, str] = {}
    if user_ids:
        rows = await s.execute(select(User.id, User.name).where(User.id.in_(user_ids)))
        names = {uid: name for uid, name in rows}
    return [
        {
            "id": e.id,
            "email": e.email,
            "state": e.state,
            "previous_state": e.previous_state,
            "source": e.source,
            "campaign_id": e.campaign_id,
            "user_id": e.user_id,
            "user_name": names.get(e.user_id) if e.user_id is not None else None,
            "note": e.note,
            "at": _iso(e.at),
        }
        for e in events
    ]


async def client_emails(s: AsyncSession, client_id: int) -> list[tuple[str, str | None]]:
    """The client's email contact points (its own and its contact persons'), with the
    contact person's name."""
    rows = await s.execute(
        select(ContactPoint.value, ContactPerson.name)
        .outerjoin(ContactPerson, ContactPerson.id == ContactPoint.contact_person_id)
        .where(ContactPoint.client_id == client_id, ContactPoint.kind == "email")
        .order_by(ContactPoint.id)
        .limit(200)
    )
    return [(v, n) for v, n in rows]


async def consent_history(
    s: AsyncSession, who: str | int, limit: int = 100
) -> list[dict[str, Any]]:
    """The changes of one address (``who`` is an email) or of all of a client's
    addresses (``who`` is a client id), newest first, at most ``limit``.  No access
    check: the caller has checked that the actor sees the client."""
    if isinstance(who, str):
        emails = [_key(who)]
    else:
        emails = [e for e, _ in await client_emails(s, who)]
    if not emails:
        return []
    events = list(
        await s.scalars(
            select(EmailConsentEvent)
            .where(EmailConsentEvent.email.in_(emails))
            .order_by(EmailConsentEvent.at.desc(), EmailConsentEvent.id.desc())
            .limit(limit)
        )
    )
    return await _event_dicts(s, events)


async def client_consent(
    s: AsyncSession, client_id: int, history_limit: int = HISTORY_LIMIT
) -> list[dict[str, Any]]:
    """Each of the client's addresses with its state (``unknown`` when none was
    recorded), when it changed and its latest ``history_limit`` changes."""
    emails = await client_emails(s, client_id)
    rows = {
        r.email: r
        for r in await s.scalars(
            select(EmailConsent).where(EmailConsent.email.in_([e for e, _ in emails]))
        )
    }
    out = []
    for email, person in emails:
        row = rows.get(email)
        events = list(
            await s.scalars(
                select(EmailConsentEvent)
                .where(EmailConsentEvent.email == email)
                .order_by(EmailConsentEvent.at.desc(), EmailConsentEvent.id.desc())
                .limit(history_limit + 1)
            )
        )
        out.append(
            {
                "email": email,
                "contact_name": person,
                "state": row.state if row else "unknown",
                "source": row.source if row else None,
                "updated_at": _iso(row.updated_at) if row else None,
                "suppressed": bool(row and row.state in SUPPRESSING_STATES),
                "history": await _event_dicts(s, events[:history_limit]),
                "history_more": len(events) > history_limit,
            }
        )
    return out
