"""Two-factor sign-in through the whole app on SQLite and PostgreSQL: enrolment with the
session cookie and CSRF, the second step (no cookie before it; a code once; a recovery
code once; wrong codes count toward the flood limit), the enrolment a role requires
(nothing but enrolment reachable), turning it off, the admin's reset, the audit."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pyotp
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from crm_core.db import Database
from crm_core.models import AuditEntry, User
from crm_core.services.auth import hash_password
from gateway.app import create_app
from tests.support.app import add_user, bearer, make_settings, running

PASSWORD = "Синий-кит-2026"


async def _with_password(db_url: str, email: str, role: str) -> tuple[int, str]:
    user_id, token = await add_user(db_url, email, role, name=email.split("@")[0])
    db = Database(db_url)
    try:
        async with db.transaction() as s:
            user = await s.get(User, user_id)
            assert user is not None
            user.password_hash = await asyncio.to_thread(hash_password, PASSWORD)
    finally:
        await db.dispose()
    return user_id, token


async def _login(client: TestClient, email: str, password: str = PASSWORD) -> tuple[int, Any]:
    r = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    return r.status, await r.json()


def _has_cookie(client: TestClient) -> bool:
    return any(c.key == "crmhub_session" for c in client.session.cookie_jar)


async def _actions(db_url: str, user_id: int) -> list[str]:
    db = Database(db_url)
    try:
        async with db.sessions() as s:
            rows = await s.scalars(
                select(AuditEntry.action)
                .where(AuditEntry.entity == "user", AuditEntry.entity_id == user_id)
                .order_by(AuditEntry.id)
            )
            return [a for a in rows if "two_factor" in a]
    finally:
        await db.dispose()


async def test_enrol_then_sign_in_with_a_code_and_a_recovery_code(
    db_url: str, tmp_path: Path
) -> None:
    user_id, _ = await _with_password(db_url, "anna@example.ru", "manager")
    app = create_app(make_settings(db_url, tmp_path))
    async with running(app) as client:
        status, out = await _login(client, "anna@example.ru")
        assert status == 200, out
        csrf = {"X-CSRF-Token": out["csrf_token"]}
        r = await client.get("/api/v1/auth/two-factor")
        assert (await r.json())["enabled"] is False
        r = await client.post("/api/v1/auth/two-factor/setup", json={})
        assert r.status == 403  # no CSRF token
        r = await client.post("/api/v1/auth/two-factor/setup", json={}, headers=csrf)
        setup = await r.json()
        assert r.status == 200, setup
        assert setup["qr_svg"].startswith("<svg")
        totp = pyotp.TOTP(setup["secret"])
        r = await client.post(
            "/api/v1/auth/two-factor/enable", json={"code": "123456"}, headers=csrf
        )
        assert r.status == 422 and (await r.json())["field"] == "code"
        now = time.time()
        r = await client.post(
            "/api/v1/auth/two-factor/enable", json={"code": totp.at(now)}, headers=csrf
        )
        codes = (await r.json())["recovery_codes"]
        assert r.status == 200 and len(codes) == 10
        r = await client.post("/api/v1/auth/logout", json={}, headers=csrf)
        assert r.status in (200, 204)
        client.session.cookie_jar.clear()

        # the password step: a challenge, no cookie
        status, out = await _login(client, "anna@example.ru")
        assert status == 200 and out["two_factor_required"] is True, out
        assert "user" not in out and not _has_cookie(client)
        assert (await client.get("/api/v1/me")).status == 401
        challenge = out["challenge"]
        step = "/api/v1/auth/login/two-factor"
        r = await client.post(step, json={"challenge": challenge, "code": totp.at(now)})
        assert r.status == 422  # spent when enabling
        assert not _has_cookie(client)
        r = await client.post(step, json={"challenge": "forged", "code": totp.at(now + 30)})
        assert r.status == 401 and (await r.json())["field"] == "challenge"
        r = await client.post(step, json={"challenge": challenge, "code": totp.at(now + 30)})
        body = await r.json()
        assert r.status == 200, body
        assert body["user"]["email"] == "anna@example.ru" and body["csrf_token"]
        assert _has_cookie(client)
        assert (await client.get("/api/v1/me")).status == 200
        r = await client.post(step, json={"challenge": challenge, "code": codes[0]})
        assert r.status == 401  # the challenge is single-use
        client.session.cookie_jar.clear()

        # a recovery code, once
        _, out = await _login(client, "anna@example.ru")
        r = await client.post(step, json={"challenge": out["challenge"], "code": codes[0]})
        assert r.status == 200
        client.session.cookie_jar.clear()
        _, out = await _login(client, "anna@example.ru")
        r = await client.post(step, json={"challenge": out["challenge"], "code": codes[0]})
        assert r.status == 422
    actions = await _actions(db_url, user_id)
    assert actions.count("two_factor_enable") == 1
    assert actions.count("two_factor_failed") == 3  # enable, sign-in, reused recovery code


async def test_wrong_codes_count_toward_the_flood_limit(db_url: str, tmp_path: Path) -> None:
    await _with_password(db_url, "anna@example.ru", "manager")
    app = create_app(make_settings(db_url, tmp_path))
    async with running(app) as client:
        _, out = await _login(client, "anna@example.ru")
        csrf = {"X-CSRF-Token": out["csrf_token"]}
        setup = await (
            await client.post("/api/v1/auth/two-factor/setup", json={}, headers=csrf)
        ).json()
        code = pyotp.TOTP(setup["secret"]).now()
        r = await client.post("/api/v1/auth/two-factor/enable", json={"code": code}, headers=csrf)
        assert r.status == 200
        client.session.cookie_jar.clear()
        _, out = await _login(client, "anna@example.ru")
        challenge = out["challenge"]
        statuses = []
        for _ in range(6):
            r = await client.post(
                "/api/v1/auth/login/two-factor", json={"challenge": challenge, "code": "000000"}
            )
            statuses.append(r.status)
            if r.status == 429:
                assert int(r.headers["Retry-After"]) > 0
        # five wrong codes void the challenge; the password step is now refused too
        assert statuses[:5] == [422] * 5 and statuses[5] in (401, 429)
        status, out = await _login(client, "anna@example.ru")
        assert status == 429, out
        assert not _has_cookie(client)


async def test_a_role_that_must_use_two_factor_enrols_before_anything_else(
    db_url: str, tmp_path: Path
) -> None:
    admin_id, admin_token = await _with_password(db_url, "boss@example.ru", "admin")
    await _with_password(db_url, "anna@example.ru", "manager")
    app = create_app(make_settings(db_url, tmp_path, two_factor_roles=["admin"]))
    async with running(app) as client:
        status, out = await _login(client, "anna@example.ru")  # managers are not concerned
        assert status == 200 and "user" in out
        client.session.cookie_jar.clear()

        status, out = await _login(client, "boss@example.ru")
        assert status == 200 and out["two_factor_setup_required"] is True, out
        assert not _has_cookie(client)
        assert (await client.get("/api/v1/users")).status == 401  # nothing else works
        challenge = out["challenge"]
        r = await client.post(
            "/api/v1/auth/login/two-factor", json={"challenge": challenge, "code": "000000"}
        )
        assert r.status == 401  # a setup challenge is not a sign-in challenge
        r = await client.post("/api/v1/auth/login/two-factor/setup", json={"challenge": challenge})
        setup = await r.json()
        assert r.status == 200, setup
        r = await client.post(
            "/api/v1/auth/login/two-factor/enable",
            json={"challenge": challenge, "code": pyotp.TOTP(setup["secret"]).now()},
        )
        body = await r.json()
        assert r.status == 200, body
        assert len(body["recovery_codes"]) == 10 and body["user"]["id"] == admin_id
        assert _has_cookie(client)
        csrf = {"X-CSRF-Token": body["csrf_token"]}
        r = await client.get("/api/v1/auth/two-factor")
        assert await r.json() == {
            "enabled": True,
            "enabled_at": (await r.json())["enabled_at"],
            "recovery_codes_left": 10,
            "required": True,
        }
        r = await client.post(
            "/api/v1/auth/two-factor/disable",
            json={"password": PASSWORD, "code": body["recovery_codes"][0]},
            headers=csrf,
        )
        assert r.status == 403  # required for the role
        r = await client.post(
            "/api/v1/auth/login/two-factor/enable",
            json={"challenge": challenge, "code": "000000"},
        )
        assert r.status == 401  # used up
    # the API token of the admin is not asked for a second factor (integrations)
    app = create_app(make_settings(db_url, tmp_path, two_factor_roles=["admin"]))
    async with running(app) as client:
        r = await client.get("/api/v1/users", headers=bearer(admin_token))
        assert r.status == 200


async def test_turning_off_needs_password_and_code_and_an_admin_can_reset(
    db_url: str, tmp_path: Path
) -> None:
    user_id, _ = await _with_password(db_url, "anna@example.ru", "manager")
    _, admin_token = await add_user(db_url, "boss@example.ru", "admin")
    app = create_app(make_settings(db_url, tmp_path))
    async with running(app) as client:
        _, out = await _login(client, "anna@example.ru")
        csrf = {"X-CSRF-Token": out["csrf_token"]}
        setup = await (
            await client.post("/api/v1/auth/two-factor/setup", json={}, headers=csrf)
        ).json()
        totp = pyotp.TOTP(setup["secret"])
        now = time.time()
        r = await client.post(
            "/api/v1/auth/two-factor/enable", json={"code": totp.at(now)}, headers=csrf
        )
        codes = (await r.json())["recovery_codes"]
        off = "/api/v1/auth/two-factor/disable"
        r = await client.post(off, json={"password": "wrong", "code": codes[0]}, headers=csrf)
        assert r.status == 422 and (await r.json())["field"] == "password"
        r = await client.post(off, json={"password": PASSWORD, "code": "999999"}, headers=csrf)
        assert r.status == 422 and (await r.json())["field"] == "code"
        r = await client.post(off, json={"password": PASSWORD, "code": codes[0]}, headers=csrf)
        assert r.status == 200 and (await r.json())["enabled"] is False

        # on again, then the admin resets it (a lost phone)
        setup = await (
            await client.post("/api/v1/auth/two-factor/setup", json={}, headers=csrf)
        ).json()
        code = pyotp.TOTP(setup["secret"]).now()
        r = await client.post("/api/v1/auth/two-factor/enable", json={"code": code}, headers=csrf)
        assert r.status == 200
        reset = f"/api/v1/users/{user_id}/two-factor/reset"
        r = await client.post(reset, json={}, headers=csrf)
        assert r.status == 403  # not an admin
        r = await client.post(reset, json={}, headers=bearer(admin_token))
        assert r.status == 200 and (await r.json())["enabled"] is False
    assert await _actions(db_url, user_id) == [
        "two_factor_enable",
        "two_factor_failed",
        "two_factor_failed",
        "two_factor_disable",
        "two_factor_enable",
        "two_factor_reset",
    ]
