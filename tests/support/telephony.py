"""Helpers for the telephony end-to-end tests: the app with an ``[[asterisk]]`` PBX
pointing at the AMI test server, a live-events WebSocket listener, database polling."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from crm_core.db import Database
from gateway.api.keys import DB
from gateway.keys import HUB
from tests.support.ami_truth import TRUNK

__all__ = [
    "LiveListener",
    "ami_settings",
    "drained",
    "listen",
    "rows",
    "until",
]

RECORDING = "https://rec.example.ru/{pbx}/{date}/{linkedid}.wav"


def ami_settings(port: int, **kw: Any) -> dict[str, Any]:
    """One ``[[asterisk]]`` table for ``make_settings(..., asterisk=[...])``."""
    base: dict[str, Any] = {
        "name": "office",
        "host": "127.0.0.1",
        "port": port,
        "username": "crm",
        "secret": "crmsecret",
        "reconnect_max_seconds": 0.2,
        "cdr_wait_seconds": 0.3,
        "action_timeout_seconds": 2.0,
        "recording_url_template": RECORDING,
        **TRUNK,
    }
    base.update(kw)
    return base


async def until(
    cond: Callable[[], Awaitable[bool]], limit_s: float = 15.0, what: str = "condition"
) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + limit_s
    while not await cond():
        if loop.time() > end:
            raise AssertionError(f"{what} not reached within {limit_s} s")
        await asyncio.sleep(0.05)


async def rows(client: TestClient, model: Any, *where: Any) -> list[Any]:
    db: Database = client.app[DB]
    async with db.sessions() as s:
        q = select(model).where(*where) if where else select(model)
        return list(await s.scalars(q.order_by(model.id)))


async def drained(client: TestClient) -> None:
    assert await client.app[HUB].drain(30)


@dataclass
class LiveListener:
    """Frames received on ``/live`` with their arrival time (``time.perf_counter()``)."""

    frames: list[tuple[float, dict[str, Any]]] = field(default_factory=list)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [f["payload"] for _, f in self.frames if f["kind"] == kind]

    def arrival(self, kind: str) -> list[float]:
        return [t for t, f in self.frames if f["kind"] == kind]


@contextlib.asynccontextmanager
async def listen(client: TestClient, token: str) -> AsyncIterator[LiveListener]:
    """A WebSocket on ``/live`` (bearer token) collecting frames until the block ends."""
    out = LiveListener()
    ws = await client.ws_connect("/live", headers={"Authorization": f"Bearer {token}"})
    hello = await ws.receive_json(timeout=5)
    assert hello["kind"] == "hello"

    async def pump() -> None:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                out.frames.append((time.perf_counter(), json.loads(msg.data)))

    task = asyncio.create_task(pump())
    try:
        yield out
    finally:
        await ws.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def fixture_path(name: str) -> Path:
    from tests.support.ami_truth import AMI_FIXTURES

    return AMI_FIXTURES / name
