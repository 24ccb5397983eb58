"""Click-to-call through a real Asterisk: ``POST /api/v1/calls`` as operator 101 rings
101 (sipp answers), then the customer on the trunk (a sipp UAS that answers and hangs up
after 5 s, or answers 486 Busy).  Checked through ``GET /api/v1/calls/{id}``, the
timeline and the operator's live stream."""

from __future__ import annotations

from typing import Any

from tests.live_pbx.conftest import Lab
from tests.live_pbx.helpers import live_has
from tests.support.live_crmhub import Api, Crmhub, live_stream, poll


async def _click_to_call(
    hub: Crmhub, number: str, key: str
) -> tuple[dict[str, Any], list[Any], list[Any]]:
    """Operator 101 makes a lead for ``number`` and calls it from the lead: (the call's
    status once its result is known, its call_ended live states, the lead's timeline)."""
    op101 = hub.users["101"]
    async with Api(hub.base_url, op101.token) as op, live_stream(op) as live:
        lead = await op.post("/leads", {"name": f"Клиент {key}", "phones": [number]})
        body = {"lead_id": lead["id"]}
        placed = await op.post("/calls", body, **{"Idempotency-Key": key})
        assert placed["status"] in ("pending", "sending", "sent")

        async def result() -> dict[str, Any] | None:
            status: dict[str, Any] = await op.get(f"/calls/{placed['outbox_id']}")
            return status if status["result"] else None

        status = await poll(result, f"click-to-call {number}: its result", 60)
        states = await live_has(
            live,
            "call_state",
            state="call_ended",
            interaction_id=status["result"]["interaction_id"],
        )
        timeline = await op.timeline(lead["id"])
    return status, states, timeline


async def test_click_to_call_answered(lab: Lab, hub: Crmhub) -> None:
    status, states, timeline = await _click_to_call(hub, "+7 916 000-30-01", "live-c2c-ok")
    assert status["status"] == "sent" and status["extension"] == "101"
    result = status["result"]
    assert result["outcome"] == "answered"
    assert result["talk_seconds"] >= 3  # the customer talks 5 s, then hangs up
    assert result["ring_seconds"] is not None
    (call,) = [c for c in timeline if c["channel"] == "call"]
    assert call["id"] == result["interaction_id"]
    assert call["direction"] == "out" and call["meta"]["click_to_call"] is True
    assert call["meta"]["operator"] == "101" and call["meta"]["dial_status"] == "ANSWER"
    assert states[0]["outcome"] == "answered"


async def test_click_to_call_busy(lab: Lab, hub: Crmhub) -> None:
    """89031112233 is the dialplan's busy customer (486)."""
    status, states, timeline = await _click_to_call(hub, "8 903 111-22-33", "live-c2c-busy")
    result = status["result"]
    assert status["status"] == "sent"
    assert result["outcome"] != "answered" and not result["talk_seconds"]
    (call,) = [c for c in timeline if c["channel"] == "call"]
    assert call["id"] == result["interaction_id"]
    assert call["direction"] == "out" and call["meta"]["dial_status"] == "BUSY"
    assert states[0]["outcome"] == result["outcome"]
