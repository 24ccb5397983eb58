"""Sessions end (by the user, an admin, a deactivation, a password change) and take
their live streams with them; personal access tokens (scope, expiry, revocation,
shown once); a token of a user made before 0018_auth keeps working.  The real app on
SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient
from sqlalchemy import select, text, update

from crm_core.db import Database, migrate
from crm_core.models import ApiToken, AuditEntry, utcnow
from gateway.api.keys import DB
from gateway.app import create_app
from gateway.live import WS_REVOKED
from tests.conftest import PG_ADMIN_URL, _pg_admin
from tests.support.app import add_user, bearer, make_settings
from tests.support.signin import PASSWORD, Browser, sign_in, with_password

WITHIN = 10.0


async def start(
    db_url: str, tmp_path: Path, aiohttp_client: Any, **settings: Any
) -> tuple[TestClient[Any, Any], dict[str, tuple[int, str]]]:
    users = {
        "admin": await add_user(db_url, "admin@example.ru", "admin"),
        "anna": await add_user(db_url, "anna@example.ru", "manager"),
    }
    await with_password(db_url, "anna@example.ru")
    app: web.Application = create_app(
        make_settings(db_url, tmp_path, run_workers=False, sla_poll_seconds=0, **settings)
    )
    return await aiohttp_client(app), users


async def session_stream(browser: Browser) -> Any:
    """A WebSocket opened the browser's way: a ticket asked with the session cookie."""
    status, body = await browser.request("POST", "/live/ticket")
    assert status == 201, body
    ws = await browser.client.ws_connect(f"/live?ticket={body['ticket']}")
    assert (await ws.receive_json(timeout=5))["kind"] == "hello"
    return ws


async def closed(ws: Any) -> int:
    msg = await ws.receive(timeout=WITHIN)
    assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING), msg
    return int(ws.close_code or 0)


async def test_sessions_end_and_their_live_streams_close(
    db_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    client, u = await start(db_url, tmp_path, aiohttp_client, live_recheck_seconds=60)
    (_admin_id, admin), (anna_id, anna_token) = u["admin"], u["anna"]

    # The user ends one of their sessions: that one's stream closes, not the other's
    laptop, phone = (
        await sign_in(client, "anna@example.ru"),
        await sign_in(client, "anna@example.ru"),
    )
    laptop_ws, phone_ws = await session_stream(laptop), await session_stream(phone)
    _, page = await laptop.request("GET", "/auth/sessions")
    phone_id = next(s["id"] for s in page["items"] if not s["current"])
    status, _ = await laptop.request("DELETE", f"/auth/sessions/{phone_id}", csrf=False)
    assert status == 403  # a cookie write without CSRF
    status, _ = await laptop.request("DELETE", f"/auth/sessions/{phone_id}")
    assert status == 204
    assert await closed(phone_ws) == WS_REVOKED
    assert (await phone.request("GET", "/me"))[0] == 401
    await laptop_ws.send_str("ping")
    assert (await laptop_ws.receive_json(timeout=5))["kind"] == "pong"
    # someone else's session: 404
    admin_browser_status = await client.delete(
        f"/api/v1/auth/sessions/{phone_id + 1000}", headers=bearer(anna_token)
    )
    assert admin_browser_status.status == 404

    # An admin ends all of Anna's sessions; only admins may
    status, _ = await laptop.request("POST", f"/users/{anna_id}/end-sessions")
    assert status == 403
    r = await client.post(f"/api/v1/users/{anna_id}/end-sessions", headers=bearer(admin))
    assert r.status == 200 and (await r.json())["ended"] == 1
    assert await closed(laptop_ws) == WS_REVOKED
    assert (await laptop.request("GET", "/me"))[0] == 401
    assert (await client.get("/api/v1/me", headers=bearer(anna_token))).status == 200

    # Deactivation ends the sessions at once, the session's stream too; the token is refused
    laptop = await sign_in(client, "anna@example.ru")
    laptop_ws = await session_stream(laptop)
    spare = (await laptop.request("POST", "/live/ticket"))[1]["ticket"]
    r = await client.post(f"/api/v1/users/{anna_id}/deactivate", headers=bearer(admin))
    assert r.status == 200
    assert await closed(laptop_ws) == WS_REVOKED
    assert (await laptop.request("GET", "/me"))[0] == 401
    assert (await client.get(f"/live/sse?ticket={spare}")).status == 401
    assert (await client.get("/api/v1/me", headers=bearer(anna_token))).status == 403
    r = await client.post(
        "/api/v1/auth/login", json={"email": "anna@example.ru", "password": PASSWORD}
    )
    assert r.status == 403  # the right password of a deactivated user
    # activated again: sign in anew (the old session stays ended)
    await client.post(f"/api/v1/users/{anna_id}/activate", headers=bearer(admin))
    assert (await laptop.request("GET", "/me"))[0] == 401
    await sign_in(client, "anna@example.ru")


async def test_a_session_ended_elsewhere_closes_its_stream_at_the_recheck(
    db_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    """Another hub process (here: a change straight in the database) ends a session:
    the periodic recheck closes the stream opened from it."""
    client, _ = await start(db_url, tmp_path, aiohttp_client, live_recheck_seconds=0.2)
    laptop = await sign_in(client, "anna@example.ru")
    ws = await session_stream(laptop)
    from crm_core.models import AuthSession

    async with client.app[DB].transaction() as s:
        await s.execute(
            update(AuthSession).values(last_seen_at=utcnow() - timedelta(days=8))
        )  # idle past session_idle_hours (168)
    assert await closed(ws) == WS_REVOKED


async def test_password_change_keeps_this_session_and_ends_the_others(
    db_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    client, u = await start(db_url, tmp_path, aiohttp_client)
    here, there = await sign_in(client, "anna@example.ru"), await sign_in(client, "anna@example.ru")
    new = "Irtysh-Omsk-Embankment-5"
    status, err = await here.request(
        "POST", "/auth/password", json={"current": "wrong-one-123", "new": new}
    )
    assert status == 422 and err["field"] == "current"
    status, err = await here.request(
        "POST", "/auth/password", json={"current": PASSWORD, "new": "password1"}
    )
    assert status == 422 and err["field"] == "new"
    r = await client.post(
        "/api/v1/auth/password",
        json={"current": PASSWORD, "new": new},
        headers=bearer(u["anna"][1]),
    )
    assert r.status == 403  # a token cannot change the password
    status, body = await here.request(
        "POST", "/auth/password", json={"current": PASSWORD, "new": new}
    )
    assert status == 200 and body == {"ended_sessions": 1}
    assert (await here.request("GET", "/me"))[0] == 200
    assert (await there.request("GET", "/me"))[0] == 401
    await sign_in(client, "anna@example.ru", new)


async def test_personal_access_tokens(db_url: str, tmp_path: Path, aiohttp_client: Any) -> None:
    client, u = await start(db_url, tmp_path, aiohttp_client)
    anna_id, first = u["anna"]
    me = await sign_in(client, "anna@example.ru")

    # the token `users add` gave is listed (origin admin); the secret never is
    status, page = await me.request("GET", "/auth/tokens")
    assert status == 200 and page["total"] == 1
    assert page["items"][0]["origin"] == "admin" and "token" not in page["items"][0]

    # made with the session only, shown once
    r = await client.post(
        "/api/v1/auth/tokens", json={"name": "сайт", "scope": "read"}, headers=bearer(first)
    )
    assert r.status == 403
    status, err = await me.request("POST", "/auth/tokens", json={"name": "x", "scope": "admin"})
    assert status == 422 and err["field"] == "scope"
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    status, err = await me.request(
        "POST", "/auth/tokens", json={"name": "x", "scope": "read", "expires_at": past}
    )
    assert status == 422 and err["field"] == "expires_at"
    status, reader = await me.request(
        "POST", "/auth/tokens", json={"name": "сайт", "scope": "read"}
    )
    assert status == 201 and reader["scope"] == "read" and reader["token"]
    status, writer = await me.request(
        "POST",
        "/auth/tokens",
        json={"name": "1С", "expires_at": (datetime.now(UTC) + timedelta(days=30)).isoformat()},
    )
    assert status == 201 and writer["scope"] == "full" and writer["expires_at"]
    status, page = await me.request("GET", "/auth/tokens")
    assert page["total"] == 3 and all("token" not in t for t in page["items"])
    async with client.app[DB].sessions() as s:
        stored = list(await s.scalars(select(ApiToken.token_hash)))
    assert reader["token"] not in stored
    assert hashlib.sha256(reader["token"].encode()).hexdigest() in stored

    # a read token reads, and is refused every write naming its scope
    read = bearer(reader["token"])
    assert (await client.get("/api/v1/me", headers=read)).status == 200
    assert (await client.get("/api/v1/clients", headers=read)).status == 200
    r = await client.post("/api/v1/clients", json={"name": "ООО Ромашка"}, headers=read)
    err = await r.json()
    assert r.status == 403 and err["field"] == "scope" and "read scope" in err["error"]
    assert err["error_ru"]
    r = await client.patch(f"/api/v1/users/{anna_id}", json={"name": "X"}, headers=read)
    assert r.status == 403
    assert (await client.post("/api/v1/live/ticket", headers=read)).status == 201  # reads only
    # a full token writes (no CSRF token needed)
    r = await client.post(
        "/api/v1/clients", json={"name": "ООО Ромашка"}, headers=bearer(writer["token"])
    )
    assert r.status == 201, await r.text()

    # expired: 401 saying so
    async with client.app[DB].transaction() as s:
        await s.execute(
            update(ApiToken)
            .where(ApiToken.id == writer["id"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    r = await client.get("/api/v1/me", headers=bearer(writer["token"]))
    assert r.status == 401 and "expired" in (await r.json())["error"]

    # revoked: 401 at once, its stream closes; only the owner may revoke
    ws = await client.ws_connect("/live", headers=read)
    assert (await ws.receive_json(timeout=5))["kind"] == "hello"
    r = await client.delete(f"/api/v1/auth/tokens/{reader['id']}", headers=bearer(u["admin"][1]))
    assert r.status == 404
    status, _ = await me.request("DELETE", f"/auth/tokens/{reader['id']}")
    assert status == 204
    assert await closed(ws) == WS_REVOKED
    assert (await client.get("/api/v1/me", headers=read)).status == 401
    status, page = await me.request("GET", "/auth/tokens")
    assert reader["id"] not in {t["id"] for t in page["items"]}

    async with client.app[DB].sessions() as s:
        actions = list(
            await s.scalars(select(AuditEntry.action).where(AuditEntry.entity_id == anna_id))
        )
    assert actions.count("token_create") == 3 and actions.count("token_revoke") == 1


# --- a token made before 0018_auth ------------------------------------------------------


@pytest.fixture(params=["sqlite", "pg"])
async def old_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database at the revision before 0018_auth, with a user and their token hash."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
        name = None
    else:
        request.getfixturevalue("pg_url")
        name = f"crmhub_migauth_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        _pg_admin(f'CREATE DATABASE "{name}"')
        url = f"{PG_ADMIN_URL.rpartition('/')[0]}/{name}"
    db = Database(url)
    await migrate(db, "0007_scale_counters")
    digest = hashlib.sha256(b"old-token-of-olga-0123456789").hexdigest()
    async with db.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO users (id, email, name, role, token_hash, active, timezone, "
                "working_hours, absences, weight, locale, created_at) VALUES (1, "
                "'olga@example.ru', 'Ольга', 'admin', :h, true, 'Europe/Moscow', '{}', '[]', "
                "1, 'ru', '2025-01-01')"
            ),
            {"h": digest},
        )
    await db.dispose()
    try:
        yield url
    finally:
        if name:
            _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_a_token_from_before_the_migration_keeps_working(
    old_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    app = create_app(make_settings(old_url, tmp_path, run_workers=False, sla_poll_seconds=0))
    client = await aiohttp_client(app)  # migrates to the head on start
    old = bearer("old-token-of-olga-0123456789")
    r = await client.get("/api/v1/me", headers=old)
    assert r.status == 200 and (await r.json())["email"] == "olga@example.ru"
    r = await client.post("/api/v1/clients", json={"name": "ИП Смирнов"}, headers=old)
    assert r.status == 201  # full scope, no CSRF
    r = await client.get("/api/v1/auth/tokens", headers=old)
    [item] = (await r.json())["items"]
    assert item["origin"] == "migrated" and item["scope"] == "full"
    # rotating it (admin API) revokes the migrated token
    r = await client.post("/api/v1/users/1/rotate-token", headers=old)
    new = (await r.json())["token"]
    assert (await client.get("/api/v1/me", headers=old)).status == 401
    assert (await client.get("/api/v1/me", headers=bearer(new))).status == 200
