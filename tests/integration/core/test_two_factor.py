"""Two-factor (TOTP) on SQLite and PostgreSQL: enrolment, codes used once, recovery codes,
challenges that expire, are used once and are voided by wrong codes, the audit."""

from __future__ import annotations

import time
from datetime import timedelta

import pyotp
import pytest
from sqlalchemy import select, update

from crm_core.access import Actor
from crm_core.db import Database
from crm_core.models import (
    AuditEntry,
    TwoFactor,
    TwoFactorChallenge,
    TwoFactorRecoveryCode,
    utcnow,
)
from crm_core.services import two_factor as tf
from crm_core.services.common import Conflict, Invalid
from crm_core.services.users import create_user


async def _user(db: Database, email: str = "anna@example.ru"):  # type: ignore[no-untyped-def]
    async with db.transaction() as s:
        user, _ = await create_user(s, email, "manager")
    return user


async def _enrolled(db: Database, email: str = "anna@example.ru"):  # type: ignore[no-untyped-def]
    user = await _user(db, email)
    async with db.transaction() as s:
        setup = await tf.begin_setup(s, user)
    now = time.time()
    code = pyotp.TOTP(setup["secret"]).at(now)
    async with db.transaction() as s:
        codes = await tf.enable(s, user, code, actor=Actor.of(user), now=now)
    return user, setup["secret"], codes, now


async def _actions(db: Database, user_id: int) -> list[str]:
    async with db.sessions() as s:
        rows = await s.scalars(
            select(AuditEntry.action)
            .where(AuditEntry.entity == "user", AuditEntry.entity_id == user_id)
            .order_by(AuditEntry.id)
        )
        return [a for a in rows if a.startswith("two_factor")]


async def test_enrolment_gives_a_qr_and_ten_recovery_codes_stored_hashed(db: Database) -> None:
    user = await _user(db)
    async with db.transaction() as s:
        first = await tf.begin_setup(s, user)
        setup = await tf.begin_setup(s, user)  # a second start replaces the secret
    assert first["secret"] != setup["secret"]
    assert setup["otpauth_uri"].startswith("otpauth://totp/crmhub:anna%40example.ru?secret=")
    assert "issuer=crmhub" in setup["otpauth_uri"]
    assert setup["qr_svg"].startswith("<svg") and "<path" in setup["qr_svg"]
    async with db.sessions() as s:
        assert (await tf.two_factor_status(s, user.id))["enabled"] is False
        assert not await tf.is_enabled(s, user.id)

    async with db.transaction() as s:
        with pytest.raises(Invalid) as wrong:
            await tf.enable(s, user, "000000", actor=Actor.of(user))
    assert wrong.value.field == "code"
    now = time.time()
    async with db.transaction() as s:
        codes = await tf.enable(
            s, user, pyotp.TOTP(setup["secret"]).at(now), actor=Actor.of(user), now=now
        )
    assert len(codes) == len(set(codes)) == 10
    async with db.sessions() as s:
        status = await tf.two_factor_status(s, user.id)
        stored = list(await s.scalars(select(TwoFactorRecoveryCode.code_hash)))
    assert status["enabled"] is True and status["recovery_codes_left"] == 10
    assert len(stored) == 10 and not any(c.replace("-", "") in stored for c in codes)
    async with db.transaction() as s:
        with pytest.raises(Conflict):
            await tf.begin_setup(s, user)
    assert await _actions(db, user.id) == ["two_factor_failed", "two_factor_enable"]


async def test_a_totp_code_is_accepted_once_and_a_neighbour_step_counts(db: Database) -> None:
    user, secret, _, now = await _enrolled(db)
    totp = pyotp.TOTP(secret)
    later = now + 30
    async with db.transaction() as s:
        # the code used for enabling is spent
        assert await tf.check_code(s, user.id, totp.at(now), now=now) is None
        assert await tf.check_code(s, user.id, totp.at(later), now=later) == "totp"
    async with db.transaction() as s:
        assert await tf.check_code(s, user.id, totp.at(later), now=later) is None
        # a code of the previous step is not accepted after a later one was
        assert await tf.check_code(s, user.id, totp.at(now), now=later + 1) is None
        # a clock 30 s behind: the next step's code still works, once
        ahead = later + 60
        assert await tf.check_code(s, user.id, totp.at(ahead + 30), now=ahead) == "totp"
        assert await tf.check_code(s, user.id, "12345", now=ahead) is None
        assert await tf.check_code(s, user.id, "x" * 5000, now=ahead) is None


async def test_recovery_codes_work_once_each_in_any_spelling(db: Database) -> None:
    user, _, codes, _ = await _enrolled(db)
    async with db.transaction() as s:
        assert await tf.check_code(s, user.id, codes[0]) == "recovery"
        assert await tf.check_code(s, user.id, codes[0]) is None
        assert (
            await tf.check_code(s, user.id, " " + codes[1].upper().replace("-", " ")) == "recovery"
        )
        assert await tf.check_code(s, user.id, "aaaaa-aaaaa") is None
    async with db.sessions() as s:
        assert (await tf.two_factor_status(s, user.id))["recovery_codes_left"] == 8
    other = await _user(db, "boris@example.ru")
    async with db.transaction() as s:  # another user's code is not theirs
        assert await tf.check_code(s, other.id, codes[2]) is None


async def test_disable_needs_a_right_code_and_is_audited(db: Database) -> None:
    user, secret, codes, now = await _enrolled(db)
    async with db.transaction() as s:
        with pytest.raises(Invalid):
            await tf.disable(s, user, "111111", actor=Actor.of(user))
    async with db.transaction() as s:
        await tf.disable(s, user, codes[3], actor=Actor.of(user))
    async with db.sessions() as s:
        assert not await tf.is_enabled(s, user.id)
        assert await s.get(TwoFactor, user.id) is None
        assert list(await s.scalars(select(TwoFactorRecoveryCode.code_hash))) == []
    async with db.transaction() as s:
        with pytest.raises(Conflict):
            await tf.disable(s, user, pyotp.TOTP(secret).at(now + 90), actor=Actor.of(user))
    assert await _actions(db, user.id) == [
        "two_factor_enable",
        "two_factor_failed",
        "two_factor_disable",
    ]


async def test_challenges_expire_are_single_use_and_voided_by_wrong_codes(db: Database) -> None:
    user, _, _, _ = await _enrolled(db)
    async with db.transaction() as s:
        ch = await tf.start_challenge(s, user, "verify")
    async with db.transaction() as s:
        assert await tf.open_challenge(s, ch, "setup") is None  # another purpose
        opened = await tf.open_challenge(s, ch, "verify")
        assert opened is not None and opened.user.id == user.id
        assert await tf.finish_challenge(s, opened)
        assert not await tf.finish_challenge(s, opened)  # used once
    async with db.sessions() as s:
        assert await tf.open_challenge(s, ch, "verify") is None
        assert await tf.open_challenge(s, "", "verify") is None
        assert await tf.open_challenge(s, "z" * 1000, "verify") is None

    async with db.transaction() as s:
        ch2 = await tf.start_challenge(s, user, "verify")
    for _ in range(tf.CHALLENGE_FAILURES - 1):
        async with db.transaction() as s:
            opened = await tf.open_challenge(s, ch2, "verify")
            assert opened is not None
            await tf.fail_challenge(s, opened)
    async with db.transaction() as s:
        opened = await tf.open_challenge(s, ch2, "verify")
        assert opened is not None
        await tf.fail_challenge(s, opened)  # the fifth wrong code
    async with db.sessions() as s:
        assert await tf.open_challenge(s, ch2, "verify") is None
    assert (await _actions(db, user.id)).count("two_factor_failed") == tf.CHALLENGE_FAILURES

    async with db.transaction() as s:
        ch3 = await tf.start_challenge(s, user, "verify")
        await s.execute(
            update(TwoFactorChallenge).values(expires_at=utcnow() - timedelta(seconds=1))
        )
    async with db.sessions() as s:
        assert await tf.open_challenge(s, ch3, "verify") is None


async def test_an_admin_reset_drops_the_secret_codes_and_challenges(db: Database) -> None:
    user, _, codes, _ = await _enrolled(db)
    async with db.transaction() as s:
        ch = await tf.start_challenge(s, user, "verify")
        assert await tf.reset(s, user, actor=None)
        assert not await tf.reset(s, user, actor=None)
    async with db.transaction() as s:
        assert await tf.open_challenge(s, ch, "verify") is None
        assert await tf.check_code(s, user.id, codes[0]) is None
    assert (await _actions(db, user.id))[-1] == "two_factor_reset"
