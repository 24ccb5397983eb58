"""Invitations and password resets (issue 16): the link is single-use, expires after
24 h, is stored hashed, goes out by email through the outbox and SMTP (aiosmtpd) or
is printed/answered without SMTP; a reset ends the user's sessions; ``forgot``
answers the same whether the email exists.  The real app on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.header
import io
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select, update

from crm_core.models import AuditEntry, AuthLink, OutboxCommand, User, utcnow
from crm_core.services.auth import hash_secret
from gateway.api.auth import BACKGROUND
from gateway.api.keys import DB
from gateway.app import create_app
from gateway.cli import main
from tests.support.app import add_user, bearer, make_settings
from tests.support.signin import PASSWORD, sign_in, with_password
from tests.support.smtp_server import SmtpTestServer
from tests.support.telephony import until

NEW_PASSWORD = "Volga-Samara-Bridge-77"


@pytest.fixture
def smtp() -> Iterator[SmtpTestServer]:
    server = SmtpTestServer().start()
    yield server
    server.stop()


async def start(
    db_url: str, tmp_path: Path, aiohttp_client: Any, **settings: Any
) -> tuple[TestClient[Any, Any], str]:
    _admin_id, admin = await add_user(db_url, "admin@example.ru", "admin")
    app: web.Application = create_app(
        make_settings(db_url, tmp_path, sla_poll_seconds=0, **settings)
    )
    return await aiohttp_client(app), admin


def token_of(link: str) -> str:
    return parse_qs(urlsplit(link).query)["token"][0]


async def set_password(client: TestClient[Any, Any], token: str, password: str) -> tuple[int, Any]:
    r = await client.post("/api/v1/auth/set-password", json={"token": token, "password": password})
    return r.status, await r.json()


def cli(*args: str) -> tuple[int, list[Any]]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(list(args))
    return code, [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]


async def test_an_invitation_link_sets_the_password_once(
    db_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    client, admin = await start(
        db_url, tmp_path, aiohttp_client, public_url="https://crm.example.ru/"
    )
    body = {"email": "Olga@Example.ru", "role": "manager", "name": "Ольга", "team": "north"}
    r = await client.post("/api/v1/users/invite", json=body, headers=bearer(admin))
    invited = await r.json()
    assert r.status == 201, invited
    assert invited["email"] == "olga@example.ru" and invited["team"] == "north"
    assert invited["emailed"] is False
    link = invited["link"]
    assert link.startswith("https://crm.example.ru/ui/set-password?token=")
    token = token_of(link)
    # stored hashed only
    async with client.app[DB].sessions() as s:
        row = await s.scalar(select(AuthLink).where(AuthLink.user_id == invited["id"]))
        assert row is not None and row.token_hash == hash_secret(token)
        assert token not in row.token_hash and row.purpose == "invite"
        assert (
            timedelta(hours=23, minutes=59) < row.expires_at - row.created_at <= timedelta(hours=24)
        )
    # the page behind the link is the UI's page
    r = await client.get(f"/ui/set-password?token={token}")
    assert r.status == 200 and "<html" in (await r.text()).lower()

    # not an admin: refused; a duplicate email: 409
    olga_cannot = await client.post(
        "/api/v1/users/invite", json={"email": "x@example.ru", "role": "admin"}
    )
    assert olga_cannot.status == 401
    r = await client.post("/api/v1/users/invite", json=body, headers=bearer(admin))
    assert r.status == 409

    # a weak password is refused naming the field, and the link stays usable
    for weak, why in (("short", "at least 10"), ("qwertyuiop", "most common")):
        status, err = await set_password(client, token, weak)
        assert status == 422 and err["field"] == "password" and why in err["error"], err
        assert err["error_ru"]
    status, err = await set_password(client, token, "olga@example.ru")
    assert status == 422
    status, done = await set_password(client, token, NEW_PASSWORD)
    assert status == 200 and done == {
        "email": "olga@example.ru",
        "purpose": "invite",
        "ended_sessions": 0,
    }
    # used up: a second use is refused, the password stays
    status, err = await set_password(client, token, "Another-Password-99")
    assert status == 400 and "already used" in err["error"] and err["field"] == "token"
    assert err["error_ru"]
    status, err = await set_password(client, "x" * 43, "Another-Password-99")
    assert status == 400 and "not valid" in err["error"]
    olga = await sign_in(client, "olga@example.ru", NEW_PASSWORD)
    status, me = await olga.request("GET", "/me")
    assert status == 200 and me["name"] == "Ольга"
    r = await client.post(
        "/api/v1/auth/login", json={"email": "olga@example.ru", "password": "Another-Password-99"}
    )
    assert r.status == 401

    async with client.app[DB].sessions() as s:
        actions = set(
            await s.scalars(select(AuditEntry.action).where(AuditEntry.entity_id == invited["id"]))
        )
    assert {"invite", "invite_link", "password_set", "sign_in"} <= actions


async def test_an_expired_link_is_refused_and_changes_nothing(
    db_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    client, admin = await start(db_url, tmp_path, aiohttp_client)
    r = await client.post(
        "/api/v1/users/invite", json={"email": "ivan@example.ru"}, headers=bearer(admin)
    )
    invited = await r.json()
    token = token_of(invited["link"])
    async with client.app[DB].transaction() as s:
        await s.execute(update(AuthLink).values(expires_at=utcnow() - timedelta(seconds=1)))
    status, err = await set_password(client, token, NEW_PASSWORD)
    assert status == 400 and "expired" in err["error"], err
    async with client.app[DB].sessions() as s:
        user = await s.get(User, invited["id"])
        link = await s.scalar(select(AuthLink))
    assert user is not None and user.password_hash is None
    assert link is not None and link.used_at is None


async def test_a_reset_ends_every_session_and_forgot_tells_nothing(
    db_url: str, tmp_path: Path, aiohttp_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, _admin = await start(db_url, tmp_path, aiohttp_client)
    await add_user(db_url, "anna@example.ru", "manager")
    await with_password(db_url, "anna@example.ru")
    laptop = await sign_in(client, "anna@example.ru")
    phone = await sign_in(client, "anna@example.ru")
    assert (await laptop.request("GET", "/me"))[0] == 200

    # forgot: the same 202 for a user, an unknown email and a malformed one
    answers = []
    for who in ("anna@example.ru", "nobody@example.ru", "not an email"):
        r = await client.post("/api/v1/auth/forgot", json={"email": who})
        answers.append((r.status, await r.json()))
    assert answers[0] == answers[1] == answers[2] and answers[0][0] == 202

    await asyncio.gather(*client.app[BACKGROUND])
    async with client.app[DB].sessions() as s:  # no SMTP: nobody would get a link
        assert await s.scalar(select(AuthLink.id)) is None

    # without SMTP the admin prints the link (the last stdout line)
    monkeypatch.setenv("CRMHUB_DATABASE_URL", db_url)
    monkeypatch.setenv("CRMHUB_ROUTING_RULES_PATH", "")
    code, lines = await asyncio.to_thread(cli, "users", "reset-link", "Anna@example.ru")
    assert code == 0 and list(lines[-1]) == ["link"]
    token = token_of(lines[-1]["link"])
    status, done = await set_password(client, token, NEW_PASSWORD)
    assert status == 200 and done["purpose"] == "reset" and done["ended_sessions"] == 2
    assert (await laptop.request("GET", "/me"))[0] == 401
    assert (await phone.request("GET", "/me"))[0] == 401
    r = await client.post(
        "/api/v1/auth/login", json={"email": "anna@example.ru", "password": PASSWORD}
    )
    assert r.status == 401
    await sign_in(client, "anna@example.ru", NEW_PASSWORD)

    code, _ = await asyncio.to_thread(cli, "users", "reset-link", "nobody@example.ru")
    assert code == 2


async def test_links_go_out_by_email_through_the_outbox(
    db_url: str,
    tmp_path: Path,
    aiohttp_client: Any,
    smtp: SmtpTestServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    smtp_settings = {
        "host": "127.0.0.1",
        "port": smtp.port,
        "tls": "none",
        "from_address": "crm@example.ru",
        "timeout": 5,
    }
    client, admin = await start(
        db_url, tmp_path, aiohttp_client, smtp=smtp_settings, public_url="http://crm.local"
    )
    r = await client.post(
        "/api/v1/users/invite",
        json={"email": "petr@example.ru", "role": "supervisor", "name": "Пётр"},
        headers=bearer(admin),
    )
    invited = await r.json()
    assert r.status == 201 and invited["emailed"] is True and invited["link"] is None

    async def delivered() -> bool:
        return len(smtp.messages) >= 1

    await until(delivered, what="the invitation email")
    msg = email.message_from_bytes(smtp.messages[0].data)
    assert smtp.messages[0].rcpt_tos == ["petr@example.ru"]
    text = msg.get_payload(decode=True) if not msg.is_multipart() else None
    if text is None:
        part = next(p for p in msg.walk() if p.get_content_type() == "text/plain")
        text = part.get_payload(decode=True)
    body = text.decode("utf-8")
    assert "Пётр" in body
    link = next(w for w in body.split() if w.startswith("http://crm.local/ui/set-password?token="))
    status, _ = await set_password(client, token_of(link), NEW_PASSWORD)
    assert status == 200
    async with client.app[DB].sessions() as s:
        cmd = await s.scalar(select(OutboxCommand))
    assert cmd is not None and cmd.status == "sent" and cmd.payload.get("private") is True
    # a private command leaves nothing on a timeline
    from crm_core.models import Interaction

    async with client.app[DB].sessions() as s:
        assert await s.scalar(select(Interaction.id)) is None

    # The CLI invites through the same outbox: no link on stdout (unless asked)
    monkeypatch.setenv("CRMHUB_DATABASE_URL", db_url)
    monkeypatch.setenv("CRMHUB_ROUTING_RULES_PATH", "")
    for key, value in smtp_settings.items():
        monkeypatch.setenv(f"CRMHUB_SMTP__{key.upper()}", str(value))
    code, lines = await asyncio.to_thread(
        cli, "users", "invite", "vera@example.ru", "--role", "manager", "--name", "Вера"
    )
    assert code == 0 and lines[-1]["emailed"] is True and "link" not in lines[-1]

    async def second() -> bool:
        return len(smtp.messages) >= 2

    await until(second, 30.0, what="the CLI invitation email")
    assert smtp.messages[1].rcpt_tos == ["vera@example.ru"]

    # forgot: a reset mail for an active user, nothing for an unknown email, same answer
    answers = []
    for who in ("ghost@example.ru", "vera@example.ru"):
        r = await client.post("/api/v1/auth/forgot", json={"email": who})
        answers.append((r.status, await r.json()))
    assert answers[0] == answers[1] and answers[0][0] == 202
    await asyncio.gather(*client.app[BACKGROUND])

    async def third() -> bool:
        return len(smtp.messages) >= 3

    await until(third, 30.0, what="the reset email")
    assert [m.rcpt_tos for m in smtp.messages] == [
        ["petr@example.ru"],
        ["vera@example.ru"],
        ["vera@example.ru"],
    ]
    reset = email.message_from_bytes(smtp.messages[2].data)
    assert "Reset" in str(reset["Subject"]) or "Сброс" in str(
        email.header.make_header(email.header.decode_header(reset["Subject"]))
    )


async def test_the_cli_invites_and_prints_the_link_without_smtp(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, aiohttp_client: Any
) -> None:
    client, _admin = await start(db_url, tmp_path, aiohttp_client)
    monkeypatch.setenv("CRMHUB_DATABASE_URL", db_url)
    monkeypatch.setenv("CRMHUB_ROUTING_RULES_PATH", "")
    monkeypatch.setenv("CRMHUB_PUBLIC_URL", "https://crm.example.ru")
    code, lines = await asyncio.to_thread(
        cli, "users", "invite", "first@example.ru", "--role", "admin", "--name", "Первый"
    )
    assert code == 0, lines
    assert lines[0]["email"] == "first@example.ru" and lines[0]["role"] == "admin"
    assert "token" not in lines[0]  # no API token for a person
    link = lines[-1]["link"]
    assert link.startswith("https://crm.example.ru/ui/set-password?token=")
    status, _ = await set_password(client, token_of(link), NEW_PASSWORD)
    assert status == 200
    me = await sign_in(client, "first@example.ru", NEW_PASSWORD)
    assert (await me.request("GET", "/me"))[1]["role"] == "admin"
    code, lines = await asyncio.to_thread(
        cli, "users", "invite", "first@example.ru", "--role", "admin"
    )
    assert code == 2
