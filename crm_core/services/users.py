"""Users and their API tokens (only the SHA-256 of a token is stored)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.access import ROLES, Actor, visible_users
from crm_core.identity import IdentityError, normalize_email
from crm_core.models import LiveTicket, User, utcnow
from crm_core.services.common import Conflict, Invalid, NotFound, audit, iso

__all__ = [
    "LIVE_TICKET_SECONDS",
    "create_user",
    "get_user",
    "hash_token",
    "issue_live_ticket",
    "list_users",
    "redeem_live_ticket",
    "rotate_token",
    "set_active",
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
    """Create a user; returns the row and its API token (shown once, stored hashed).

    Raises :class:`Invalid` for a bad email or role and :class:`Conflict` for a
    duplicate email or extension (both are ``ValueError``s naming the field).
    """
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
    token = secrets.token_urlsafe(32)
    user = User(
        email=email_n,
        name=(name or "").strip(),
        role=role,
        team=(team or "").strip() or None,
        extension=ext,
        token_hash=hash_token(token),
        active=True,
    )
    session.add(user)
    await session.flush()
    await audit(session, actor, "create", "user", user.id, {"email": email_n, "role": role})
    return user, token


async def user_by_token(session: AsyncSession, token: str) -> User | None:
    """The user holding ``token`` (active or not), or None.

    The token is hashed before the lookup, so the comparison never runs over the
    secret itself: its timing says nothing about the token.
    """
    if not token or len(token) > 200:
        return None
    return await session.scalar(select(User).where(User.token_hash == hash_token(token)))


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
        "created_at": iso(u.created_at),
    }


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
    """Deactivate (or activate again) a user.  A deactivated user's token is refused
    at once by the API; their open live streams are closed by the gateway."""
    if actor is not None and user.id == actor.user_id and not active:
        raise Conflict("you cannot deactivate yourself", "id")
    if user.active != active:
        user.active = active
        await session.flush()
        action = "activate" if active else "deactivate"
        await audit(session, actor, action, "user", user.id, {"email": user.email})
    return user


async def rotate_token(
    session: AsyncSession, user: User, *, actor: Actor | None = None
) -> tuple[User, str]:
    """Give ``user`` a new API token (returned once); the old one stops working at once,
    and so do the live tickets issued for it."""
    token = secrets.token_urlsafe(32)
    user.token_hash = hash_token(token)
    await session.execute(delete(LiveTicket).where(LiveTicket.user_id == user.id))
    await session.flush()
    await audit(session, actor, "rotate_token", "user", user.id, {"email": user.email})
    return user, token


async def issue_live_ticket(
    session: AsyncSession, user: User, ttl_seconds: int = LIVE_TICKET_SECONDS
) -> str:
    """A single-use ticket for ``/live?ticket=`` or ``/live/sse?ticket=`` (stored hashed)."""
    now = utcnow()
    await session.execute(delete(LiveTicket).where(LiveTicket.expires_at < now))
    ticket = secrets.token_urlsafe(24)
    session.add(
        LiveTicket(
            ticket_hash=hash_token(ticket),
            user_id=user.id,
            token_hash=user.token_hash,
            expires_at=now + timedelta(seconds=ttl_seconds),
        )
    )
    await session.flush()
    return ticket


async def redeem_live_ticket(session: AsyncSession, ticket: str) -> User | None:
    """The active user a valid ticket was issued to, or None; the ticket is used up
    (deleted) in the same statement, so two processes cannot both redeem it."""
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
    if user is None or not user.active or user.token_hash != row.token_hash:
        return None
    return user
