"""Inbound calls through a real Asterisk into a running crmhub: answered, missed (no
answer), busy, a queue, and 30 calls in 10 seconds; each checked through the REST API
(leads, timeline, tasks) and the live stream (caller card, call states)."""

from __future__ import annotations

import asyncio

import pytest

from tests.live_pbx.conftest import Lab
from tests.live_pbx.helpers import finished, live_has, logged_calls, number
from tests.support.live_crmhub import Api, Crmhub, live_stream, poll


@pytest.fixture(params=["sqlite", pytest.param("pg", marks=pytest.mark.pg)])
def core(request: pytest.FixtureRequest) -> tuple[Crmhub, int]:
    """The core scenarios run on the shared SQLite crmhub and on the PostgreSQL one (its
    callers numbered apart: both hubs watch the same PBX)."""
    if request.param == "sqlite":
        return request.getfixturevalue("hub"), 0
    return request.getfixturevalue("pg_hub"), 500_000


async def test_inbound_answered(lab: Lab, core: tuple[Crmhub, int]) -> None:
    hub, off = core
    dialled, phone = number(1001 + off)
    admin, op101 = hub.users["admin"], hub.users["101"]
    async with Api(hub.base_url, admin.token) as api, Api(hub.base_url, op101.token) as op:
        async with live_stream(op) as live:
            sipp = lab.sipp.call("74950000101", [dialled], talk_ms=2000)
            assert await finished(sipp) == 0
            (call,) = await logged_calls(api, phone)
            (card,) = await live_has(live, "caller_card", caller=phone)
            await live_has(live, "call_state", linkedid=card["linkedid"], state="call_ended")
            states = live.of("call_state", linkedid=card["linkedid"])
        (lead,) = await api.leads(phone)
        assert lead["source"] == "call" and lead["owner_id"] in (op101.id, hub.users["102"].id)
        assert call["kind"] == "call_ended" and call["direction"] == "in"
        assert call["outcome"] == "answered" and call["lead_id"] == lead["id"]
        meta = call["meta"]
        assert meta["linkedid"] == card["linkedid"] and meta["answered_by"] == "101"
        assert meta["extensions_rung"] == ["101"] and meta["called_number"] == "74950000101"
        assert meta["dial_status"] == "ANSWER" and meta["ring_seconds"] >= 0
        assert call["duration_s"] >= 1  # sipp talks 2 s after the answer
        assert card["called_number"] == "74950000101" and card["new_caller"] is True
        assert [s["state"] for s in states] == ["call_answered", "call_ended"]
        assert states[-1]["interaction_id"] == call["id"] and states[-1]["outcome"] == "answered"
        assert await api.tasks(lead_id=lead["id"]) == []  # answered: nothing to call back


async def test_inbound_missed_opens_one_call_back_task(lab: Lab, core: tuple[Crmhub, int]) -> None:
    """103 rings until Dial gives up (10 s): a missed call, one "call back" task
    (item 15: a missed call from a new number opens exactly one task)."""
    hub, off = core
    dialled, phone = number(1002 + off)
    admin = hub.users["admin"]
    async with Api(hub.base_url, admin.token) as api, live_stream(api) as live:
        sipp = lab.sipp.call("74950000103", [dialled])
        assert await finished(sipp) == 0
        (call,) = await logged_calls(api, phone)
        (card,) = await live_has(live, "caller_card", caller=phone)
        await live_has(live, "call_state", linkedid=card["linkedid"], state="call_ended")
        states = [s["state"] for s in live.of("call_state", linkedid=card["linkedid"])]
        (lead,) = await api.leads(phone)
        tasks = await api.tasks(lead_id=lead["id"])
    assert call["outcome"] == "missed" and call["direction"] == "in"
    assert call["meta"]["dial_status"] == "NOANSWER" and call["meta"]["answered_by"] is None
    assert call["meta"]["extensions_rung"] == ["103"] and call["duration_s"] == 0
    assert states == ["call_missed", "call_ended"]
    (task,) = tasks
    assert task["kind"] == "call_back" and task["status"] == "open"
    assert task["assignee_id"] == lead["owner_id"] is not None and phone in task["title"]


async def test_inbound_busy(lab: Lab, core: tuple[Crmhub, int]) -> None:
    """104 answers 486 Busy Here: the client was not served, so it is a call to return."""
    hub, off = core
    dialled, phone = number(1003 + off)
    admin = hub.users["admin"]
    async with Api(hub.base_url, admin.token) as api, live_stream(api) as live:
        sipp = lab.sipp.call("74950000104", [dialled])
        assert await finished(sipp) == 0
        (call,) = await logged_calls(api, phone)
        (card,) = await live_has(live, "caller_card", caller=phone)
        await live_has(live, "call_state", linkedid=card["linkedid"], state="call_ended")
        (lead,) = await api.leads(phone)
        tasks = await api.tasks(lead_id=lead["id"])
    assert call["outcome"] == "missed" and call["meta"]["dial_status"] == "BUSY"
    assert call["meta"]["answered_by"] is None and call["meta"]["extensions_rung"] == ["104"]
    (task,) = tasks
    assert task["kind"] == "call_back" and task["status"] == "open"


async def test_queue_second_member_answers(lab: Lab, hub: Crmhub) -> None:
    """Queue ``support`` (linear): 103 rings 6 s without answering, then 102 answers.  The
    dialplan answers the caller first, so the caller stays on the line 11 s in all."""
    dialled, phone = number(1004)
    admin, op102 = hub.users["admin"], hub.users["102"]
    async with Api(hub.base_url, admin.token) as api, Api(hub.base_url, op102.token) as op:
        async with live_stream(api) as live, live_stream(op) as live102:
            sipp = lab.sipp.call("74950000200", [dialled], talk_ms=11_000)
            assert await finished(sipp) == 0
            (call,) = await logged_calls(api, phone)
            (card,) = await live_has(live, "caller_card", caller=phone)
            linkedid = card["linkedid"]
            await live_has(live, "call_state", linkedid=linkedid, state="call_ended")
            (ended,) = await live_has(live102, "call_state", linkedid=linkedid, state="call_ended")
    assert ended["answered_by"] == "102" and ended["interaction_id"] == call["id"]
    meta = call["meta"]
    assert call["outcome"] == "answered" and meta["queue"] == "support"
    assert meta["extensions_rung"] == ["103", "102"] and meta["answered_by"] == "102"
    assert [m["extension"] for m in meta["queue_members"] if m["event"] == "connected"] == ["102"]
    assert call["duration_s"] >= 1 and meta["ring_seconds"] >= 6


async def test_thirty_calls_in_ten_seconds(lab: Lab, core: tuple[Crmhub, int]) -> None:
    """30 new callers, 3 a second, all answered by 101: 30 leads, each with exactly one
    answered call; on the live stream one caller card and one call_ended per call."""
    hub, off = core
    callers = [number(2000 + i + off) for i in range(30)]
    admin = hub.users["admin"]
    async with Api(hub.base_url, admin.token) as api, live_stream(api) as live:
        sipp = lab.sipp.call(
            "74950000101", [d for d, _ in callers], talk_ms=2000, rate_per_s=3, timeout_s=120
        )
        assert await finished(sipp, 150) == 0

        async def all_ended() -> bool:
            ended = live.of("call_state", state="call_ended")
            return len({s["linkedid"] for s in ended}) >= 30

        await poll(all_ended, "30 call_ended on the live stream", 90)
        per_caller = await asyncio.gather(*(logged_calls(api, e164) for _, e164 in callers))
        leads = await asyncio.gather(*(api.leads(e164) for _, e164 in callers))
        cards = [c for c in live.of("caller_card") if c["caller"] in {e for _, e in callers}]
    assert [len(x) for x in leads] == [1] * 30
    assert sorted(c["caller"] for c in cards) == sorted(e for _, e in callers)
    linkedids = set()
    for (_, e164), calls in zip(callers, per_caller, strict=True):
        assert len(calls) == 1, (e164, calls)
        (call,) = calls
        assert call["outcome"] == "answered" and call["meta"]["answered_by"] == "101"
        assert call["duration_s"] >= 1
        linkedids.add(call["meta"]["linkedid"])
    assert len(linkedids) == 30 and linkedids == {c["linkedid"] for c in cards}
    ended = [s for s in live.of("call_state", state="call_ended") if s["linkedid"] in linkedids]
    assert len(ended) == 30
