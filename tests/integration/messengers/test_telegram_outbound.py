"""TelegramOutbound against the fake Bot API on 127.0.0.1 (PTB's real HTTP client)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from connectors.telegram import TelegramBotSettings, TelegramOutbound
from crm_core.ports import OutboundCommand, OutboundStatus
from tests.support.fake_telegram import FakeTelegram

TOKEN = "111:fake-token"


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    server = FakeTelegram(tokens={TOKEN})
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def outbound(fake: FakeTelegram) -> AsyncIterator[TelegramOutbound]:
    bots = {"shop": TelegramBotSettings(name="shop", token=TOKEN, base_url=fake.base_url)}
    executor = TelegramOutbound(bots)
    yield executor
    await executor.aclose()


def command(**payload: Any) -> OutboundCommand:
    return OutboundCommand(
        id=1,
        channel="telegram",
        kind="send_message",
        idempotency_key="k1",
        payload={"bot": "shop", "chat_id": 77, **payload},
    )


async def test_send_text(fake: FakeTelegram, outbound: TelegramOutbound) -> None:
    result = await outbound.execute(command(text="Здравствуйте!", reply_to_message_id=5))
    assert result.status is OutboundStatus.SENT
    assert result.external_id == "1000"
    (call,) = fake.calls_of("sendMessage")
    assert call.params["chat_id"] == "77"
    assert call.params["text"] == "Здравствуйте!"
    assert json.loads(call.params["reply_parameters"])["message_id"] == 5
    assert len(fake.calls_of("getMe")) == 1  # initialize() once


async def test_send_file_with_caption(
    fake: FakeTelegram, outbound: TelegramOutbound, tmp_path: Path
) -> None:
    path = tmp_path / "offer.pdf"
    path.write_bytes(b"%PDF-1.4 offer")
    result = await outbound.execute(command(text="Our offer", files=[str(path)]))
    assert result.status is OutboundStatus.SENT
    assert fake.calls_of("sendMessage") == []
    (call,) = fake.calls_of("sendDocument")
    assert call.files["document"] == ("offer.pdf", b"%PDF-1.4 offer")
    assert call.params["caption"] == "Our offer"
    assert result.meta["message_ids"] == [1000]


async def test_blocked_bot_marks_unreachable(
    fake: FakeTelegram, outbound: TelegramOutbound
) -> None:
    fake.fail("sendMessage", 403, "Forbidden: bot was blocked by the user")
    result = await outbound.execute(command(text="hi"))
    assert result.status is OutboundStatus.FAILED
    assert result.meta == {"unreachable": "telegram:77"}
    assert fake.sent == []


async def test_flood_control_retries_after(fake: FakeTelegram, outbound: TelegramOutbound) -> None:
    fake.fail("sendMessage", 429, "Too Many Requests: retry after 7", retry_after=7)
    result = await outbound.execute(command(text="hi"))
    assert result.status is OutboundStatus.RETRY
    assert result.retry_after == 7.0
    again = await outbound.execute(command(text="hi"))
    assert again.status is OutboundStatus.SENT
    assert len(fake.sent) == 1


async def test_bad_request_fails(fake: FakeTelegram, outbound: TelegramOutbound) -> None:
    fake.fail("sendMessage", 400, "Bad Request: chat not found")
    result = await outbound.execute(command(text="hi"))
    assert result.status is OutboundStatus.FAILED
    assert "chat not found" in (result.detail or "").lower()
    assert result.meta == {}


async def test_server_down_is_retry(tmp_path: Path) -> None:
    fake = FakeTelegram()
    await fake.start()
    base = fake.base_url
    await fake.close()  # nothing listens there any more
    executor = TelegramOutbound(
        {"shop": TelegramBotSettings(name="shop", token=TOKEN, base_url=base)}
    )
    try:
        result = await executor.execute(command(text="hi"))
    finally:
        await executor.aclose()
    assert result.status is OutboundStatus.RETRY
    assert "network error" in (result.detail or "")


@pytest.mark.parametrize(
    ("payload", "detail"),
    [
        ({"bot": "other", "text": "x"}, "unknown bot 'other'"),
        ({"text": ""}, "nothing to send"),
        ({"chat_id": None, "text": "x"}, "chat_id must be"),
        ({"text": "x", "files": "a.pdf"}, "files must be a list"),
        ({"text": "x", "files": ["/nonexistent/file.pdf"]}, "no such file"),
        ({"text": "x" * 5000}, "longer than 4096"),
    ],
)
async def test_bad_payloads_fail_without_sending(
    fake: FakeTelegram, outbound: TelegramOutbound, payload: dict[str, Any], detail: str
) -> None:
    result = await outbound.execute(command(**payload))
    assert result.status is OutboundStatus.FAILED
    assert detail in (result.detail or "")
    assert fake.sent == []


async def test_an_unanswered_send_is_not_sent_twice(fake: FakeTelegram) -> None:
    """Telegram delivered but its answer never came (read timeout): the Bot API has no
    idempotency key, so the command fails with a clear reason instead of a retry that
    would deliver the message twice."""
    bots = {
        "shop": TelegramBotSettings(
            name="shop", token=TOKEN, base_url=fake.base_url, request_timeout_seconds=0.3
        )
    }
    out = TelegramOutbound(bots)
    await out.execute(command(text="warm-up"))  # getMe; the stall below is sendMessage's
    fake.stall("sendMessage", 1.0)
    try:
        result = await out.execute(command(text="Добрый день!"))
    finally:
        await out.aclose()
    assert result.status is OutboundStatus.FAILED
    assert "may have been delivered" in (result.detail or "")
    assert [m["text"] for m in fake.sent] == ["warm-up", "Добрый день!"]
