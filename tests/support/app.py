"""Build and drive the whole application in tests (``create_app`` with its cleanup_ctx)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from crm_core.db import Database
from crm_core.services.forms import create_form
from crm_core.services.users import create_user
from gateway.settings import Settings, load_settings

__all__ = ["add_form", "add_user", "bearer", "make_settings", "running"]


def make_settings(db_url: str, tmp_path: Path, **overrides: Any) -> Settings:
    """Settings for a test app: no rules file unless given, quick polling, no env."""
    base: dict[str, Any] = {
        "database_url": db_url,
        "routing_rules_path": None,
        "attachments_dir": str(tmp_path / "attachments"),
        "poll_interval": 0.1,
        "log_format": "console",
    }
    base.update(overrides)
    return load_settings(environ={}, **base)


async def add_user(db_url: str, email: str, role: str = "manager", **kw: Any) -> tuple[int, str]:
    """Create a user directly in the database; returns (id, API token)."""
    db = Database(db_url)
    try:
        from crm_core.db import migrate

        await migrate(db)
        async with db.transaction() as s:
            user, token = await create_user(s, email, role, **kw)
            return user.id, token
    finally:
        await db.dispose()


async def add_form(db_url: str, name: str = "site") -> tuple[str, str]:
    """Register a website form; returns (key, secret)."""
    db = Database(db_url)
    try:
        from crm_core.db import migrate

        await migrate(db)
        async with db.transaction() as s:
            form = await create_form(s, name)
            return form.key, form.secret
    finally:
        await db.dispose()


@asynccontextmanager
async def running(app: web.Application) -> AsyncIterator[TestClient]:
    """``app`` served on a real loopback port for the block."""
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
