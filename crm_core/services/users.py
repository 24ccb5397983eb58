"""Users and their API tokens (only the SHA-256 of a token is stored)."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.access import ROLES, Actor, visible_users
from crm_core.identity import IdentityError, normalize_email
from crm_core.models import User
from crm_core.services.common import Conflict, Invalid, NotFound, audit, iso

__all__ = [
    "create_user",
    "get_user",
    "hash_token",
    "list_users",
    "user_by_token",
    "user_dict",
]


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
