"""Fixtures for the email transport tests: one Dovecot per module, one user per test."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from connectors.email import ImapMailbox, ImapSettings
from crm_core.events import InboundEvent
from crm_core.ports import ConnectorHealth, IngestReceipt
from tests.support.dovecot import DovecotServer

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "email"
_users = itertools.count(1)


class FakeIngest:
    """Records every call; dedupes like the inbox on (channel, kind, external_id)."""

    def __init__(self) -> None:
        self.calls: list[InboundEvent] = []
        self.accepted: dict[tuple[str, str, str], InboundEvent] = {}
        self.call_times: list[float] = []
        self.hook: Callable[[int, InboundEvent], Awaitable[None]] | None = None

    async def __call__(self, event: InboundEvent, *, wait: bool = False) -> IngestReceipt:
        if self.hook is not None:
            await self.hook(len(self.calls), event)  # may raise IngestUnavailable
        self.calls.append(event)
        self.call_times.append(time.monotonic())
        key = (event.channel.value, event.kind.value, event.external_id)
        dup = key in self.accepted
        self.accepted.setdefault(key, event)
        return IngestReceipt(event_id=len(self.accepted), duplicate=dup)

    @property
    def uids(self) -> list[int]:
        return [int(e.meta["imap"]["uid"]) for e in self.calls]

    @property
    def external_ids(self) -> list[str]:
        return [e.external_id for e in self.calls]


class MemoryState:
    def __init__(self) -> None:
        self.data: dict[str, dict[str, Any]] = {}

    async def get(self, key: str) -> dict[str, Any] | None:
        value = self.data.get(key)
        return dict(value) if value is not None else None

    async def set(self, key: str, value: dict[str, Any]) -> None:
        self.data[key] = dict(value)


async def wait_until(cond: Callable[[], bool], limit: float = 15.0) -> None:
    deadline = time.monotonic() + limit
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


@pytest.fixture
def user(dovecot: DovecotServer) -> str:
    name = f"user{next(_users)}"
    dovecot.add_user(name, "secret")
    return name


def settings_for(dovecot: DovecotServer, user: str, **kw: Any) -> ImapSettings:
    base: dict[str, Any] = dict(
        name=f"mb-{user}",
        host="127.0.0.1",
        port=dovecot.port,
        tls="none",
        username=user,
        password="secret",
        command_timeout=10,
        backoff_initial=0.05,
        backoff_max=0.5,
    )
    base.update(kw)
    return ImapSettings(**base)


class Running:
    """A mailbox task plus its fakes; ``stop()`` cancels it."""

    def __init__(self, mailbox: ImapMailbox, ingest: FakeIngest, state: MemoryState) -> None:
        self.mailbox, self.ingest, self.state = mailbox, ingest, state
        self.task: asyncio.Task[None] = asyncio.create_task(mailbox.run())

    @property
    def health(self) -> ConnectorHealth:
        return self.mailbox.health

    async def stop(self) -> None:
        self.task.cancel()
        try:
            await self.task
        except asyncio.CancelledError:
            pass


@pytest.fixture
async def start_mailbox() -> AsyncIterator[Callable[..., Running]]:
    running: list[Running] = []

    def start(
        settings: ImapSettings,
        ingest: FakeIngest | None = None,
        state: MemoryState | None = None,
        **kw: Any,
    ) -> Running:
        ingest = ingest or FakeIngest()
        state = state or MemoryState()
        health = ConnectorHealth(name=settings.name, channel="email")
        mb = ImapMailbox(settings, ingest, state, health, **kw)
        r = Running(mb, ingest, state)
        running.append(r)
        return r

    yield start
    for r in running:
        await r.stop()
