"""Users, their first API token and live-stream tickets (only SHA-256 of a secret is
stored).  Passwords, sessions, links and the other tokens: ``crm_core.services.auth``."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import date, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.access import ROLES, Actor, visible_users
from crm_core.identity import IdentityError, normalize_email
from crm_core.models import LiveTicket, User, utcnow
from crm_core.services.auth import (
    DEFAULT_POLICY,
    SessionPolicy,
    TokenRefused,
    authenticate_token,
    create_token,
    end_sessions,
    rotate_admin_token,
    valid_credentials,
)
from crm_core.services.common import Conflict, Invalid, NotFound, audit, iso

__all__ = [
    "LIVE_TICKET_SECONDS",
    "create_user",
    "get_user",
    "hash_token",
    "invite_user",
    "issue_live_ticket",
    "list_users",
    "redeem_live_ticket",
    "rotate_token",
    "set_active",
    "update_user",
    "user_by_email",
    "user_by_token",
    "user_dict",
]

LIVE_TICKET_SECONDS = 30


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


async def create_user(
    session: AsyncSession,
    email: str,
    role: str,
    name: str | None = None,
    extension: str | None = None,
    team: str | None = None,
    *,
    actor: Actor | None = None,
) -> tuple[User, str]:
    """Create a user; returns the row and its API token (shown once, stored hashed: an
    ``api_tokens`` row of origin ``admin``).

    Raises :class:`Invalid` for a bad email or role and :class:`Conflict` for a
    duplicate email or extension (both are ``ValueError``s naming the field).
    """
    user = await invite_user(
        session, email, role, name, extension, team, actor=actor, action="create"
    )
    row, token = await create_token(session, user, "API token", origin="admin", actor=actor)
    user.token_hash = row.token_hash
    await session.flush()
    return user, token


async def invite_user(
    session: AsyncSession,
    email: str,
    role: str,
    name: str | None = None,
    extension: str | None = None,
    team: str | None = None,
    *,
    actor: Actor | None = None,
    action: str = "invite",
) -> User:
    """Create a user with no password and no API token (an invitation link sets the
    password: ``services.auth.issue_link``)."""
    try:
        email_n = normalize_email(email)
    except IdentityError as exc:
        raise Invalid(f"email: {exc}", "email") from None
    if role not in ROLES:
        raise Invalid(f"role must be one of {', '.join(ROLES)}, not {role!r}", "role")
    if await session.scalar(select(User.id).where(User.email == email_n)) is not None:
        raise Conflict(f"a user with email {email_n} already exists", "email")
    ext = (extension or "").strip() or None
    if ext is not None and await session.scalar(select(User.id).where(User.extension == ext)):
        raise Conflict(f"extension {ext} is already taken", "extension")
    user = User(
        email=email_n,
        name=(name or "").strip(),
        role=role,
        team=(team or "").strip() or None,
        extension=ext,
        # the recording-link key until a token is issued (nobody knows its preimage)
        token_hash=hash_token(secrets.token_urlsafe(32)),
        active=True,
    )
    session.add(user)
    await session.flush()
    await audit(session, actor, action, "user", user.id, {"email": email_n, "role": role})
    return user


async def user_by_token(session: AsyncSession, token: str) -> User | None:
    """The user holding the API token ``token`` (active or not), or None when the token
    is unknown, revoked or expired (``services.auth.authenticate_token``)."""
    try:
        _row, user = await authenticate_token(session, token)
    except TokenRefused:
        return None
    return user


def user_dict(u: User) -> dict[str, Any]:
    return {
        "id": u.id,
        "email": u.email,
        "name": u.name,
        "role": u.role,
        "team": u.team,
        "extension": u.extension,
        "active": u.active,
        "timezone": u.timezone,
        "locale": u.locale,
        "working_hours": u.working_hours or {},
        "absences": u.absences or [],
        "capacity": u.capacity,
        "weight": u.weight,
        "phone": u.phone,
        "signature": u.signature or "",
        "created_at": iso(u.created_at),
    }


# What an admin may change on a user; a supervisor only the scheduling part of their
# team's members (hours, absences, capacity, weight).
USER_FIELDS = (
    "name",
    "role",
    "team",
    "extension",
    "timezone",
    "locale",
    "working_hours",
    "absences",
    "capacity",
    "weight",
    "phone",
    "signature",
)
SUPERVISOR_FIELDS = ("working_hours", "absences", "capacity", "weight")
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def _working_hours(value: Any) -> dict[str, list[list[str]]]:
    """``{"0": [["09:00", "18:00"]], ...}``: weekday 0 (Monday) to 6, local windows."""
    if not isinstance(value, dict):
        raise Invalid("working_hours must be an object of weekday -> windows", "working_hours")
    out: dict[str, list[list[str]]] = {}
    for day, windows in value.items():
        if str(day) not in {str(d) for d in range(7)}:
            raise Invalid(f"working_hours: weekday {day!r} is not 0 (Monday) to 6", "working_hours")
        if not isinstance(windows, list) or len(windows) > 6:
            raise Invalid(f"working_hours[{day}] must be a list of windows", "working_hours")
        day_out = []
        for w in windows:
            if (
                not isinstance(w, list | tuple)
                or len(w) != 2
                or not all(isinstance(x, str) and _HHMM.match(x) for x in w)
            ):
                raise Invalid(
                    f'working_hours[{day}]: a window is ["HH:MM", "HH:MM"], not {w!r}',
                    "working_hours",
                )
            if time.fromisoformat(w[0]) >= time.fromisoformat(w[1]):
                raise Invalid(f"working_hours[{day}]: {w[0]} is not before {w[1]}", "working_hours")
            day_out.append([w[0], w[1]])
        if day_out:
            out[str(day)] = day_out
    return out


def _absences(value: Any) -> list[dict[str, str]]:
    """``[{"start": "2026-12-20", "end": "2026-12-31", "reason": "отпуск"}]``."""
    if not isinstance(value, list) or len(value) > 100:
        raise Invalid("absences must be a list (at most 100)", "absences")
    out = []
    for item in value:
        if not isinstance(item, dict):
            raise Invalid("absences: each is {start, end, reason}", "absences")
        try:
            start = date.fromisoformat(str(item.get("start")))
            end = date.fromisoformat(str(item.get("end")))
        except ValueError:
            raise Invalid(
                f"absences: start and end are dates YYYY-MM-DD, not {item!r}", "absences"
            ) from None
        if end < start:
            raise Invalid(f"absences: {end} is before {start}", "absences")
        reason = str(item.get("reason") or "")[:200]
        out.append({"start": start.isoformat(), "end": end.isoformat(), "reason": reason})
    return out


async def update_user(
    session: AsyncSession, actor: Actor, user: User, data: dict[str, Any]
) -> User:
    """Change a user's profile, role and routing settings; one audit entry with each
    changed field as ``[old, new]``.  Raises :class:`Invalid` naming the field."""
    allowed = USER_FIELDS if actor.is_admin else SUPERVISOR_FIELDS
    for key in data:
        if key not in allowed:
            raise Invalid(f"you may not change {key}", key)
    new: dict[str, Any] = {}
    if "name" in data:
        new["name"] = str(data["name"] or "").strip()[:200]
    if "role" in data:
        if data["role"] not in ROLES:
            raise Invalid(f"role must be one of {', '.join(ROLES)}", "role")
        if user.id == actor.user_id and data["role"] != "admin":
            raise Conflict("you cannot take the admin role from yourself", "role")
        new["role"] = data["role"]
    if "team" in data:
        new["team"] = (str(data["team"] or "").strip() or None) if data["team"] else None
    if "extension" in data:
        ext = str(data["extension"] or "").strip() or None
        if ext is not None:
            if not re.fullmatch(r"[0-9A-Za-z_*#-]{1,32}", ext):
                raise Invalid(f"extension {ext!r}: digits and letters, up to 32", "extension")
            taken = await session.scalar(
                select(User.id).where(User.extension == ext, User.id != user.id)
            )
            if taken is not None:
                raise Conflict(f"extension {ext} is already taken", "extension")
        new["extension"] = ext
    if "timezone" in data:
        tz = str(data["timezone"] or "")
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise Invalid(f"timezone {tz!r} is not an IANA time zone", "timezone") from None
        new["timezone"] = tz
    if "locale" in data:
        if data["locale"] not in ("ru", "en"):
            raise Invalid("locale must be ru or en", "locale")
        new["locale"] = data["locale"]
    if "working_hours" in data:
        new["working_hours"] = _working_hours(data["working_hours"])
    if "absences" in data:
        new["absences"] = _absences(data["absences"])
    if "capacity" in data:
        cap = data["capacity"]
        if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool) or cap < 0):
            raise Invalid("capacity must be a whole number >= 0, or null", "capacity")
        new["capacity"] = cap
    if "weight" in data:
        w = data["weight"]
        if not isinstance(w, int) or isinstance(w, bool) or not 1 <= w <= 100:
            raise Invalid("weight must be a whole number from 1 to 100", "weight")
        new["weight"] = w
    if "phone" in data:  # shown in campaign templates as owner.phone
        phone = str(data["phone"] or "").strip()
        if len(phone) > 32 or any(c in phone for c in "\r\n"):
            raise Invalid("phone: one line, up to 32 characters", "phone")
        new["phone"] = phone or None
    if "signature" in data:  # owner.signature in campaign templates
        sig = str(data["signature"] or "")
        if len(sig) > 2000:
            raise Invalid("signature: up to 2000 characters", "signature")
        new["signature"] = sig
    changes = {k: [getattr(user, k), v] for k, v in new.items() if getattr(user, k) != v}
    for key, (_old, value) in changes.items():
        setattr(user, key, value)
    if changes:
        await session.flush()
        await audit(session, actor, "update", "user", user.id, {"changes": changes})
    return user


async def get_user(session: AsyncSession, actor: Actor, user_id: int) -> User:
    user = await session.scalar(select(User).where(User.id == user_id, visible_users(actor)))
    if user is None:
        raise NotFound(f"user {user_id} not found")
    return user


async def list_users(session: AsyncSession, actor: Actor) -> list[User]:
    return list(await session.scalars(select(User).where(visible_users(actor)).order_by(User.id)))


async def user_by_email(session: AsyncSession, email: str) -> User:
    """The user with this email (any case); :class:`NotFound` names the email."""
    try:
        email_n = normalize_email(email)
    except IdentityError as exc:
        raise Invalid(f"email: {exc}", "email") from None
    user = await session.scalar(select(User).where(User.email == email_n))
    if user is None:
        raise NotFound(f"no user with email {email_n}", "email")
    return user


async def set_active(
    session: AsyncSession, user: User, active: bool, *, actor: Actor | None = None
) -> User:
    """Deactivate (or activate again) a user.  A deactivated user's tokens are refused
    at once by the API and their sessions end; their open live streams are closed by
    the gateway.  Activated again, the same tokens work; sessions do not come back."""
    if actor is not None and user.id == actor.user_id and not active:
        raise Conflict("you cannot deactivate yourself", "id")
    if user.active != active:
        user.active = active
        await session.flush()
        action = "activate" if active else "deactivate"
        await audit(session, actor, action, "user", user.id, {"email": user.email})
    if not active:
        await end_sessions(session, user.id, actor=actor, reason="deactivated")
        await session.execute(delete(LiveTicket).where(LiveTicket.user_id == user.id))
    return user


async def rotate_token(
    session: AsyncSession, user: User, *, actor: Actor | None = None
) -> tuple[User, str]:
    """Give ``user`` a new API token (returned once); the one ``users add`` or an earlier
    rotation gave stops working at once, and so do the live tickets issued for it
    (``services.auth.rotate_admin_token``)."""
    _row, token, _revoked = await rotate_admin_token(session, user, actor=actor)
    return user, token


async def issue_live_ticket(
    session: AsyncSession,
    user: User,
    ttl_seconds: int = LIVE_TICKET_SECONDS,
    *,
    credential: str,
) -> str:
    """A single-use ticket for ``/live?ticket=`` or ``/live/sse?ticket=`` (stored hashed),
    for the credential the request came with (``t:<token id>``, ``s:<session id>``)."""
    now = utcnow()
    await session.execute(delete(LiveTicket).where(LiveTicket.expires_at < now))
    ticket = secrets.token_urlsafe(24)
    session.add(
        LiveTicket(
            ticket_hash=hash_token(ticket),
            user_id=user.id,
            token_hash=credential,
            expires_at=now + timedelta(seconds=ttl_seconds),
        )
    )
    await session.flush()
    return ticket


async def redeem_live_ticket(
    session: AsyncSession, ticket: str, policy: SessionPolicy = DEFAULT_POLICY
) -> tuple[User, str] | None:
    """The active user a valid ticket was issued to and the credential it was issued
    for (still valid), or None; the ticket is used up (deleted) in the same statement,
    so two processes cannot both redeem it."""
    if not ticket or len(ticket) > 200:
        return None
    row = (
        await session.execute(
            delete(LiveTicket)
            .where(LiveTicket.ticket_hash == hash_token(ticket))
            .returning(LiveTicket.user_id, LiveTicket.token_hash, LiveTicket.expires_at)
        )
    ).first()
    if row is None or row.expires_at < utcnow():
        return None
    user = await session.get(User, row.user_id)
    if user is None or not user.active:
        return None
    if row.token_hash not in await valid_credentials(session, {row.token_hash}, policy):
        return None
    return user, row.token_hash
