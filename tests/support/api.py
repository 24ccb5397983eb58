"""Helpers for the REST API tests: a tiny app over the ``db`` fixture, users with tokens,
and a client that speaks JSON with a bearer token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from crm_core.db import Database
from crm_core.models import AuditEntry, User
from crm_core.services.users import create_user
from gateway.api import setup_api
from gateway.api.keys import DB

__all__ = ["Api", "Caller", "count", "make_app", "seed_team"]


def make_app(db: Database) -> web.Application:
    app = web.Application()
    app[DB] = db
    setup_api(app, DB)
    return app


@dataclass
class Caller:
    """One user's view of the API: ``await caller.get(path)`` -> (status, json)."""

    http: TestClient[Any, Any]
    token: str | None
    user_id: int = 0

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        params: dict[str, Any] | None = None,
    ) -> tuple[int, Any]:
        kwargs: dict[str, Any] = {"headers": self._headers(), "params": params}
        if raw is not None:
            kwargs["data"] = raw
        elif body is not None:
            kwargs["json"] = body
        resp = await self.http.request(method, "/api/v1" + path, **kwargs)
        data = await resp.json() if resp.content_type == "application/json" else await resp.text()
        return resp.status, data

    async def get(self, path: str, **params: Any) -> tuple[int, Any]:
        return await self.call("GET", path, params=params or None)

    async def post(self, path: str, body: Any = None) -> tuple[int, Any]:
        return await self.call("POST", path, body if body is not None else {})

    async def patch(self, path: str, body: Any) -> tuple[int, Any]:
        return await self.call("PATCH", path, body)


@dataclass
class Api:
    http: TestClient[Any, Any]
    db: Database
    users: dict[str, User]
    tokens: dict[str, str]

    def as_(self, name: str) -> Caller:
        return Caller(self.http, self.tokens[name], self.users[name].id)

    def anonymous(self) -> Caller:
        return Caller(self.http, None)


TEAM = (
    # name, role, team, extension
    ("admin", "admin", None, None),
    ("sup", "supervisor", "A", "200"),
    ("a1", "manager", "A", "201"),
    ("a2", "manager", "A", "202"),
    ("b1", "manager", "B", "301"),
)


async def seed_team(db: Database) -> tuple[dict[str, User], dict[str, str]]:
    """admin; supervisor of team A; managers a1, a2 (team A) and b1 (team B)."""
    users: dict[str, User] = {}
    tokens: dict[str, str] = {}
    async with db.transaction() as s:
        for name, role, team, ext in TEAM:
            user, token = await create_user(
                s, f"{name}@example.ru", role, name=name.upper(), extension=ext, team=team
            )
            users[name], tokens[name] = user, token
    return users, tokens


async def count(db: Database, model: Any = AuditEntry) -> int:
    async with db.sessions() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)
