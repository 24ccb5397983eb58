"""Issue 10 item 13 end to end: crmhub starts while an inbound call is up and bridged to
101 (the recorded second connection of a real Asterisk 22 played back over TCP,
tests/support/ami_recorded.py).  The timeline gets one answered call by 101 with the
PBX's talk time, and no "call back" task.  SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from crm_core.models import Interaction, Task
from gateway.app import create_app
from tests.support.ami_recorded import RecordedLink
from tests.support.ami_truth import AMI_FIXTURES
from tests.support.app import add_user, make_settings
from tests.support.telephony import ami_settings, drained, rows, until

G2 = AMI_FIXTURES / "g2_inbound_up_when_crmhub_starts.ami"


async def test_call_up_when_crmhub_starts_is_logged_answered(
    db_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    await add_user(db_url, "anna@example.ru", "manager", extension="101")
    async with RecordedLink(G2, speed=1.0) as pbx:
        settings = make_settings(db_url, tmp_path, asterisk=[ami_settings(pbx.port)])
        client: TestClient = await aiohttp_client(create_app(settings))

        async def ended() -> bool:
            return bool(await rows(client, Interaction, Interaction.kind == "call_ended"))

        await until(ended, limit_s=30, what="the adopted call's end")
        await drained(client)
    (call,) = await rows(client, Interaction, Interaction.kind == "call_ended")
    assert (call.outcome, call.meta["answered_by"], call.direction) == ("answered", "101", "in")
    assert (call.duration_s, call.ring_s) == (14, 3)  # the PBX's BillableSeconds
    assert call.meta["adopted"] is True and "reconciled" not in call.meta
    assert await rows(client, Interaction, Interaction.kind == "call_missed") == []
    assert await rows(client, Task, Task.kind == "call_back") == []
