"""Two-factor sign-in with TOTP (RFC 6238, ``pyotp``): enrolment, recovery codes and the
second step of a sign-in.

* Enrolment: :func:`begin_setup` stores a fresh secret (not yet in force) and returns
  it with its ``otpauth://`` URI and a QR code (inline SVG, ``segno``);
  :func:`enable` puts it in force once the first code from the app is right and returns
  ten recovery codes, shown once and stored as SHA-256 (each works once).
* A code is a 6-digit TOTP code (the current 30-second step or one either side, for a
  clock a little off) or a recovery code.  A TOTP step once accepted is never accepted
  again (``last_step`` moves forward in one conditional UPDATE, so two requests racing
  with the same code cannot both win); a recovery code is deleted in the statement that
  accepts it.
* The second step of a sign-in: the password step starts a *challenge*
  (:func:`start_challenge`, 5 minutes for ``verify``, 15 for a forced ``setup``), only
  its SHA-256 stored; :func:`finish_challenge` uses it up; five wrong codes void it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pyotp
import segno
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.access import Actor
from crm_core.models import (
    TwoFactor,
    TwoFactorChallenge,
    TwoFactorRecoveryCode,
    User,
    utcnow,
)
from crm_core.services.common import Conflict, Invalid, audit, iso

__all__ = [
    "CHALLENGE_FAILURES",
    "CHALLENGE_SECONDS",
    "ISSUER",
    "RECOVERY_CODES",
    "Challenge",
    "begin_setup",
    "check_code",
    "disable",
    "enable",
    "fail_challenge",
    "finish_challenge",
    "is_enabled",
    "open_challenge",
    "reset",
    "start_challenge",
    "two_factor_status",
]

ISSUER = "crmhub"
RECOVERY_CODES = 10
CHALLENGE_SECONDS = {"verify": 300, "setup": 900}
CHALLENGE_FAILURES = 5
_STEP = 30  # seconds of one TOTP code
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _new_recovery_code() -> str:
    raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(10))
    return f"{raw[:5]}-{raw[5:]}"


def _normalized(code: str) -> str:
    return "".join(ch for ch in code.lower() if ch not in " -\t")


def _qr_svg(uri: str) -> str:
    return segno.make(uri, error="m").svg_inline(scale=4, border=4, title="QR", dark="#000")


async def is_enabled(s: AsyncSession, user_id: int) -> bool:
    row = await s.scalar(
        select(TwoFactor.user_id).where(
            TwoFactor.user_id == user_id, TwoFactor.enabled_at.is_not(None)
        )
    )
    return row is not None


async def two_factor_status(s: AsyncSession, user_id: int) -> dict[str, Any]:
    """``{"enabled", "enabled_at", "recovery_codes_left"}`` for the profile page."""
    row = await s.get(TwoFactor, user_id)
    left = await s.scalar(select(func.count()).where(TwoFactorRecoveryCode.user_id == user_id))
    enabled = row is not None and row.enabled_at is not None
    return {
        "enabled": enabled,
        "enabled_at": iso(row.enabled_at) if row is not None and enabled else None,
        "recovery_codes_left": int(left or 0) if enabled else 0,
    }


async def begin_setup(s: AsyncSession, user: User) -> dict[str, str]:
    """A new secret for ``user`` (replacing an unfinished enrolment); not in force until
    :func:`enable`.  Conflict if two-factor is already on."""
    row = await s.get(TwoFactor, user.id, with_for_update=True)
    if row is not None and row.enabled_at is not None:
        raise Conflict("two-factor sign-in is already on; turn it off first", "two_factor")
    secret = pyotp.random_base32()
    if row is None:
        s.add(TwoFactor(user_id=user.id, secret=secret))
    else:
        row.secret = secret
        row.last_step = None
        row.created_at = utcnow()
    await s.flush()
    uri = pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=ISSUER)
    return {"secret": secret, "otpauth_uri": uri, "qr_svg": _qr_svg(uri)}


async def _accept_totp(s: AsyncSession, row: TwoFactor, code: str, now: float) -> bool:
    totp = pyotp.TOTP(row.secret)
    current = int(now // _STEP)
    for step in (current, current - 1, current + 1):
        if hmac.compare_digest(totp.at(step * _STEP), code):
            moved = await s.execute(
                update(TwoFactor)
                .where(
                    TwoFactor.user_id == row.user_id,
                    or_(TwoFactor.last_step.is_(None), TwoFactor.last_step < step),
                )
                .values(last_step=step)
                .execution_options(synchronize_session=False)
            )
            return bool(getattr(moved, "rowcount", 0) == 1)
    return False


async def check_code(
    s: AsyncSession, user_id: int, code: str, *, now: float | None = None
) -> str | None:
    """``"totp"`` or ``"recovery"`` when ``code`` is right for ``user_id``'s two-factor in
    force (and is used up), None otherwise."""
    row = await s.get(TwoFactor, user_id)
    if row is None or row.enabled_at is None or not isinstance(code, str):
        return None
    value = _normalized(code)
    if len(value) > 64:
        return None
    if value.isdigit() and len(value) == 6:
        ok = await _accept_totp(s, row, value, time.time() if now is None else now)
        return "totp" if ok else None
    if len(value) != 10:
        return None
    used = await s.execute(
        delete(TwoFactorRecoveryCode).where(
            TwoFactorRecoveryCode.user_id == user_id,
            TwoFactorRecoveryCode.code_hash == _sha(value),
        )
    )
    return "recovery" if getattr(used, "rowcount", 0) == 1 else None


async def enable(
    s: AsyncSession, user: User, code: str, *, actor: Actor | None, now: float | None = None
) -> list[str]:
    """Put the enrolled secret in force when ``code`` is right; returns the recovery codes
    (shown once).  Invalid (field ``code``) for a wrong code, Conflict without an
    enrolment or when already on."""
    row = await s.get(TwoFactor, user.id, with_for_update=True)
    if row is None:
        raise Conflict("start the enrolment first (two-factor/setup)", "code")
    if row.enabled_at is not None:
        raise Conflict("two-factor sign-in is already on", "code")
    value = _normalized(code)
    ok = (
        value.isdigit()
        and len(value) == 6
        and await _accept_totp(s, row, value, time.time() if now is None else now)
    )
    if not ok:
        await audit(s, actor, "two_factor_failed", "user", user.id, {"during": "enable"})
        raise Invalid("the code is wrong or expired: enter the current code from the app", "code")
    await s.refresh(row)
    row.enabled_at = utcnow()
    codes = await _replace_recovery_codes(s, user.id)
    await audit(s, actor, "two_factor_enable", "user", user.id, {})
    return codes


async def _replace_recovery_codes(s: AsyncSession, user_id: int) -> list[str]:
    await s.execute(delete(TwoFactorRecoveryCode).where(TwoFactorRecoveryCode.user_id == user_id))
    codes: list[str] = []
    while len(codes) < RECOVERY_CODES:
        code = _new_recovery_code()
        if code not in codes:
            codes.append(code)
    s.add_all(TwoFactorRecoveryCode(user_id=user_id, code_hash=_sha(_normalized(c))) for c in codes)
    await s.flush()
    return codes


async def disable(
    s: AsyncSession, user: User, code: str, *, actor: Actor | None, now: float | None = None
) -> None:
    """Turn two-factor off after a right code (TOTP or recovery); the caller has checked
    the password.  Invalid (``code``) for a wrong code, Conflict when it is off."""
    if not await is_enabled(s, user.id):
        raise Conflict("two-factor sign-in is not on", "code")
    if await check_code(s, user.id, code, now=now) is None:
        await audit(s, actor, "two_factor_failed", "user", user.id, {"during": "disable"})
        raise Invalid("the code is wrong or already used", "code")
    await _drop(s, user.id)
    await audit(s, actor, "two_factor_disable", "user", user.id, {})


async def reset(s: AsyncSession, user: User, *, actor: Actor | None) -> bool:
    """An admin turns a user's two-factor off (a lost phone and no recovery code left);
    False when it was not on or enrolling."""
    if await s.get(TwoFactor, user.id) is None:
        return False
    await _drop(s, user.id)
    await audit(s, actor, "two_factor_reset", "user", user.id, {})
    return True


async def _drop(s: AsyncSession, user_id: int) -> None:
    await s.execute(delete(TwoFactorRecoveryCode).where(TwoFactorRecoveryCode.user_id == user_id))
    await s.execute(delete(TwoFactor).where(TwoFactor.user_id == user_id))
    await s.execute(delete(TwoFactorChallenge).where(TwoFactorChallenge.user_id == user_id))


@dataclass(frozen=True, slots=True)
class Challenge:
    key: str  # its SHA-256
    user: User
    purpose: str


async def start_challenge(s: AsyncSession, user: User, purpose: str) -> str:
    """A new challenge (``verify`` or ``setup``) for ``user``; expired ones are swept."""
    if purpose not in CHALLENGE_SECONDS:
        raise ValueError(f"unknown challenge purpose {purpose!r}")
    now = utcnow()
    await s.execute(delete(TwoFactorChallenge).where(TwoFactorChallenge.expires_at < now))
    challenge = secrets.token_urlsafe(32)
    s.add(
        TwoFactorChallenge(
            challenge_hash=_sha(challenge),
            user_id=user.id,
            purpose=purpose,
            failures=0,
            expires_at=now + timedelta(seconds=CHALLENGE_SECONDS[purpose]),
        )
    )
    await s.flush()
    return challenge


async def open_challenge(s: AsyncSession, challenge: str, purpose: str) -> Challenge | None:
    """The live challenge of ``purpose`` and its active user, or None (unknown, expired,
    used, voided, or the user deactivated)."""
    if not isinstance(challenge, str) or not challenge or len(challenge) > 200:
        return None
    key = _sha(challenge)
    row = await s.get(TwoFactorChallenge, key)
    if row is None or row.purpose != purpose or row.expires_at < utcnow():
        return None
    user = await s.get(User, row.user_id)
    if user is None or not user.active:
        return None
    return Challenge(key=key, user=user, purpose=purpose)


async def finish_challenge(s: AsyncSession, challenge: Challenge) -> bool:
    """Use the challenge up; False when another request used it first."""
    gone = await s.execute(
        delete(TwoFactorChallenge).where(TwoFactorChallenge.challenge_hash == challenge.key)
    )
    return bool(getattr(gone, "rowcount", 0) == 1)


async def fail_challenge(s: AsyncSession, challenge: Challenge) -> None:
    """Count a wrong code (audited); the last allowed failure voids the challenge."""
    await s.execute(
        update(TwoFactorChallenge)
        .where(TwoFactorChallenge.challenge_hash == challenge.key)
        .values(failures=TwoFactorChallenge.failures + 1)
        .execution_options(synchronize_session=False)
    )
    await s.execute(
        delete(TwoFactorChallenge).where(
            TwoFactorChallenge.challenge_hash == challenge.key,
            TwoFactorChallenge.failures >= CHALLENGE_FAILURES,
        )
    )
    await audit(
        s,
        Actor.of(challenge.user),
        "two_factor_failed",
        "user",
        challenge.user.id,
        {"during": "sign_in" if challenge.purpose == "verify" else "setup"},
    )
