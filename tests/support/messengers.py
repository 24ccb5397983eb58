"""Helpers for end-to-end messenger tests: a whole app with ``[[telegram]]`` and ``[[vk]]``
pointed at the fakes, recorded payloads, and waits on the database."""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from crm_core.db import Database
from crm_core.models import ContactPoint, Interaction, Lead, OutboxCommand
from gateway.api.keys import DB
from gateway.keys import HUB
from tests.support.fake_telegram import FakeTelegram

__all__ = [
    "BOT",
    "BOT_SECRET",
    "BOT_TOKEN",
    "TimedFakeTelegram",
    "app_of",
    "db_of",
    "drain",
    "eventually",
    "interactions",
    "leads",
    "outbox_row",
    "point",
    "post_tg",
    "post_vk",
    "telegram_fixture",
    "vk_fixture",
]

FIXTURES = Path(__file__).parents[1] / "fixtures"
BOT = "shop"
BOT_TOKEN = "123456:shop-token"
BOT_SECRET = "tg-hook-secret"
T = TypeVar("T")


def telegram_fixture(name: str, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / "telegram" / name).read_text("utf-8"))
    data.update(changes)
    return data


def vk_fixture(name: str, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / "vk" / name).read_text("utf-8"))
    data = copy.deepcopy(data)
    data.update(changes)
    return data


class TimedFakeTelegram(FakeTelegram):
    """The fake Bot API, also noting when each method was called (monotonic seconds)."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.times: list[tuple[str, float]] = []

    async def _api(self, request: web.Request) -> web.Response:
        self.times.append((request.match_info["method"], time.monotonic()))
        return await super()._api(request)


def app_of(client: TestClient) -> web.Application:
    app = client.app
    assert app is not None
    return app


def db_of(client: TestClient) -> Database:
    return app_of(client)[DB]


async def drain(client: TestClient) -> None:
    assert await app_of(client)[HUB].drain(10.0)


async def post_tg(client: TestClient, update: dict[str, Any], bot: str = BOT) -> dict[str, Any]:
    r = await client.post(
        f"/hooks/telegram/{bot}",
        json=update,
        headers={"X-Telegram-Bot-Api-Secret-Token": BOT_SECRET},
    )
    assert r.status == 200, await r.text()
    body: dict[str, Any] = await r.json()
    await drain(client)
    return body


async def post_vk(client: TestClient, body: dict[str, Any], group_id: int) -> str:
    r = await client.post(f"/hooks/vk/{group_id}", json=body)
    text = await r.text()
    assert r.status == 200, text
    await drain(client)
    return text


async def eventually(fn: Callable[[], Awaitable[T | None]], limit: float = 10.0) -> T:
    """Poll ``fn`` until it returns something truthy (what a background worker writes)."""
    async with asyncio.timeout(limit):
        while True:
            value = await fn()
            if value:
                return value
            await asyncio.sleep(0.05)


async def leads(client: TestClient, **where: Any) -> list[Lead]:
    async with db_of(client).sessions() as s:
        q = select(Lead).filter_by(**where).order_by(Lead.id)
        return list(await s.scalars(q))


async def interactions(client: TestClient, **where: Any) -> list[Interaction]:
    async with db_of(client).sessions() as s:
        q = select(Interaction).filter_by(**where).order_by(Interaction.id)
        return list(await s.scalars(q))


async def point(client: TestClient, kind: str, value: str) -> ContactPoint | None:
    async with db_of(client).sessions() as s:
        return await s.scalar(
            select(ContactPoint).where(ContactPoint.kind == kind, ContactPoint.value == value)
        )


async def outbox_row(client: TestClient, outbox_id: int) -> OutboxCommand:
    async with db_of(client).sessions() as s:
        row = await s.get(OutboxCommand, outbox_id)
        assert row is not None
        return row
