"""Who owns a new caller's lead (item 15) and call recordings played through the API
(item 16), with a real Asterisk."""

from __future__ import annotations

import asyncio

from tests.live_pbx.conftest import HubFactory, Lab
from tests.live_pbx.helpers import finished, live_has, logged_calls, number
from tests.support.live_crmhub import Api, Crmhub, live_stream


async def test_new_callers_lead_is_owned_by_the_operator_who_answered(
    lab: Lab, hub: Crmhub
) -> None:
    """Item 15: the rules give calls round robin to the users of 101 and 102; two new
    callers both answered by 101: both leads are 101's user's, and so is each call."""
    callers = [number(5001), number(5002)]
    op101 = hub.users["101"]
    async with (
        Api(hub.base_url, hub.users["admin"].token) as api,
        Api(hub.base_url, op101.token) as op,
        live_stream(op) as live,
    ):
        sipp = lab.sipp.call("74950000101", [d for d, _ in callers], talk_ms=1500)
        assert await finished(sipp) == 0
        calls = await asyncio.gather(*(logged_calls(api, e164) for _, e164 in callers))
        leads = await asyncio.gather(*(api.leads(e164) for _, e164 in callers))
        for (call,) in calls:  # 101 hears of the end of each call it answered
            await live_has(live, "call_state", state="call_ended", interaction_id=call["id"])
    got, want = {}, {}
    for (_, e164), (call,), (lead,) in zip(callers, calls, leads, strict=True):
        assert call["meta"]["answered_by"] == "101" and call["outcome"] == "answered"
        got[e164] = {"lead owner": lead["owner_id"], "call user_id": call["user_id"]}
        want[e164] = {"lead owner": op101.id, "call user_id": op101.id}
    assert got == want, [lead["assign_reason"] for (lead,) in leads]


async def test_mixmonitor_recording_is_played_through_the_api(
    lab: Lab, fresh_hub: HubFactory
) -> None:
    """Item 16: crmhub reads the PBX's MixMonitor files (``recordings_dir``); the recorded
    call (DID 74950000105) has ``recording_href``, served with Range support to the
    manager who owns the lead; a call without MixMonitor has none."""
    hub = fresh_hub("recording", recordings_dir=str(lab.pbx.monitor_dir))
    await asyncio.to_thread(hub.start)
    (rec_dialled, rec_phone), (plain_dialled, plain_phone) = number(6001), number(6002)
    admin = hub.users["admin"]
    async with Api(hub.base_url, admin.token) as api, live_stream(api) as live:
        recorded = lab.sipp.call("74950000105", [rec_dialled], talk_ms=2000)
        plain = lab.sipp.call("74950000101", [plain_dialled], talk_ms=1000)
        assert await finished(recorded) == 0 and await finished(plain) == 0
        (call,) = await logged_calls(api, rec_phone)
        (plain_call,) = await logged_calls(api, plain_phone)
        (lead,) = await api.leads(rec_phone)
        await live_has(live, "call_state", state="call_ended", interaction_id=call["id"])
    assert call["meta"]["answered_by"] == "101"
    assert call.get("recording_href") == f"/api/v1/interactions/{call['id']}/recording"
    assert "recording_href" in plain_call and plain_call["recording_href"] is None
    wav = (lab.pbx.monitor_dir / f"{call['meta']['linkedid']}.wav").read_bytes()
    assert wav[:4] == b"RIFF" and wav[8:12] == b"WAVE"
    manager = next(u for u in hub.users.values() if u.id == lead["owner_id"])
    async with Api(hub.base_url, manager.token) as api:
        async with api.http.get(call["recording_href"]) as r:
            assert r.status == 200, await r.text()
            body = await r.read()
        async with api.http.get(call["recording_href"], headers={"Range": "bytes=0-11"}) as r:
            assert r.status == 206, await r.text()
            part = await r.read()
            assert r.headers["Content-Range"] == f"bytes 0-11/{len(wav)}"
    assert body == wav
    assert part == wav[:12] and part[:4] == b"RIFF"
