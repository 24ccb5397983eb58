"""Sign-in helpers for tests: give a user a password, sign in, carry the cookie."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import update

from crm_core.db import Database, migrate
from crm_core.models import User
from crm_core.services.auth import hash_password

__all__ = ["PASSWORD", "Browser", "sign_in", "with_password"]

PASSWORD = "Sunflower-Kazan-2026"


async def with_password(db_url: str, email: str, password: str = PASSWORD) -> None:
    db = Database(db_url)
    try:
        await migrate(db)
        async with db.transaction() as s:
            await s.execute(
                update(User)
                .where(User.email == email)
                .values(password_hash=hash_password(password))
            )
    finally:
        await db.dispose()


class Browser:
    """One signed-in browser: its session cookie and CSRF token, sent by hand (the test
    client's own cookie jar is cleared, so several browsers can share one client)."""

    def __init__(self, client: TestClient[Any, Any], cookie: str, csrf: str) -> None:
        self.client = client
        self.cookie = cookie
        self.csrf = csrf

    def headers(self, csrf: bool = True, **extra: str) -> dict[str, str]:
        out = {"Cookie": f"crmhub_session={self.cookie}", **extra}
        if csrf:
            out["X-CSRF-Token"] = self.csrf
        return out

    async def request(
        self, method: str, path: str, *, csrf: bool = True, **kw: Any
    ) -> tuple[int, Any]:
        headers = {**self.headers(csrf), **kw.pop("headers", {})}
        r = await self.client.request(method, "/api/v1" + path, headers=headers, **kw)
        body = await r.json() if r.content_type == "application/json" else await r.text()
        self.client.session.cookie_jar.clear()
        return r.status, body


async def sign_in(
    client: TestClient[Any, Any], email: str, password: str = PASSWORD, **headers: str
) -> Browser:
    r = await client.post(
        "/api/v1/auth/login", json={"email": email, "password": password}, headers=headers
    )
    body = await r.json()
    assert r.status == 200, body
    cookie = r.cookies["crmhub_session"].value
    client.session.cookie_jar.clear()
    return Browser(client, cookie, body["csrf_token"])
