"""Calls that end while crmhub is down: the whole app (``create_app``) is stopped in the
middle of a call replayed by the AMI test server (nothing is flushed: like kill -9, the
tracker's memory is simply gone), the call ends meanwhile, and a new app on the same
database logs it once after its first login (``calls_reconciled``): a missed call still
opens its call-back task; an answered one is logged answered, by its operator, with its
ring time and a talk time up to the last moment it was seen alive (the connector's
"alive" mark), never at the restart time.  SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from crm_core.events import InboundEvent
from crm_core.models import ConnectorStateRow, InboxEvent, Interaction, Lead, Task
from gateway.api.keys import DB
from gateway.app import create_app
from tests.support.ami_server import AMIServer
from tests.support.ami_truth import AMI_FIXTURES
from tests.support.app import add_user, make_settings
from tests.support.telephony import ami_settings, drained, rows, until

KEY = "asterisk:office:alive"
A = AMI_FIXTURES / "a_inbound_answered.ami"
B = AMI_FIXTURES / "b_inbound_missed_noanswer.ami"


async def _app(
    aiohttp_client: Any, db_url: str, tmp_path: Path, port: int, marks: float = 0.2
) -> TestClient:
    settings = make_settings(
        db_url, tmp_path, asterisk=[ami_settings(port, alive_mark_seconds=marks)]
    )
    client: TestClient = await aiohttp_client(create_app(settings))
    return client


async def _mark(client: TestClient) -> dict[str, Any] | None:
    async with client.app[DB].sessions() as s:
        row = await s.get(ConnectorStateRow, KEY)
        return dict(row.value) if row is not None else None


def _at(row: InboxEvent) -> datetime:
    return InboundEvent.from_json(row.payload).occurred_at


async def _inbox(client: TestClient, kind: str) -> list[InboxEvent]:
    return await rows(client, InboxEvent, InboxEvent.channel == "call", InboxEvent.kind == kind)


@pytest.mark.parametrize(
    ("transcript", "seen", "outcome", "call_back"),
    [(B, "call_started", "missed", "open"), (A, "call_answered", "answered", None)],
)
async def test_a_call_that_ends_while_crmhub_is_down_is_logged_once(
    db_url: str,
    tmp_path: Path,
    aiohttp_client: Any,
    transcript: Path,
    seen: str,
    outcome: str,
    call_back: str | None,
) -> None:
    for ext in ("101", "102"):
        await add_user(db_url, f"op{ext}@example.ru", "manager", extension=ext)
    async with AMIServer.from_files(transcript, speed=1.0) as srv:
        first = await _app(aiohttp_client, db_url, tmp_path, srv.port)

        async def seen_it() -> bool:
            return bool(await _inbox(first, seen))

        await until(seen_it, what=seen)
        (last_event,) = await _inbox(first, seen)
        last_at = _at(last_event)

        async def marked_alive() -> bool:  # a mark at least 1 s after its last event
            mark = await _mark(first)
            return mark is not None and mark["at"] >= last_at.timestamp() + 1.0

        await until(marked_alive, what="an alive mark of the call")
        await drained(first)
        assert await _inbox(first, "call_ended") == []
        mark = await _mark(first)
        assert mark is not None
        await first.close()  # crmhub stops mid-call: the tracker's state is gone
        srv.position = len(srv.events)  # ... and the call ends meanwhile
        restarted = datetime.now(UTC)

        second = await _app(aiohttp_client, db_url, tmp_path, srv.port)

        async def logged() -> bool:
            return bool(await rows(second, Interaction, Interaction.kind == "call_ended"))

        await until(logged, what="the call ended while crmhub was down")
        await drained(second)
        (ended,) = await rows(second, Interaction, Interaction.kind == "call_ended")
        assert ended.outcome == outcome and ended.direction == "in"
        assert ended.meta["reconciled"] is True and ended.meta["ended_unseen"] is True
        # dated when it was last seen alive (the mark), not when crmhub came back
        seen_alive = mark["at"]
        assert mark["linkedids"] == [ended.meta["linkedid"]]
        ended_at = ended.occurred_at.replace(tzinfo=UTC)
        assert abs(ended_at.timestamp() - seen_alive) < 0.01
        assert ended_at < restarted
        (started,) = await _inbox(second, "call_started")
        if outcome == "answered":
            (answered,) = await _inbox(second, "call_answered")
            assert ended.meta["answered_by"] == "101"
            ring = _at(answered) - _at(started)
            assert ended.ring_s == round(ring.total_seconds()) == 3
            talk = seen_alive - _at(answered).timestamp()
            assert ended.duration_s == round(talk) and ended.duration_s >= 1
        else:
            assert ended.meta["answered_by"] is None and ended.duration_s == 0
            ring = ended_at - _at(started)
            assert ended.ring_s == round(ring.total_seconds()) >= 1
        (lead,) = await rows(second, Lead)
        assert ended.lead_id == lead.id
        tasks = await rows(second, Task, Task.kind == "call_back")
        assert [t.status for t in tasks] == ([call_back] if call_back else [])
        assert len(await _inbox(second, "call_ended")) == 1
        reports = await _inbox(second, "calls_reconciled")
        assert len(reports) == 2 and {r.status for r in reports} == {"processed"}


async def test_without_an_alive_mark_the_last_persisted_event_dates_the_end(
    db_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    """No mark was written (the first process died before one): the end is its last
    persisted event (the answer), still with its operator and ring time."""
    await add_user(db_url, "op101@example.ru", "manager", extension="101")
    async with AMIServer.from_files(A, speed=1.0) as srv:
        first = await _app(aiohttp_client, db_url, tmp_path, srv.port, marks=3600)

        async def answered() -> bool:
            return bool(await _inbox(first, "call_answered"))

        await until(answered, what="call_answered")
        await drained(first)
        assert await _mark(first) is None
        await first.close()
        srv.position = len(srv.events)
        second = await _app(aiohttp_client, db_url, tmp_path, srv.port, marks=3600)

        async def logged() -> bool:
            return bool(await rows(second, Interaction, Interaction.kind == "call_ended"))

        await until(logged, what="the call ended while crmhub was down")
        await drained(second)
    (ended,) = await rows(second, Interaction, Interaction.kind == "call_ended")
    (answer,) = await _inbox(second, "call_answered")
    assert ended.occurred_at.replace(tzinfo=UTC) == _at(answer)
    assert (ended.outcome, ended.meta["answered_by"], ended.ring_s, ended.duration_s) == (
        "answered",
        "101",
        3,
        0,
    )
