"""The connector against a TCP AMI server replaying the recordings (tests/support/ami_server.py)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from connectors.asterisk import AsteriskConnector, AsteriskOutbound, AsteriskSettings
from crm_core.events import InboundEvent
from crm_core.ports import (
    ConnectorHealth,
    ConnectorState,
    IngestReceipt,
    IngestUnavailable,
    OutboundCommand,
    OutboundStatus,
)
from tests.support.ami_server import AMIServer
from tests.support.ami_truth import AMI_FIXTURES, SCENARIOS, TRUNK, expected_calls


class FakeIngest:
    def __init__(self, fail_first: int = 0) -> None:
        self.events: list[InboundEvent] = []  # call events
        self.reconciled: list[InboundEvent] = []  # one calls_reconciled per login
        self.fail_first = fail_first
        self.keys: set[tuple[str, str]] = set()

    async def __call__(self, event: InboundEvent, *, wait: bool = False) -> IngestReceipt:
        if self.fail_first > 0:
            self.fail_first -= 1
            raise IngestUnavailable("database down")
        if event.kind.value == "calls_reconciled":
            self.reconciled.append(event)
            return IngestReceipt(event_id=0, duplicate=False)
        key = (event.kind.value, event.external_id)
        dup = key in self.keys
        self.keys.add(key)
        if not dup:
            self.events.append(event)
        return IngestReceipt(event_id=len(self.events), duplicate=dup)

    def ended(self) -> list[InboundEvent]:
        return [e for e in self.events if e.kind.value == "call_ended"]


def settings(port: int, **kw: Any) -> AsteriskSettings:
    base: dict[str, Any] = dict(
        name="office",
        host="127.0.0.1",
        port=port,
        username="crm",
        secret="crmsecret",
        reconnect_max_seconds=0.2,
        cdr_wait_seconds=0.3,
        action_timeout_seconds=1.0,
    )
    base.update(TRUNK)
    base.update(kw)
    return AsteriskSettings(**base)


@contextlib.asynccontextmanager
async def running(conn: AsteriskConnector) -> AsyncIterator[None]:
    task = asyncio.create_task(conn.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(cond: Callable[[], bool], limit_s: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + limit_s
    while not cond():
        if loop.time() > end:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
async def test_scenario_through_tcp(scenario: str) -> None:
    expected = expected_calls(scenario)
    ingest = FakeIngest(fail_first=2)  # the pipeline is briefly down: events wait, none lost
    health = ConnectorHealth("office", "call")
    live: list[InboundEvent] = []
    async with AMIServer.from_files(AMI_FIXTURES / f"{scenario}.ami", speed=0.002) as srv:
        conn = AsteriskConnector(settings(srv.port), ingest, health, on_live=live.append)
        async with running(conn):
            await until(lambda: len(ingest.ended()) == len(expected))
            assert health.state is ConnectorState.CONNECTED
            await asyncio.sleep(0.05)
        filters = [a["Filter"] for a in srv.actions if a.get("Action") == "Filter"]
        assert filters and filters[0].startswith("Event: (") and "Hangup" in filters[0]
        assert any(a.get("Action") == "CoreShowChannels" for a in srv.actions)
    assert len(live) == len(ingest.events)
    assert [e.source for e in ingest.reconciled] == ["office"]  # one login, one report
    ended = ingest.ended()
    for got, exp in zip(ended, expected, strict=True):
        kinds = [e.kind.value for e in ingest.events if e.external_id == got.external_id]
        assert kinds == exp["kinds"]
        m = got.meta
        assert got.external_id == f"office:{m['linkedid']}"
        assert m["direction"] == exp["direction"] and m["caller"] == exp["caller"]
        assert got.identities == (f"phone:{exp['caller']}",)
        for key in ("answered_by", "outcome", "extensions_rung", "ring_seconds", "talk_seconds"):
            if key in exp:
                assert m[key] == exp[key], key


async def test_login_failure_is_reported() -> None:
    health = ConnectorHealth("office", "call")
    async with AMIServer.from_files(AMI_FIXTURES / "a_inbound_answered.ami") as srv:
        conn = AsteriskConnector(settings(srv.port, secret="wrong-secret"), FakeIngest(), health)
        async with running(conn):
            await until(lambda: health.state is ConnectorState.AUTH_FAILED)
            assert health.reason is not None and "Authentication failed" in health.reason
            assert "'crm'" in health.reason
            assert not health.ok
        assert srv.logins_ok == 0


async def test_wrong_host_is_reported_and_recovers() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    health = ConnectorHealth("office", "call")
    ingest = FakeIngest()
    conn = AsteriskConnector(settings(port), ingest, health)
    async with running(conn):
        await until(lambda: health.state is ConnectorState.DOWN)
        assert health.reason is not None and f"127.0.0.1:{port}" in health.reason
        srv = AMIServer.from_files(AMI_FIXTURES / "a_inbound_answered.ami", port=port)
        async with srv:
            await until(lambda: len(ingest.ended()) == 1)
            assert health.state is ConnectorState.CONNECTED


@pytest.mark.parametrize("resume", ["call_gone", "call_still_live"])
async def test_drop_mid_call_then_reconcile(resume: str) -> None:
    """Link dropped mid-call; on reconnect CoreShowChannels tells what is still live."""
    ingest = FakeIngest()
    health = ConnectorHealth("office", "call")
    srv = AMIServer.from_files(AMI_FIXTURES / "f_inbound_overlapping.ami", speed=0.0)
    answered = [i for i, (_, m) in enumerate(srv.events) if m.get("Event") == "BridgeEnter"]
    srv.drop_after = answered[3] + 1  # both calls up (two BridgeEnter each)
    first_hangup = next(i for i, (_, m) in enumerate(srv.events) if m.get("Event") == "Hangup")
    # call_gone: both calls end while we are away; call_still_live: we miss one call's end only
    srv.resume_at = len(srv.events) if resume == "call_gone" else first_hangup + 2
    async with srv:
        conn = AsteriskConnector(settings(srv.port), ingest, health)
        async with running(conn):
            await until(lambda: len(ingest.ended()) == 2)
            await asyncio.sleep(0.7)
        assert srv.logins_ok == 2
    ended = ingest.ended()
    assert sorted(e.external_id for e in ended) == ["office:1795839680.29", "office:1795839681.31"]
    assert len(ingest.events) == len(set((e.kind, e.external_id) for e in ingest.events))
    reconciled = [e.meta.get("reconciled", False) for e in ended]
    assert reconciled.count(True) == (2 if resume == "call_gone" else 1)
    assert all(e.meta["outcome"] == "answered" for e in ended)


async def test_click_to_call_originate() -> None:
    ingest = FakeIngest()
    health = ConnectorHealth("office", "call")
    async with AMIServer.from_files(AMI_FIXTURES / "login_failed.ami") as srv:
        conn = AsteriskConnector(settings(srv.port), ingest, health)
        out = AsteriskOutbound(conn, conn.settings)
        command = OutboundCommand(
            1,
            "call",
            "originate",
            "ob-77",
            {"extension": "101", "number": "+79165551234", "crm_call_id": "call-9"},
        )
        assert (await out.execute(command)).status is OutboundStatus.RETRY  # not connected yet
        async with running(conn):
            await until(lambda: health.state is ConnectorState.CONNECTED)
            res = await out.execute(command)
            assert res.status is OutboundStatus.SENT
            srv.originate_error = "Originate failed"
            res2 = await out.execute(command)
            assert res2.status is OutboundStatus.FAILED and "Originate failed" in (
                res2.detail or ""
            )
            # Sent but never confirmed: it may be ringing, so it is not retried.
            srv.originate_error, srv.originate_silent = None, True
            res3 = await out.execute(command)
            assert res3.status is OutboundStatus.FAILED
            assert "not retried" in (res3.detail or "")
    orig = next(a for a in srv.actions if a.get("Action") == "Originate")
    assert orig["ActionID"] == "ob-77" and orig["Channel"] == "PJSIP/101"
    assert orig["Exten"] == "89165551234" and orig["Context"] == "click2call"
    assert orig["Variable"] == "CRMHUB_CALL_ID=call-9" and orig["Async"] == "true"
