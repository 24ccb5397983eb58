"""What each recorded AMI scenario must produce (from fixtures/ami/*.json, made explicit)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["AMI_FIXTURES", "SCENARIOS", "TRUNK", "expected_calls", "truth"]

AMI_FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "ami"
TRUNK = {"inbound_contexts": ["from-pstn"], "trunk_channel_patterns": ["PJSIP/trunk-*"]}

# scenario -> calls in order of their call_ended (fields checked against the dry-run dicts)
SCENARIOS: dict[str, list[dict[str, Any]]] = {
    "a_inbound_answered": [
        dict(
            direction="in",
            caller="+74951234567",
            extensions_rung=["101"],
            answered_by="101",
            outcome="answered",
            kinds=["call_started", "call_answered", "call_ended"],
            hangup_side="client",
        ),
    ],
    "b_inbound_missed_noanswer": [
        dict(
            direction="in",
            caller="+79165551234",
            extensions_rung=["103"],
            answered_by=None,
            outcome="missed",
            talk_seconds=0,
            dial_status="NOANSWER",
            hangup_side="pbx",
            kinds=["call_started", "call_missed", "call_ended"],
        ),
    ],
    "b2_inbound_missed_abandoned": [
        dict(
            direction="in",
            caller="+74957654321",
            extensions_rung=["103"],
            answered_by=None,
            outcome="missed",
            talk_seconds=0,
            dial_status="CANCEL",
            hangup_side="client",
            kinds=["call_started", "call_missed", "call_ended"],
        ),
    ],
    "c_inbound_queue_second_member": [
        dict(
            direction="in",
            caller="+74951234567",
            extensions_rung=["103", "102"],
            answered_by="102",
            outcome="answered",
            hangup_side="client",
            kinds=["call_started", "call_answered", "call_ended"],
        ),
    ],
    "d_click2call_answered": [
        dict(
            direction="out",
            caller="+79165551234",
            extensions_rung=["101"],
            answered_by="101",
            outcome="answered",
            ring_seconds=2,
            hangup_side="client",
            kinds=["call_started", "call_answered", "call_ended"],
        ),
    ],
    "e_click2call_customer_busy": [
        dict(
            direction="out",
            caller="+79031112233",
            extensions_rung=["101"],
            answered_by=None,
            outcome="busy",
            talk_seconds=0,
            dial_status="BUSY",
            hangup_side="pbx",
            kinds=["call_started", "call_ended"],
        ),
    ],
    "f_inbound_overlapping": [
        dict(
            direction="in",
            caller="+79165551234",
            extensions_rung=["102"],
            answered_by="102",
            outcome="answered",
            ring_seconds=2,
            talk_seconds=4,
            kinds=["call_started", "call_answered", "call_ended"],
        ),
        dict(
            direction="in",
            caller="+74951234567",
            extensions_rung=["101"],
            answered_by="101",
            outcome="answered",
            ring_seconds=3,
            talk_seconds=6,
            kinds=["call_started", "call_answered", "call_ended"],
        ),
    ],
}


def truth(scenario: str) -> dict[str, Any]:
    return json.loads((AMI_FIXTURES / f"{scenario}.json").read_text())


def expected_calls(scenario: str) -> list[dict[str, Any]]:
    """SCENARIOS entries completed with ring/talk seconds from the recording's truth file."""
    exp = truth(scenario).get("expected") or {}
    out = []
    for call in SCENARIOS[scenario]:
        c = dict(call)
        if "talk_s" in exp:
            c.setdefault("talk_seconds", exp["talk_s"])
        if "ring_s" in exp:
            c.setdefault("ring_seconds", exp["ring_s"])
        if "queue_wait_s" in exp:
            c.setdefault("ring_seconds", exp["queue_wait_s"])
        out.append(c)
    return out
