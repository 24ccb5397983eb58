"""The live connector adopts a call that is up when it logs in, exactly as
``crmhub ingest ami --dry-run`` does on the same recording (one parser, one tracker):
the recorded connection of a real Asterisk 22 is played back over TCP
(tests/support/ami_recorded.py), the real ``CoreShowChannel`` items included."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import pytest

from connectors.asterisk import AsteriskConnector, AsteriskSettings, dry_run
from crm_core.events import InboundEvent
from crm_core.ports import ConnectorHealth, IngestReceipt
from tests.support.ami_recorded import RecordedLink
from tests.support.ami_truth import AMI_FIXTURES, TRUNK

SAME = ("kind", "direction", "caller", "answered_by", "extensions_rung", "called_number")
# figures the PBX gives (Cdr BillableSeconds, queue TalkTime/HoldTime) do not depend on
# the replay's pace; the others are measured on it
PBX_FIGURES: dict[str, tuple[str, ...]] = {
    "g2_inbound_up_when_crmhub_starts": ("talk_seconds", "ring_seconds", "outcome"),
    "h2_queue_up_when_crmhub_starts": ("talk_seconds", "ring_seconds", "outcome"),
    "i2_inbound_ringing_when_crmhub_starts": ("outcome",),
    "k2_click2call_up_when_crmhub_starts": ("outcome",),
}


class Collect:
    def __init__(self) -> None:
        self.events: list[InboundEvent] = []

    async def __call__(self, event: InboundEvent, *, wait: bool = False) -> IngestReceipt:
        self.events.append(event)
        return IngestReceipt(event_id=len(self.events), duplicate=False)

    def calls(self) -> list[InboundEvent]:
        return [e for e in self.events if e.kind.value != "calls_reconciled"]


async def _until(cond: Callable[[], bool], limit_s: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + limit_s
    while not cond():
        if loop.time() > end:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("name", sorted(PBX_FIGURES))
async def test_live_link_adopts_like_the_dry_run(name: str) -> None:
    expected = dry_run(AMI_FIXTURES / f"{name}.ami", **TRUNK)
    ingest = Collect()
    # g2 at its real pace: its answer time is derived from the Cdr's BillableSeconds
    speed = 1.0 if name.startswith("g2") else 0.3
    async with RecordedLink(AMI_FIXTURES / f"{name}.ami", speed=speed) as pbx:
        settings = AsteriskSettings(
            name="office",
            port=pbx.port,
            username="crm",
            secret="crmsecret",
            cdr_wait_seconds=0.3,
            action_timeout_seconds=2.0,
            **TRUNK,
        )
        conn = AsteriskConnector(settings, ingest, ConnectorHealth("office", "call"))
        task = asyncio.create_task(conn.run())
        try:
            await _until(lambda: len(ingest.calls()) >= len(expected))
            await asyncio.sleep(0.2)  # nothing more comes
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    got = ingest.calls()
    assert len(got) == len(expected)
    for event, row in zip(got, expected, strict=True):
        live: dict[str, Any] = {
            "kind": event.kind.value,
            **event.meta,
            "called_number": event.meta.get("called_number"),
        }
        for key in SAME:
            assert live[key] == row[key], (key, live, row)
        if event.kind.value == "call_ended":
            for key in PBX_FIGURES[name]:
                assert live[key] == row[key], (key, live, row)
            assert event.meta["adopted"] is True
    report = [e for e in ingest.events if e.kind.value == "calls_reconciled"]
    assert len(report) == 1 and report[0].meta["live_linkedids"] == [expected[0]["linkedid"]]
