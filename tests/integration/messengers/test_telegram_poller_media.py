"""Polling mode and media download against the fake Bot API on 127.0.0.1."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from connectors.telegram import (
    BotApiMediaFetcher,
    TelegramBotSettings,
    TelegramPoller,
    submit_update,
)
from crm_core.events import EventKind
from crm_core.ports import ConnectorState, HealthRegistry
from tests.support.fake_telegram import FakeTelegram, RecordingIngest

FIXTURES = Path(__file__).parents[2] / "fixtures" / "telegram"
TOKEN = "222:poll-token"


def fixture(name: str, update_id: int | None = None) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    if update_id is not None:
        data["update_id"] = update_id
    return data


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    server = FakeTelegram(tokens={TOKEN})
    await server.start()
    yield server
    await server.close()


async def wait_for(cond: Callable[[], bool], limit: float = 5.0) -> None:
    """Poll a condition the poller task changes (it has no event to wait on)."""
    async with asyncio.timeout(limit):
        for _ in iter(cond, True):  # until cond() is True
            await asyncio.sleep(0.01)


def settings(fake: FakeTelegram) -> TelegramBotSettings:
    return TelegramBotSettings(name="poll", token=TOKEN, base_url=fake.base_url, polling=True)


async def test_poller_ingests_and_moves_the_offset(fake: FakeTelegram) -> None:
    ingest = RecordingIngest()
    health = HealthRegistry()
    poller = TelegramPoller(settings(fake), ingest, health, poll_timeout=1, min_backoff=0.01)
    fake.push_update(fixture("06_real_message_text_en.json", 10))
    fake.push_update(fixture("01_docs_message_text_start.json", 11))  # PTB cannot parse it
    fake.push_update(fixture("07_real_callback_query.json", 12))
    task = asyncio.create_task(poller.run())
    try:
        await wait_for(lambda: poller.processed == 3)
        assert health.all()[0].state is ConnectorState.CONNECTED
        fake.push_update(fixture("08_real_message_text_ru.json", 13))
        await wait_for(lambda: poller.processed == 4)
        await wait_for(lambda: 14 in fake.offsets)
    finally:
        poller.stop()
        await asyncio.wait_for(task, 5)
    kinds = [(e.kind, e.external_id.split(":")[1]) for e in ingest.events]
    assert kinds == [
        (EventKind.MESSAGE_RECEIVED, "10"),
        (EventKind.IGNORED, "failed"),
        (EventKind.CALLBACK_QUERY, "12"),
        (EventKind.MESSAGE_RECEIVED, "13"),
    ]
    assert "parse_error" in ingest.events[1].meta
    assert fake.offsets[0] is None
    assert len(fake.calls_of("deleteWebhook")) == 1
    assert health.all()[0].state is ConnectorState.DOWN


async def test_poller_refetches_when_ingest_is_down(fake: FakeTelegram) -> None:
    ingest = RecordingIngest()
    ingest.unavailable = True
    poller = TelegramPoller(
        settings(fake), ingest, HealthRegistry(), poll_timeout=1, min_backoff=0.01, max_backoff=0.05
    )
    fake.push_update(fixture("06_real_message_text_en.json", 20))
    task = asyncio.create_task(poller.run())
    try:
        await wait_for(lambda: ingest.calls >= 3)
        assert poller.offset is None  # not confirmed: Telegram keeps it
        ingest.unavailable = False
        await wait_for(lambda: len(ingest.events) == 1)
        await wait_for(lambda: 21 in fake.offsets)
    finally:
        poller.stop()
        await asyncio.wait_for(task, 5)
    assert ingest.events[0].external_id == "poll:20"


async def test_poller_reports_a_rejected_token(fake: FakeTelegram) -> None:
    bad = TelegramBotSettings(name="bad", token="999:wrong", base_url=fake.base_url)
    health = HealthRegistry()
    poller = TelegramPoller(bad, RecordingIngest(), health, poll_timeout=1, max_backoff=0.05)
    task = asyncio.create_task(poller.run())
    try:
        await wait_for(lambda: health.all()[0].state is ConnectorState.AUTH_FAILED)
    finally:
        poller.stop()
        await asyncio.wait_for(task, 5)


def photo_update(update_id: int, *, size: int) -> dict[str, Any]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": 9,
            "from": {"id": 77, "is_bot": False, "first_name": "Anna"},
            "chat": {"id": 77, "type": "private", "first_name": "Anna"},
            "date": 1717000000,
            "document": {
                "file_id": "DOC1",
                "file_unique_id": "uDOC1",
                "file_name": "invoice.pdf",
                "mime_type": "application/pdf",
                "file_size": size,
            },
        },
    }


async def test_media_is_downloaded_before_ingest(fake: FakeTelegram) -> None:
    content = b"%PDF-1.7 invoice body"
    fake.add_file("DOC1", content, path="documents/file_1.pdf")
    bots = {"poll": settings(fake)}
    media = BotApiMediaFetcher(bots)
    ingest = RecordingIngest()
    data = photo_update(30, size=len(content))
    try:
        await submit_update("poll", data, json.dumps(data).encode(), ingest, media=media)
    finally:
        await media.aclose()
    (att,) = ingest.events[0].attachments
    assert att.content == content
    assert att.sha256 == hashlib.sha256(content).hexdigest()
    assert (att.filename, att.size, att.url) == ("invoice.pdf", len(content), "tg-file:DOC1")
    assert [c.params["file_id"] for c in fake.calls_of("getFile")] == ["DOC1"]


async def test_media_errors_and_limits_keep_the_metadata(fake: FakeTelegram) -> None:
    bots = {"poll": settings(fake)}
    media = BotApiMediaFetcher(bots, max_bytes=1000)
    ingest = RecordingIngest()
    big = photo_update(31, size=5000)
    missing = photo_update(32, size=10)  # the fake has no such file: getFile answers 400
    try:
        for data in (big, missing):
            await submit_update("poll", data, json.dumps(data).encode(), ingest, media=media)
    finally:
        await media.aclose()
    first, second = ingest.events
    assert first.attachments[0].content is None
    assert first.meta["media_errors"] == [
        {"file": "invoice.pdf", "error": "too large (5000 bytes)"}
    ]
    assert second.attachments[0].content is None
    assert "invalid file_id" in second.meta["media_errors"][0]["error"].lower()
    assert len(fake.calls_of("getFile")) == 1
