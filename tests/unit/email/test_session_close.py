"""Closing an IMAP session while its owner is being stopped lets the stop through.

A mailbox whose login is refused closes its session and retries; when crmhub stopped it
during that close, the old ``except BaseException`` swallowed the cancellation and the
connector kept retrying forever (a shutdown that never ended)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from connectors.email.config import ImapSettings
from connectors.email.imap_session import ImapSession


class _Transport:
    closed = False

    def close(self) -> None:
        self.closed = True


def _hanging_client() -> Any:
    async def logout() -> None:
        await asyncio.Event().wait()  # a server that never answers LOGOUT

    transport = _Transport()
    protocol = SimpleNamespace(logout=logout, transport=transport, tasks=[])
    return SimpleNamespace(protocol=protocol, tasks=[]), transport


async def test_cancel_during_close_closes_the_socket_and_propagates() -> None:
    session = ImapSession(ImapSettings(name="mb", username="u", password="p"))
    session.client, transport = _hanging_client()
    task = asyncio.create_task(session.close())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert transport.closed and session.client is None


async def test_a_slow_logout_is_given_up_after_its_timeout() -> None:
    session = ImapSession(ImapSettings(name="mb", username="u", password="p"))
    session.client, transport = _hanging_client()
    await asyncio.wait_for(session.close(), 5)  # logout waits 2 s at most, no error
    assert transport.closed
