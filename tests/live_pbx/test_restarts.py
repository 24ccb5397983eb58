"""Restarts in the middle of a real call: crmhub started while a call is up (item 13),
crmhub killed with SIGKILL after the answer and started again after the call ended
(item 14), and the PBX itself restarted mid-call.  Each call must end up on the timeline
exactly once, answered by 101, with the right times."""

from __future__ import annotations

import asyncio
import signal
from datetime import UTC, datetime, timedelta

import pytest

from tests.live_pbx.conftest import HubFactory, Lab
from tests.live_pbx.helpers import (
    finished,
    live_has,
    logged_calls,
    number,
    up_channel,
    wait_up,
)
from tests.support.live_crmhub import Api, Crmhub, live_stream

CLOCK_SLACK = timedelta(milliseconds=500)


async def test_crmhub_started_mid_call_logs_it_answered(lab: Lab, fresh_hub: HubFactory) -> None:
    """Item 13: crmhub starts while a call is up and bridged to 101.  After the call ends
    the timeline shows it answered by 101 with its talk time, and no "call back" task."""
    hub = fresh_hub("mid-call")
    dialled, phone = number(4001)
    sipp = lab.sipp.call("74950000101", [dialled], talk_ms=120_000)
    try:
        leg = await wait_up(lab.pbx, "101", dialled)
        await asyncio.to_thread(hub.start)  # the call is up: crmhub has never seen it start
        admin = hub.users["admin"]
        async with Api(hub.base_url, admin.token) as api, live_stream(api) as live:
            assert up_channel(lab.pbx, "101", dialled) == leg, "the call ended before crmhub was up"
            await asyncio.sleep(2)  # some talk time seen live by crmhub too
            lab.pbx.cli(f"channel request hangup {leg}")  # 101 hangs up
            calls = await logged_calls(api, phone)
            ended = live.of("call_state", state="call_ended")
            (lead,) = await api.leads(phone)
            tasks = await api.tasks(lead_id=lead["id"])
    finally:
        lab.sipp.kill(sipp)
    assert len(calls) == 1, calls
    (call,) = calls
    got = {
        "outcome": call["outcome"],
        "answered_by": call["meta"]["answered_by"],
        "talk time > 0": (call["duration_s"] or 0) > 0,
        "call back tasks": [t["title"] for t in tasks if t["kind"] == "call_back"],
        "live call_ended": [s["outcome"] for s in ended if s["interaction_id"] == call["id"]],
    }
    assert got == {
        "outcome": "answered",
        "answered_by": "101",
        "talk time > 0": True,
        "call back tasks": [],
        "live call_ended": ["answered"],
    }


async def test_crmhub_killed_mid_call_logs_it_once_with_its_times(
    lab: Lab, fresh_hub: HubFactory
) -> None:
    """Item 14: ``kill -9`` crmhub after the answer; the call ends while it is down; it is
    started again after that: exactly one call interaction, answered by 101, ring and talk
    times known, and its time is not the restart time (no later than the kill, the last
    moment crmhub can have seen the call alive)."""
    hub = fresh_hub("kill9")
    await asyncio.to_thread(hub.start)
    dialled, phone = number(4002)
    admin = hub.users["admin"]
    started = datetime.now(UTC)
    sipp = lab.sipp.call("74950000101", [dialled], talk_ms=4000)
    try:
        async with Api(hub.base_url, admin.token) as api, live_stream(api) as live:
            (card,) = await live_has(live, "caller_card", caller=phone)
            await live_has(live, "call_state", linkedid=card["linkedid"], state="call_answered")
        killed = datetime.now(UTC)
        hub.kill9()
        assert await finished(sipp) == 0  # the call ended while crmhub was dead
    finally:
        lab.sipp.kill(sipp)
    await asyncio.sleep(2)  # so that the restart time is clearly not the call's time
    restarted = datetime.now(UTC)
    await asyncio.to_thread(hub.start)
    async with Api(hub.base_url, admin.token) as api:
        calls = await logged_calls(api, phone)
        (lead,) = await api.leads(phone)
        tasks = await api.tasks(lead_id=lead["id"])
    assert len(calls) == 1, calls
    (call,) = calls
    at = datetime.fromisoformat(call["occurred_at"])
    got = {
        "kind": call["kind"],
        "linkedid": call["meta"]["linkedid"],
        "outcome": call["outcome"],
        "answered_by": call["meta"]["answered_by"],
        "ring known": call["meta"]["ring_seconds"] is not None,
        "talk known": call["duration_s"] is not None,
        "time between call start and kill": started - CLOCK_SLACK <= at <= killed + CLOCK_SLACK,
        "call back tasks": [t["title"] for t in tasks if t["kind"] == "call_back"],
    }
    assert got == {
        "kind": "call_ended",
        "linkedid": card["linkedid"],
        "outcome": "answered",
        "answered_by": "101",
        "ring known": True,
        "talk known": True,
        "time between call start and kill": True,
        "call back tasks": [],
    }, f"occurred_at {at}, call placed {started}, killed {killed}, restarted {restarted}"


@pytest.mark.parametrize("how", ["stop", "crash"])
async def test_pbx_restart_mid_call(lab: Lab, hub: Crmhub, how: str) -> None:
    """The PBX is stopped (SIGTERM) or crashes (SIGKILL) during an answered call and comes
    back: the call is logged exactly once, answered by 101; the AMI link comes back and
    the next call is logged as usual."""
    dialled, phone = number(4101 if how == "stop" else 4102)
    after_dialled, after_phone = number(4111 if how == "stop" else 4112)
    admin = hub.users["admin"]
    async with Api(hub.base_url, admin.token) as api, live_stream(api) as live:
        sipp = lab.sipp.call("74950000101", [dialled], talk_ms=120_000)
        try:
            (card,) = await live_has(live, "caller_card", caller=phone)
            await live_has(live, "call_state", linkedid=card["linkedid"], state="call_answered")
            sig = signal.SIGTERM if how == "stop" else signal.SIGKILL
            await asyncio.to_thread(lab.pbx.restart, sig)
        finally:
            lab.sipp.kill(sipp)
        calls = await logged_calls(api, phone)
        await live_has(live, "call_state", linkedid=card["linkedid"], state="call_ended")
        again = lab.sipp.call("74950000101", [after_dialled], talk_ms=1000)
        assert await finished(again) == 0
        after = await logged_calls(api, after_phone)
    assert len(calls) == 1, calls
    (call,) = calls
    assert call["outcome"] == "answered" and call["meta"]["answered_by"] == "101"
    assert [c["outcome"] for c in after] == ["answered"]
