"""Sign-in: passwords, browser sessions, invitation and reset links, API tokens, and
the rate limit on failed sign-ins.

Passwords are hashed with argon2id (argon2-cffi) with the parameters in :data:`ARGON2`
and checked against a minimum length and the 30 000 most common passwords (the list
the ``zxcvbn`` package ships).  Session cookies, link tokens and API tokens are random
(256 bits) and only their SHA-256 is stored, so a copy of the database opens nothing.

Everything here is a plain function over an ``AsyncSession``; the gateway
(``gateway/auth.py``, ``gateway/api/auth.py``) owns cookies and HTTP.
"""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.access import Actor
from crm_core.identity import IdentityError, normalize_email
from crm_core.models import (
    ApiToken,
    AuthFailure,
    AuthLink,
    AuthSession,
    LiveTicket,
    User,
    utcnow,
)
from crm_core.services.common import Invalid, NotFound, ServiceError, audit, iso

__all__ = [
    "ARGON2",
    "DEFAULT_POLICY",
    "DUMMY_HASH",
    "FAILURE_LIMIT",
    "FAILURE_WINDOW",
    "LINK_TTL",
    "MIN_PASSWORD_LENGTH",
    "SCOPES",
    "LinkRefused",
    "SessionPolicy",
    "TokenRefused",
    "authenticate_token",
    "change_password",
    "check_password_policy",
    "clear_failures",
    "create_token",
    "device_of",
    "end_session",
    "end_sessions",
    "failure_keys",
    "hash_password",
    "hash_secret",
    "is_common_password",
    "issue_link",
    "link_mail",
    "link_user",
    "list_sessions",
    "list_tokens",
    "needs_touch",
    "password_matches",
    "record_failure",
    "redeem_link",
    "retry_after",
    "revoke_token",
    "rotate_admin_token",
    "session_by_cookie",
    "session_dict",
    "start_session",
    "token_dict",
    "touch_session",
    "touch_token",
    "valid_credentials",
    "verify_password",
]

# argon2id, RFC 9106's second recommended option ("if much less memory is available"):
# t=3 passes over m=64 MiB with p=4 lanes, a 16-byte salt and a 32-byte tag.  These are
# argon2-cffi's defaults, written out so that a library upgrade cannot change them
# silently; a hash made with other parameters is re-made at the next sign-in.
ARGON2: dict[str, int] = {
    "time_cost": 3,
    "memory_cost": 65536,  # KiB
    "parallelism": 4,
    "hash_len": 32,
    "salt_len": 16,
}
_HASHER = PasswordHasher(
    time_cost=ARGON2["time_cost"],
    memory_cost=ARGON2["memory_cost"],
    parallelism=ARGON2["parallelism"],
    hash_len=ARGON2["hash_len"],
    salt_len=ARGON2["salt_len"],
    type=Type.ID,
)
# At most this many hashes at once per process (64 MiB each): a flood of sign-ins waits
# for a slot instead of exhausting memory.
_SLOTS = threading.BoundedSemaphore(4)

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024
FAILURE_LIMIT = 5  # failed sign-ins per account and per address ...
FAILURE_WINDOW = timedelta(minutes=1)  # ... within this window, then 429
LINK_TTL = timedelta(hours=24)
SCOPES = ("read", "full")
TOUCH_EVERY = timedelta(minutes=1)  # last_seen / last_used are written at most this often


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    """A session ends after ``idle`` without a request, and ``lifetime`` after sign-in."""

    idle: timedelta = timedelta(hours=168)
    lifetime: timedelta = timedelta(days=30)


DEFAULT_POLICY = SessionPolicy()


class LinkRefused(ServiceError):
    """An invitation/reset link that is unknown, used, or expired (HTTP 400)."""


class TokenRefused(ServiceError):
    """An API token that is unknown, revoked or expired (HTTP 401)."""


def hash_secret(value: str) -> str:
    """SHA-256 of a random secret (session cookie, link token, API token)."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


# --- passwords ---------------------------------------------------------------------


@functools.cache
def _common_passwords() -> frozenset[str]:
    """The 30 000 most common passwords of the Xato leak corpus, as shipped by the
    ``zxcvbn`` package (``zxcvbn.frequency_lists``), lower-cased; loaded once."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(p.lower() for p in FREQUENCY_LISTS["passwords"])


def is_common_password(password: str) -> bool:
    low = password.lower()
    if low in _common_passwords():
        return True
    # "password2024", "qwerty12345!": a common word with digits or punctuation around it
    core = re.sub(r"^[\d\W_]+|[\d\W_]+$", "", low)
    return len(core) >= 4 and core in _common_passwords() and len(core) >= len(low) - 4


def check_password_policy(password: Any, *, email: str | None = None) -> str:
    """The password if it may be used; :class:`Invalid` naming ``password`` otherwise."""
    if not isinstance(password, str):
        raise Invalid("password must be a string", "password")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise Invalid(f"password: at least {MIN_PASSWORD_LENGTH} characters, please", "password")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise Invalid(f"password: at most {MAX_PASSWORD_LENGTH} characters", "password")
    if len(set(password)) < 4:
        raise Invalid("password: too simple, it repeats a few characters", "password")
    if is_common_password(password):
        raise Invalid(
            "password: this is one of the most common passwords, choose another", "password"
        )
    if email and password.lower() in (email.lower(), email.lower().split("@")[0]):
        raise Invalid("password: must not be your email", "password")
    return password


def hash_password(password: str) -> str:
    """argon2id hash (blocking: call it in a thread)."""
    with _SLOTS:
        return _HASHER.hash(password)


# Verified when there is no hash to verify (an unknown email, no password yet), so the
# answer takes as long: the hash of a random value nobody kept, made with ARGON2's
# parameters (a test checks that it still matches them).
DUMMY_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$jC763228E8q4m1Rt52gCFA"
    "$7BDWk+OMQzs90IUO36E2lETNotU3p9KRG8kDuX8FBE8"
)


def verify_password(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored`` (blocking: call it in a thread).  With no
    stored hash (unknown email, no password yet) a dummy hash is verified, so the
    answer takes the same time either way."""
    if len(password) > MAX_PASSWORD_LENGTH:
        password = password[:MAX_PASSWORD_LENGTH]
    with _SLOTS:
        try:
            return _HASHER.verify(stored or DUMMY_HASH, password) and stored is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False


def password_matches(user: User | None, password: str) -> tuple[bool, str | None]:
    """(matches, new hash when the stored one used other parameters) - blocking."""
    stored = user.password_hash if user is not None else None
    ok = verify_password(stored, password)
    if ok and stored is not None and _HASHER.check_needs_rehash(stored):
        return True, hash_password(password)
    return ok, None


# --- failed sign-ins -----------------------------------------------------------------


def failure_keys(email: str, address: str | None) -> list[str]:
    """``email:<normalized>`` (whether or not such a user exists) and ``ip:<address>``."""
    try:
        who = normalize_email(email)
    except IdentityError:
        who = email.strip().lower()
    keys = [f"email:{who[:380]}"]
    if address:
        keys.append(f"ip:{address[:380]}")
    return keys


async def retry_after(s: AsyncSession, keys: list[str], now: datetime | None = None) -> int:
    """Seconds until a sign-in may be tried again (0: now): :data:`FAILURE_LIMIT`
    failures within :data:`FAILURE_WINDOW` for any of ``keys`` block it until the
    oldest of the last five leaves the window."""
    now = now or utcnow()
    wait = 0
    for key in keys:
        recent = list(
            await s.scalars(
                select(AuthFailure.at)
                .where(AuthFailure.key == key, AuthFailure.at > now - FAILURE_WINDOW)
                .order_by(AuthFailure.at.desc())
                .limit(FAILURE_LIMIT)
            )
        )
        if len(recent) >= FAILURE_LIMIT:
            free_at = recent[-1] + FAILURE_WINDOW
            wait = max(wait, int((free_at - now).total_seconds()) + 1)
    return wait


async def record_failure(s: AsyncSession, keys: list[str], now: datetime | None = None) -> None:
    now = now or utcnow()
    s.add_all(AuthFailure(key=k, at=now) for k in keys)
    # old rows go as new ones come: the table holds about an hour of failures
    await s.execute(delete(AuthFailure).where(AuthFailure.at < now - timedelta(hours=1)))
    await s.flush()


async def clear_failures(s: AsyncSession, key: str) -> None:
    await s.execute(delete(AuthFailure).where(AuthFailure.key == key))


# --- sessions ------------------------------------------------------------------------

_BROWSERS = (
    ("Edge", r"Edg(?:e|A|iOS)?/(\d+)"),
    ("Yandex Browser", r"YaBrowser/(\d+)"),
    ("Opera", r"OPR/(\d+)"),
    ("Firefox", r"(?:Firefox|FxiOS)/(\d+)"),
    ("Chrome", r"(?:Chrome|CriOS)/(\d+)"),
    ("Safari", r"Version/(\d+)[\d.]* (?:Mobile/\S+ )?Safari/"),
)
_SYSTEMS = (
    ("iPhone", r"iPhone"),
    ("iPad", r"iPad"),
    ("Android", r"Android"),
    ("Windows", r"Windows"),
    ("macOS", r"Mac OS X|Macintosh"),
    ("Linux", r"Linux|X11"),
)


def device_of(user_agent: str) -> str:
    """A short name of a browser and system ("Chrome 120, Windows") from User-Agent."""
    ua = user_agent or ""
    browser = next(
        (f"{name} {m.group(1)}" for name, pat in _BROWSERS if (m := re.search(pat, ua))), None
    )
    system = next((name for name, pat in _SYSTEMS if re.search(pat, ua)), None)
    if browser is None and system is None:
        return (ua.split(" ")[0][:60] or "unknown device") if ua else "unknown device"
    return ", ".join(p for p in (browser, system) if p)


async def start_session(
    s: AsyncSession,
    user: User,
    *,
    user_agent: str = "",
    address: str = "",
    policy: SessionPolicy = DEFAULT_POLICY,
    method: str = "password",
) -> tuple[AuthSession, str]:
    """A new session for ``user``; returns the row and the cookie value (shown once)."""
    now = utcnow()
    cookie = secrets.token_urlsafe(32)
    row = AuthSession(
        user_id=user.id,
        token_hash=hash_secret(cookie),
        csrf_token=secrets.token_urlsafe(32),
        device=device_of(user_agent)[:200],
        user_agent=(user_agent or "")[:500],
        address=(address or "")[:64],
        created_at=now,
        last_seen_at=now,
        expires_at=now + policy.lifetime,
    )
    s.add(row)
    await s.flush()
    await audit(
        s,
        Actor.of(user),
        "sign_in",
        "user",
        user.id,
        {"session": row.id, "method": method, "address": row.address, "device": row.device},
    )
    return row, cookie


def _session_alive(row: AuthSession, now: datetime, policy: SessionPolicy) -> bool:
    return row.expires_at > now and row.last_seen_at + policy.idle > now


async def session_by_cookie(
    s: AsyncSession, cookie: str, policy: SessionPolicy = DEFAULT_POLICY
) -> tuple[AuthSession, User] | None:
    """The live session a cookie names and its user (active or not), or None (unknown,
    idle too long, past its lifetime).  Read only: see :func:`touch_session`."""
    if not cookie or len(cookie) > 200:
        return None
    row = (
        await s.execute(
            select(AuthSession, User)
            .join(User, User.id == AuthSession.user_id)
            .where(AuthSession.token_hash == hash_secret(cookie))
        )
    ).first()
    if row is None or not _session_alive(row[0], utcnow(), policy):
        return None
    return row[0], row[1]


def needs_touch(last: datetime | None, now: datetime | None = None) -> bool:
    return last is None or (now or utcnow()) - last >= TOUCH_EVERY


async def touch_session(s: AsyncSession, session_id: int) -> None:
    await s.execute(
        update(AuthSession).where(AuthSession.id == session_id).values(last_seen_at=utcnow())
    )


def session_dict(row: AuthSession, current_id: int | None = None) -> dict[str, Any]:
    return {
        "id": row.id,
        "device": row.device,
        "address": row.address,
        "created_at": iso(row.created_at),
        "last_seen_at": iso(row.last_seen_at),
        "expires_at": iso(row.expires_at),
        "current": row.id == current_id,
    }


async def list_sessions(
    s: AsyncSession,
    user_id: int,
    policy: SessionPolicy = DEFAULT_POLICY,
    *,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[AuthSession], int]:
    """The user's live sessions, the latest seen first, and how many there are."""
    now = utcnow()
    alive = and_(
        AuthSession.user_id == user_id,
        AuthSession.expires_at > now,
        AuthSession.last_seen_at > now - policy.idle,
    )
    total = await s.scalar(select(func.count()).select_from(AuthSession).where(alive)) or 0
    rows = await s.scalars(
        select(AuthSession)
        .where(alive)
        .order_by(AuthSession.last_seen_at.desc(), AuthSession.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(rows), int(total)


async def _drop_tickets(s: AsyncSession, user_id: int, credentials: list[str] | None) -> None:
    q = delete(LiveTicket).where(LiveTicket.user_id == user_id)
    if credentials is not None:
        q = q.where(LiveTicket.token_hash.in_(credentials))
    await s.execute(q)


async def end_session(
    s: AsyncSession, user_id: int, session_id: int, *, actor: Actor | None, reason: str
) -> None:
    """End one of ``user_id``'s sessions (:class:`NotFound` if it is not theirs)."""
    gone = (
        await s.execute(
            delete(AuthSession)
            .where(AuthSession.id == session_id, AuthSession.user_id == user_id)
            .returning(AuthSession.id)
        )
    ).first()
    if gone is None:
        raise NotFound(f"session {session_id} not found")
    await _drop_tickets(s, user_id, [f"s:{session_id}"])
    await audit(s, actor, "session_end", "user", user_id, {"session": session_id, "reason": reason})


async def end_sessions(
    s: AsyncSession,
    user_id: int,
    *,
    actor: Actor | None,
    reason: str,
    keep: int | None = None,
) -> list[int]:
    """End every session of ``user_id`` (but ``keep``); returns the ended ids."""
    q = delete(AuthSession).where(AuthSession.user_id == user_id)
    if keep is not None:
        q = q.where(AuthSession.id != keep)
    ended = [r[0] for r in (await s.execute(q.returning(AuthSession.id))).all()]
    if ended:
        await _drop_tickets(s, user_id, [f"s:{i}" for i in ended])
        await audit(s, actor, "session_end", "user", user_id, {"sessions": ended, "reason": reason})
    return ended


async def change_password(
    s: AsyncSession, user: User, new_hash: str, *, actor: Actor | None, action: str
) -> None:
    user.password_hash = new_hash
    await s.flush()
    await audit(s, actor, action, "user", user.id, {"email": user.email})


# --- invitation and reset links --------------------------------------------------------


async def issue_link(
    s: AsyncSession,
    user: User,
    purpose: str,
    *,
    actor: Actor | None,
    ttl: timedelta = LINK_TTL,
) -> tuple[AuthLink, str]:
    """A single-use link token to set (``invite``) or reset (``reset``) the password;
    the user's earlier unused links stop working.  Returns the row and the token."""
    if purpose not in ("invite", "reset"):
        raise ValueError(purpose)
    now = utcnow()
    await s.execute(delete(AuthLink).where(AuthLink.user_id == user.id, AuthLink.used_at.is_(None)))
    token = secrets.token_urlsafe(32)
    row = AuthLink(
        user_id=user.id,
        purpose=purpose,
        token_hash=hash_secret(token),
        created_at=now,
        expires_at=now + ttl,
        created_by=actor.user_id if actor else None,
    )
    s.add(row)
    await s.flush()
    await audit(s, actor, f"{purpose}_link", "user", user.id, {"email": user.email, "link": row.id})
    return row, token


async def link_user(s: AsyncSession, token: str) -> tuple[AuthLink, User]:
    """The link a token names and its user if it may still be used; :class:`LinkRefused`
    saying why not (nothing is changed)."""
    row = None
    if token and len(token) <= 200:
        row = (
            await s.execute(
                select(AuthLink, User)
                .join(User, User.id == AuthLink.user_id)
                .where(AuthLink.token_hash == hash_secret(token))
            )
        ).first()
    if row is None:
        raise LinkRefused("this link is not valid: ask your administrator for a new one", "token")
    link, user = row[0], row[1]
    if link.used_at is not None:
        raise LinkRefused("this link was already used: ask for a new one", "token")
    if link.expires_at <= utcnow():
        raise LinkRefused("this link has expired: ask for a new one", "token")
    if not user.active:
        raise LinkRefused("this user is deactivated", "token")
    return link, user


async def redeem_link(s: AsyncSession, link: AuthLink, user: User, new_hash: str) -> list[int]:
    """Use ``link`` up (once, even against a concurrent redeem) and set the password;
    a reset ends every session of the user.  Returns the ended session ids."""
    used = (
        await s.execute(
            update(AuthLink)
            .where(
                AuthLink.id == link.id,
                AuthLink.used_at.is_(None),
                AuthLink.expires_at > utcnow(),
            )
            .values(used_at=utcnow())
            .returning(AuthLink.id)
        )
    ).first()
    if used is None:
        raise LinkRefused("this link was already used: ask for a new one", "token")
    who = Actor.of(user)
    action = "password_set" if link.purpose == "invite" else "password_reset"
    await change_password(s, user, new_hash, actor=who, action=action)
    return await end_sessions(s, user.id, actor=who, reason=action)


def link_mail(purpose: str, url: str, name: str) -> tuple[str, str]:
    """(subject, text) of the email that carries a link, in Russian and English."""
    hello = f"Здравствуйте, {name}!" if name else "Здравствуйте!"
    if purpose == "invite":
        subject = "Приглашение в crmhub / Your crmhub invitation"
        ru = "Вас пригласили в crmhub. Задайте пароль по ссылке:"
        en = "You are invited to crmhub. Set your password here:"
    else:
        subject = "Сброс пароля crmhub / Reset your crmhub password"
        ru = "Кто-то (надеемся, вы) попросил сбросить пароль. Новый пароль задаётся по ссылке:"
        en = "Someone (we hope you) asked to reset your password. Set a new one here:"
    text = (
        f"{hello}\n\n{ru}\n{url}\n\nСсылка действует 24 часа и только один раз. "
        "Если вы ничего не просили, просто удалите это письмо.\n\n"
        f"{en}\n{url}\n\nThe link works once, for 24 hours. "
        "If you did not ask for it, delete this email.\n"
    )
    return subject, text


# --- API tokens ------------------------------------------------------------------------


def token_dict(t: ApiToken) -> dict[str, Any]:
    return {
        "id": t.id,
        "name": t.name,
        "scope": t.scope,
        "origin": t.origin,
        "created_at": iso(t.created_at),
        "expires_at": iso(t.expires_at),
        "last_used_at": iso(t.last_used_at),
        "expired": t.expires_at is not None and t.expires_at <= utcnow(),
    }


async def create_token(
    s: AsyncSession,
    user: User,
    name: str,
    scope: str = "full",
    expires_at: datetime | None = None,
    *,
    origin: str = "user",
    actor: Actor | None = None,
) -> tuple[ApiToken, str]:
    """A new API token of ``user``; returns the row and the token (shown once)."""
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise Invalid("name: 1 to 100 characters", "name")
    if scope not in SCOPES:
        raise Invalid(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}", "scope")
    if expires_at is not None:
        if expires_at.tzinfo is None:
            raise Invalid("expires_at: give a time zone (e.g. 2027-01-31T00:00:00Z)", "expires_at")
        if expires_at <= utcnow():
            raise Invalid("expires_at: must be in the future", "expires_at")
        if expires_at > utcnow() + timedelta(days=3660):
            raise Invalid("expires_at: at most ten years ahead", "expires_at")
    token = secrets.token_urlsafe(32)
    row = ApiToken(
        user_id=user.id,
        name=name,
        token_hash=hash_secret(token),
        scope=scope,
        origin=origin,
        expires_at=expires_at,
        created_at=utcnow(),
    )
    s.add(row)
    await s.flush()
    await audit(
        s,
        actor,
        "token_create",
        "user",
        user.id,
        {"token": row.id, "name": name, "scope": scope, "expires_at": iso(expires_at)},
    )
    return row, token


async def list_tokens(
    s: AsyncSession, user_id: int, *, limit: int = 100, offset: int = 0
) -> tuple[list[ApiToken], int]:
    """The user's tokens not revoked (expired ones too, marked), newest first."""
    cond = and_(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
    total = await s.scalar(select(func.count()).select_from(ApiToken).where(cond)) or 0
    rows = await s.scalars(
        select(ApiToken).where(cond).order_by(ApiToken.id.desc()).limit(limit).offset(offset)
    )
    return list(rows), int(total)


async def revoke_token(
    s: AsyncSession, user_id: int, token_id: int, *, actor: Actor | None
) -> ApiToken:
    row = await s.scalar(
        select(ApiToken).where(
            ApiToken.id == token_id, ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None)
        )
    )
    if row is None:
        raise NotFound(f"token {token_id} not found")
    row.revoked_at = utcnow()
    await _drop_tickets(s, user_id, [f"t:{token_id}"])
    await s.flush()
    await audit(s, actor, "token_revoke", "user", user_id, {"token": row.id, "name": row.name})
    return row


async def rotate_admin_token(
    s: AsyncSession, user: User, *, actor: Actor | None
) -> tuple[ApiToken, str, list[int]]:
    """Revoke the token(s) ``users add``/``rotate-token`` gave ``user`` (or the migration
    carried over) and issue a new one; tokens the user made themselves stay.  Returns
    the new row, its token and the revoked ids."""
    now = utcnow()
    revoked = [
        r[0]
        for r in (
            await s.execute(
                update(ApiToken)
                .where(
                    ApiToken.user_id == user.id,
                    ApiToken.origin.in_(("admin", "migrated")),
                    ApiToken.revoked_at.is_(None),
                )
                .values(revoked_at=now)
                .returning(ApiToken.id)
            )
        ).all()
    ]
    await _drop_tickets(s, user.id, [f"t:{i}" for i in revoked])
    row, token = await create_token(s, user, "API token", "full", origin="admin", actor=actor)
    user.token_hash = row.token_hash  # the key that signs recording links changes too
    await s.flush()
    await audit(
        s, actor, "rotate_token", "user", user.id, {"email": user.email, "revoked": revoked}
    )
    return row, token, revoked


async def authenticate_token(s: AsyncSession, token: str) -> tuple[ApiToken, User]:
    """The token row and its user (active or not); :class:`TokenRefused` when the token
    is unknown, revoked or expired.  The token is hashed before the lookup, so the
    comparison never runs over the secret itself."""
    if not token or len(token) > 200:
        raise TokenRefused("invalid API token", "Authorization")
    row = (
        await s.execute(
            select(ApiToken, User)
            .join(User, User.id == ApiToken.user_id)
            .where(ApiToken.token_hash == hash_secret(token))
        )
    ).first()
    if row is None or row[0].revoked_at is not None:
        raise TokenRefused("invalid API token", "Authorization")
    if row[0].expires_at is not None and row[0].expires_at <= utcnow():
        raise TokenRefused("this API token has expired", "Authorization")
    return row[0], row[1]


async def touch_token(s: AsyncSession, token_id: int) -> None:
    await s.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=utcnow()))


# --- credentials of live streams -------------------------------------------------------


async def valid_credentials(
    s: AsyncSession, credentials: set[str], policy: SessionPolicy = DEFAULT_POLICY
) -> set[str]:
    """Which of ``t:<token id>`` / ``s:<session id>`` still open a stream: the token
    not revoked or expired, the session alive, and the user active."""
    now = utcnow()
    tokens = {int(c[2:]) for c in credentials if c.startswith("t:") and c[2:].isdigit()}
    sessions = {int(c[2:]) for c in credentials if c.startswith("s:") and c[2:].isdigit()}
    out: set[str] = set()
    if tokens:
        rows = await s.execute(
            select(ApiToken.id)
            .join(User, User.id == ApiToken.user_id)
            .where(
                ApiToken.id.in_(tokens),
                ApiToken.revoked_at.is_(None),
                or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > now),
                User.active.is_(True),
            )
        )
        out |= {f"t:{r[0]}" for r in rows}
    if sessions:
        rows = await s.execute(
            select(AuthSession.id)
            .join(User, User.id == AuthSession.user_id)
            .where(
                AuthSession.id.in_(sessions),
                AuthSession.expires_at > now,
                AuthSession.last_seen_at > now - policy.idle,
                User.active.is_(True),
            )
        )
        out |= {f"s:{r[0]}" for r in rows}
    return out
