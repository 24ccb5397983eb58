"""Signing in with email and password (issue 16): the session cookie and its flags,
CSRF on every cookie-authenticated change (none for Bearer), the same answer for an
unknown email, the rate limit (429 + Retry-After) per account and per address, logout,
idle expiry, and the audit entries.  The real app on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select, update

from crm_core.models import AuditEntry, AuthSession, User, utcnow
from gateway.api.keys import DB
from gateway.app import create_app
from tests.support.app import add_user, bearer, make_settings
from tests.support.signin import PASSWORD, sign_in, with_password


async def start(
    db_url: str, tmp_path: Path, aiohttp_client: Any, **settings: Any
) -> tuple[TestClient[Any, Any], dict[str, tuple[int, str]]]:
    users = {
        "admin": await add_user(db_url, "admin@example.ru", "admin"),
        "anna": await add_user(db_url, "anna@example.ru", "manager", name="Анна"),
    }
    await with_password(db_url, "anna@example.ru")
    app: web.Application = create_app(
        make_settings(db_url, tmp_path, run_workers=False, sla_poll_seconds=0, **settings)
    )
    return await aiohttp_client(app), users


async def login(
    client: TestClient[Any, Any], email: str, password: str, **headers: str
) -> tuple[int, Any, Any]:
    r = await client.post(
        "/api/v1/auth/login", json={"email": email, "password": password}, headers=headers
    )
    body = await r.json()
    client.session.cookie_jar.clear()
    return r.status, body, r


async def test_login_sets_a_session_cookie_and_writes_need_csrf(
    db_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    client, u = await start(db_url, tmp_path, aiohttp_client)
    anna_id, anna_token = u["anna"]

    status, body, r = await login(client, "Anna@Example.ru", PASSWORD, **{"User-Agent": "x"})
    assert status == 200, body
    assert body["user"]["id"] == anna_id and body["user"]["email"] == "anna@example.ru"
    assert body["csrf_token"]
    set_cookie = r.headers["Set-Cookie"]
    assert set_cookie.startswith("crmhub_session=")
    flags = {f.strip().split("=")[0].lower() for f in set_cookie.split(";")[1:]}
    assert {"httponly", "path", "samesite", "max-age"} <= flags
    assert "samesite=lax" in set_cookie.lower() and "path=/" in set_cookie.lower()
    assert "secure" not in flags  # public_url is not https here
    cookie = r.cookies["crmhub_session"].value
    assert cookie not in str(body)
    csrf = body["csrf_token"]
    jar = {"Cookie": f"crmhub_session={cookie}"}

    # /me with the cookie answers the user and the CSRF token; with a token, no token
    r = await client.get("/api/v1/me", headers=jar)
    me = await r.json()
    assert r.status == 200 and me["id"] == anna_id and me["csrf_token"] == csrf
    r = await client.get("/api/v1/me", headers=bearer(anna_token))
    assert "csrf_token" not in await r.json()

    # A change with the cookie: 403 naming the header without it or with a wrong one
    for headers in (jar, {**jar, "X-CSRF-Token": "wrong"}):
        r = await client.post("/api/v1/live/ticket", headers=headers)
        err = await r.json()
        assert r.status == 403 and err["field"] == "X-CSRF-Token", err
        assert "X-CSRF-Token" in err["error"] and err["error_ru"]
    r = await client.patch(
        f"/api/v1/users/{anna_id}", json={"name": "Хакер"}, headers={**jar, "X-CSRF-Token": ""}
    )
    assert r.status == 403
    async with client.app[DB].sessions() as s:
        assert (await s.get(User, anna_id)).name == "Анна"  # type: ignore[union-attr]
    # ... and with it, it goes through
    r = await client.post("/api/v1/live/ticket", headers={**jar, "X-CSRF-Token": csrf})
    assert r.status == 201
    # A Bearer token needs no CSRF token
    r = await client.post("/api/v1/live/ticket", headers=bearer(anna_token))
    assert r.status == 201

    # Logout needs the CSRF token too, then the cookie is gone and refused
    r = await client.post("/api/v1/auth/logout", headers=jar)
    assert r.status == 403
    r = await client.post("/api/v1/auth/logout", headers={**jar, "X-CSRF-Token": csrf})
    assert r.status == 204
    assert "crmhub_session=" in r.headers["Set-Cookie"]
    client.session.cookie_jar.clear()
    r = await client.get("/api/v1/me", headers=jar)
    assert r.status == 401
    # Without any credential: 401 saying how to sign in
    r = await client.get("/api/v1/me")
    assert r.status == 401 and "sign in" in (await r.json())["error"]

    async with client.app[DB].sessions() as s:
        actions = list(
            await s.scalars(select(AuditEntry.action).where(AuditEntry.entity_id == anna_id))
        )
    assert "sign_in" in actions and "session_end" in actions


async def test_the_cookie_is_secure_behind_https(
    db_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    client, _ = await start(db_url, tmp_path, aiohttp_client, public_url="https://crm.example.ru")
    status, _body, r = await login(client, "anna@example.ru", PASSWORD)
    assert status == 200
    flags = [f.strip().lower() for f in r.headers["Set-Cookie"].split(";")]
    assert "secure" in flags and "httponly" in flags


async def test_wrong_password_and_unknown_email_answer_the_same(
    db_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    client, u = await start(db_url, tmp_path, aiohttp_client)
    s1, wrong, r1 = await login(client, "anna@example.ru", "not-her-password")
    s2, unknown, r2 = await login(client, "nobody@example.ru", "not-her-password")
    s3, invited, _ = await login(client, "admin@example.ru", "whatever-password")  # no password
    assert s1 == s2 == s3 == 401
    assert wrong == unknown == invited
    assert wrong["error"] == "wrong email or password" and wrong["error_ru"]
    assert "Set-Cookie" not in r1.headers and "Set-Cookie" not in r2.headers
    async with client.app[DB].sessions() as s:
        failed = list(
            await s.execute(
                select(AuditEntry.entity_id, AuditEntry.details).where(
                    AuditEntry.action == "sign_in_failed"
                )
            )
        )
    assert len(failed) == 3
    assert {f[0] for f in failed} == {u["anna"][0], None, u["admin"][0]}
    assert all("password" not in str(f[1]) or "not-her" not in str(f[1]) for f in failed)


async def test_five_failures_a_minute_answer_429_per_account_and_per_address(
    db_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    client, _ = await start(db_url, tmp_path, aiohttp_client, webforms={"trust_forwarded": True})

    def at(addr: str) -> dict[str, str]:
        return {"X-Forwarded-For": addr}

    # Per account: five wrong passwords from five addresses, then even the right one waits
    for i in range(5):
        status, _, _ = await login(client, "anna@example.ru", "wrong-password", **at(f"10.0.0.{i}"))
        assert status == 401
    status, body, r = await login(client, "anna@example.ru", PASSWORD, **at("10.0.1.1"))
    assert status == 429, body
    assert 1 <= int(r.headers["Retry-After"]) <= 61
    assert "try again" in body["error"] and body["error_ru"]
    # an unknown email is limited the same way: the answer tells nothing
    for i in range(5):
        await login(client, "ghost@example.ru", "wrong-password", **at(f"10.0.2.{i}"))
    status2, body2, r2 = await login(client, "ghost@example.ru", "x" * 12, **at("10.0.3.1"))
    assert status2 == 429 and "Retry-After" in r2.headers
    assert body2["error"].split(" in ")[0] == body["error"].split(" in ")[0]

    # Per address: five failures for five emails from one address block that address
    for i in range(5):
        await login(client, f"user{i}@example.ru", "wrong-password", **at("10.9.9.9"))
    status, _, r = await login(client, "someone@example.ru", "wrong-password", **at("10.9.9.9"))
    assert status == 429 and int(r.headers["Retry-After"]) >= 1

    # A minute later (the failures moved back in time) the right password works again
    from crm_core.models import AuthFailure

    async with client.app[DB].transaction() as s:
        await s.execute(update(AuthFailure).values(at=utcnow() - timedelta(seconds=61)))
    status, body, _ = await login(client, "anna@example.ru", PASSWORD, **at("10.0.1.1"))
    assert status == 200, body


async def test_sessions_expire_when_idle_and_the_list_shows_them(
    db_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    client, _ = await start(db_url, tmp_path, aiohttp_client, session_idle_hours=2)
    ua = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36"
    laptop = await sign_in(client, "anna@example.ru", **{"User-Agent": ua})
    phone = await sign_in(client, "anna@example.ru", **{"User-Agent": "curl/8.5"})

    status, page = await laptop.request("GET", "/auth/sessions")
    assert status == 200 and page["total"] == 2
    mine = {s["device"]: s for s in page["items"]}
    assert mine["Chrome 120, Windows"]["current"] is True
    assert mine["curl/8.5"]["current"] is False
    assert all(s["address"] and s["last_seen_at"] for s in page["items"])

    # The phone's session idles past session_idle_hours: refused, gone from the list
    async with client.app[DB].transaction() as s:
        await s.execute(
            update(AuthSession)
            .where(AuthSession.device == "curl/8.5")
            .values(last_seen_at=utcnow() - timedelta(hours=2, seconds=1))
        )
    assert (await phone.request("GET", "/me"))[0] == 401
    status, page = await laptop.request("GET", "/auth/sessions")
    assert page["total"] == 1
    # past the absolute lifetime: refused too
    async with client.app[DB].transaction() as s:
        await s.execute(update(AuthSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert (await laptop.request("GET", "/me"))[0] == 401


async def test_openapi_describes_the_sign_in_routes(
    db_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    client, _ = await start(db_url, tmp_path, aiohttp_client)
    doc = await (await client.get("/api/v1/openapi.json")).json()
    paths = doc["paths"]
    login = paths["/api/v1/auth/login"]["post"]
    assert login["security"] == [] and {"200", "401", "429"} <= set(login["responses"])
    for path, method in (
        ("/api/v1/auth/logout", "post"),
        ("/api/v1/auth/forgot", "post"),
        ("/api/v1/auth/set-password", "post"),
        ("/api/v1/auth/password", "post"),
        ("/api/v1/auth/sessions", "get"),
        ("/api/v1/auth/sessions/{id}", "delete"),
        ("/api/v1/auth/tokens", "get"),
        ("/api/v1/auth/tokens", "post"),
        ("/api/v1/auth/tokens/{id}", "delete"),
        ("/api/v1/users/invite", "post"),
        ("/api/v1/users/{id}/end-sessions", "post"),
    ):
        assert paths[path][method]["summary"], (path, method)
    assert "csrf_token" in doc["components"]["schemas"]["MeOut"]["properties"]
    # the page behind the links
    r = await client.get("/ui/set-password?token=abc")
    assert r.status == 200 and r.headers["Referrer-Policy"] == "no-referrer"


async def test_demo_users_sign_in_with_their_printed_passwords(
    db_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    """`crmhub demo` prints each user's password: the sign-in page must take it."""
    from crm_core.db import Database, migrate
    from crm_core.demo import load_demo

    db = Database(db_url)
    try:
        await migrate(db)
        demo = await load_demo(db)
    finally:
        await db.dispose()
    users = demo["users"]
    assert users and all(len(u["password"]) >= 10 and u["token"] for u in users)
    assert len({u["password"] for u in users}) == len(users)
    app: web.Application = create_app(
        make_settings(db_url, tmp_path, run_workers=False, sla_poll_seconds=0)
    )
    client = await aiohttp_client(app)
    admin = next(u for u in users if u["email"].startswith("admin@"))
    status, body, _ = await login(client, admin["email"], admin["password"])
    assert status == 200 and body["user"]["role"] == "admin", body
    status, _, _ = await login(client, admin["email"], users[1]["password"])
    assert status == 401
