"""ImapMailbox against a real Dovecot: sync, IDLE, restart, kill, UIDVALIDITY, auth."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from connectors.email import state_key
from connectors.email.imap_session import ImapSession
from connectors.email.normalize import parse_message
from crm_core.events import InboundEvent
from crm_core.ports import ConnectorState, IngestUnavailable
from tests.integration.email.conftest import (
    FIXTURES,
    FakeIngest,
    MemoryState,
    Running,
    settings_for,
    wait_until,
)
from tests.support.dovecot import DovecotServer, fixture_messages, unique_messages

pytestmark = pytest.mark.dovecot

ALL = fixture_messages(FIXTURES)
Start = Callable[..., Running]


@pytest.mark.parametrize("name,raw", ALL, ids=[n for n, _ in ALL])
async def test_each_fixture_arrives_as_its_event(
    dovecot: DovecotServer, user: str, start_mailbox: Start, name: str, raw: bytes
) -> None:
    dovecot.deliver(user, raw)
    r = start_mailbox(settings_for(dovecot, user))
    await wait_until(lambda: len(r.ingest.calls) == 1)
    event = r.ingest.calls[0]
    expected = parse_message(raw, mailbox=f"mb-{user}")
    if expected.external_id.startswith("sha256:"):  # no Message-ID: a hash of the bytes
        assert event.external_id.startswith("sha256:")  # (LDA adds a Return-Path line)
    else:
        assert event.external_id == expected.external_id
    assert event.kind == expected.kind
    assert event.classification == expected.classification
    assert event.subject == expected.subject
    assert event.meta["imap"]["uid"] == 1
    assert event.meta["imap"]["folder"] == "INBOX"
    assert r.health.state is ConnectorState.CONNECTED


async def test_initial_sync_all_fixtures_never_marks_read(
    dovecot: DovecotServer, user: str, start_mailbox: Start
) -> None:
    assert dovecot.append_many(user, [raw for _, raw in ALL]) == len(ALL)
    r = start_mailbox(settings_for(dovecot, user, batch_size=7))
    await wait_until(lambda: r.mailbox.synced.is_set())
    assert r.ingest.uids == list(range(1, len(ALL) + 1))
    # imaplib's APPEND sends CRLF line ends: the stored bytes are the CRLF form
    crlf = [re.sub(rb"\r\n|\r|\n", b"\r\n", raw) for _, raw in ALL]
    assert r.ingest.external_ids == [parse_message(raw).external_id for raw in crlf]
    saved = r.state.data[state_key(f"mb-{user}", "INBOX")]
    assert saved["last_uid"] == len(ALL)
    assert saved["initial_done"] is True
    assert saved["uidvalidity"] == dovecot.uidvalidity(user)
    flags = dovecot.flags(user)
    assert len(flags) == len(ALL)
    assert not [uid for uid, f in flags.items() if "\\Seen" in f]


async def test_idle_delivery_arrives_within_two_seconds(
    dovecot: DovecotServer, user: str, start_mailbox: Start
) -> None:
    r = start_mailbox(settings_for(dovecot, user))
    await wait_until(lambda: r.health.state is ConnectorState.CONNECTED)
    await asyncio.sleep(0.3)  # let IDLE start
    latencies = []
    for i, (mid, raw) in enumerate(unique_messages(FIXTURES, 3, "idle")):
        t0 = time.monotonic()
        await asyncio.to_thread(dovecot.deliver, user, raw)
        await wait_until(partial(_has_calls, r, i + 1), limit=5)
        latencies.append(r.ingest.call_times[-1] - t0)
        assert r.ingest.calls[-1].external_id == mid
    assert max(latencies) < 2.0, latencies


def _has_calls(r: Running, n: int) -> bool:
    return len(r.ingest.calls) == n


async def test_restart_resumes_without_repeat_or_gap(
    dovecot: DovecotServer, user: str, start_mailbox: Start
) -> None:
    msgs = unique_messages(FIXTURES, 8, "restart")
    dovecot.append_many(user, [raw for _, raw in msgs[:5]])
    state = MemoryState()
    first = start_mailbox(settings_for(dovecot, user), state=state)
    await wait_until(lambda: first.mailbox.synced.is_set())
    await first.stop()
    dovecot.append_many(user, [raw for _, raw in msgs[5:]])
    second = start_mailbox(settings_for(dovecot, user), state=state)
    await wait_until(lambda: second.mailbox.synced.is_set())
    assert first.ingest.external_ids == [m for m, _ in msgs[:5]]
    assert second.ingest.external_ids == [m for m, _ in msgs[5:]]
    assert second.ingest.uids == [6, 7, 8]


async def test_connection_killed_mid_sync_loses_and_doubles_nothing(
    dovecot: DovecotServer, user: str, start_mailbox: Start
) -> None:
    msgs = unique_messages(FIXTURES, 600, "kick")
    dovecot.append_many(user, [raw for _, raw in msgs])
    ingest = FakeIngest()
    kicked: list[int] = []

    async def hook(n: int, _event: object) -> None:
        if n in (150, 320):  # twice, in different batches, with batches still to fetch
            kicked.append(n)
            await asyncio.to_thread(dovecot.kick, user)
            await asyncio.sleep(0.2)  # let the server close the socket

    ingest.hook = hook
    r = start_mailbox(settings_for(dovecot, user, batch_size=50), ingest=ingest)
    await wait_until(lambda: len(set(ingest.external_ids)) == 600, limit=60)
    await wait_until(lambda: r.health.state is ConnectorState.CONNECTED)
    assert kicked == [150, 320]
    assert r.mailbox.stats.reconnects >= 2
    assert sorted(ingest.external_ids) == sorted(m for m, _ in msgs)  # each exactly once
    assert ingest.uids == list(range(1, 601))


async def test_uidvalidity_change_resyncs_without_duplicates(
    dovecot: DovecotServer, user: str, start_mailbox: Start
) -> None:
    msgs = unique_messages(FIXTURES, 5, "uidv")
    dovecot.append_many(user, [raw for _, raw in msgs])
    state = MemoryState()
    first = start_mailbox(settings_for(dovecot, user), state=state)
    await wait_until(lambda: first.mailbox.synced.is_set())
    await first.stop()
    old = dovecot.uidvalidity(user)
    dovecot.set_uidvalidity(user, old + 1000)
    ingest = first.ingest  # the same inbox
    second = start_mailbox(settings_for(dovecot, user), ingest=ingest, state=state)
    await wait_until(lambda: second.mailbox.synced.is_set())
    assert second.mailbox.stats.resyncs == 1
    assert state.data[state_key(f"mb-{user}", "INBOX")]["uidvalidity"] == old + 1000
    assert len(ingest.calls) == 10  # the window was fetched again ...
    assert set(ingest.accepted) == {("email", "email_received", m) for m, _ in msgs}
    assert second.mailbox.stats.duplicates == 5  # ... and the inbox took nothing twice


async def test_wrong_password_reports_auth_failed(
    dovecot: DovecotServer, user: str, start_mailbox: Start
) -> None:
    r = start_mailbox(settings_for(dovecot, user, password="wrong"))
    await wait_until(lambda: r.health.state is ConnectorState.AUTH_FAILED)
    assert r.health.reason is not None
    assert "login refused" in r.health.reason
    assert "AUTHENTICATIONFAILED" in r.health.reason
    assert r.mailbox.stats.auth_failures >= 1
    assert r.ingest.calls == []


async def test_server_down_then_up_reconnects(start_mailbox: Start) -> None:
    server = DovecotServer.start()
    try:
        server.add_user("bob", "secret")
        r = start_mailbox(settings_for(server, "bob"))
        await wait_until(lambda: r.health.state is ConnectorState.CONNECTED)
        await asyncio.to_thread(server.kill)
        await wait_until(lambda: r.health.state is ConnectorState.RECONNECTING)
        assert r.health.reason
        ((mid, raw),) = unique_messages(FIXTURES, 1, "down")
        await asyncio.to_thread(server.restart)
        server.deliver("bob", raw)
        await wait_until(lambda: r.ingest.external_ids == [mid], limit=20)
        await wait_until(lambda: r.health.state is ConnectorState.CONNECTED)
    finally:
        server.stop()


async def test_more_than_500_messages_in_batches(
    dovecot: DovecotServer, user: str, start_mailbox: Start
) -> None:
    msgs = unique_messages(FIXTURES, 1100, "big")
    dovecot.append_many(user, [raw for _, raw in msgs])
    r = start_mailbox(settings_for(dovecot, user, batch_size=500, command_timeout=30))
    await wait_until(lambda: r.mailbox.synced.is_set(), limit=90)
    assert len(r.ingest.calls) == 1100
    assert r.ingest.uids == list(range(1, 1101))
    assert r.mailbox.stats.reconnects == 0


async def test_ingest_unavailable_is_retried_never_skipped(
    dovecot: DovecotServer, user: str, start_mailbox: Start
) -> None:
    msgs = unique_messages(FIXTURES, 3, "unavail")
    dovecot.append_many(user, [raw for _, raw in msgs])
    ingest = FakeIngest()
    failures = {"left": 3}

    async def hook(n: int, _event: object) -> None:
        if n == 1 and failures["left"] > 0:
            failures["left"] -= 1
            raise IngestUnavailable("database is locked")

    ingest.hook = hook
    r = start_mailbox(settings_for(dovecot, user), ingest=ingest)
    await wait_until(lambda: r.mailbox.synced.is_set())
    assert ingest.external_ids == [m for m, _ in msgs]
    assert r.mailbox.stats.ingest_retries == 3


async def test_unparseable_message_is_kept_raw_and_counted(
    dovecot: DovecotServer, user: str, start_mailbox: Start
) -> None:
    msgs = unique_messages(FIXTURES, 3, "boom")
    dovecot.append_many(user, [raw for _, raw in msgs])

    def parse(raw: bytes, **kw: Any) -> InboundEvent:
        if b"boom-1@" in raw:
            raise RuntimeError("parser bug")
        return parse_message(raw, **kw)

    r = start_mailbox(settings_for(dovecot, user), parse=parse)
    await wait_until(lambda: r.mailbox.synced.is_set())
    ids = r.ingest.external_ids
    assert len(ids) == 3 and ids[0] == msgs[0][0] and ids[2] == msgs[2][0]
    kept = r.ingest.calls[1]
    assert ids[1].startswith("sha256:")
    assert kept.meta["parse_error"] == "RuntimeError: parser bug"
    assert b"boom-1@" in kept.raw and kept.meta["imap"]["uid"] == 2
    assert r.mailbox.stats.parse_failures == 1
    assert r.mailbox.stats.failed_uids == [("INBOX", 2)]


class _NoIdleSession(ImapSession):
    @property
    def has_idle(self) -> bool:
        return False


async def test_polling_fallback_without_idle(
    dovecot: DovecotServer, user: str, start_mailbox: Start
) -> None:
    r = start_mailbox(
        settings_for(dovecot, user, poll_interval=0.2), session_factory=_NoIdleSession
    )
    await wait_until(lambda: r.health.state is ConnectorState.CONNECTED)
    ((mid, raw),) = unique_messages(FIXTURES, 1, "poll")
    dovecot.deliver(user, raw)
    await wait_until(lambda: r.ingest.external_ids == [mid], limit=5)


async def test_several_folders_are_watched(
    dovecot: DovecotServer, user: str, start_mailbox: Start
) -> None:
    msgs = unique_messages(FIXTURES, 2, "folders")
    dovecot.append_many(user, [msgs[0][1]])
    dovecot.append_many(user, [msgs[1][1]], folder="Sent")
    r = start_mailbox(settings_for(dovecot, user, folders=["INBOX", "Sent"]))
    await wait_until(lambda: len(r.ingest.calls) == 2)
    got = {(e.meta["imap"]["folder"], e.external_id) for e in r.ingest.calls}
    assert got == {("INBOX", msgs[0][0]), ("Sent", msgs[1][0])}
    assert set(r.state.data) == {f"imap:mb-{user}:INBOX", f"imap:mb-{user}:Sent"}


async def test_parse_in_worker_processes(
    dovecot: DovecotServer, user: str, start_mailbox: Start
) -> None:
    msgs = unique_messages(FIXTURES, 6, "workers")
    dovecot.append_many(user, [raw for _, raw in msgs])
    r = start_mailbox(settings_for(dovecot, user, parse_workers=1, batch_size=4))
    await wait_until(lambda: r.mailbox.synced.is_set(), limit=30)
    assert r.ingest.external_ids == [m for m, _ in msgs]
    assert r.ingest.uids == [1, 2, 3, 4, 5, 6]


async def test_starttls_login_and_sync(start_mailbox: Start) -> None:
    from tests.support.smtp_server import make_self_signed_cert

    tls_dir = Path(tempfile.mkdtemp(prefix="crmhub-tls-"))
    cert, key = make_self_signed_cert(tls_dir)
    os.chmod(tls_dir, 0o755)
    server = DovecotServer.start(cert=cert, key=key)
    try:
        server.add_user("tls", "secret")
        ((mid, raw),) = unique_messages(FIXTURES, 1, "starttls")
        server.deliver("tls", raw)
        r = start_mailbox(settings_for(server, "tls", tls="starttls", ca_file=str(cert)))
        await wait_until(lambda: r.ingest.external_ids == [mid])
        # an untrusted certificate never gets the password
        bad = start_mailbox(settings_for(server, "tls", tls="starttls", name="bad"))
        await wait_until(lambda: bad.health.state is ConnectorState.RECONNECTING)
        assert bad.health.reason is not None and "TLS" in bad.health.reason
    finally:
        server.stop()
        shutil.rmtree(tls_dir, ignore_errors=True)
