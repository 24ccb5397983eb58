"""VkOutbound (vk-api in a worker thread) against the fake VK API on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from connectors.vk import VkGroupSettings, VkOutbound, VkSession, random_id_for
from crm_core.ports import OutboundCommand, OutboundStatus
from tests.support.fake_vk import FakeVk

GROUP = 214167102


@pytest.fixture
async def fake() -> AsyncIterator[FakeVk]:
    server = FakeVk(tokens={"group-token"})
    await server.start()
    yield server
    await server.close()


@pytest.fixture
def outbound(fake: FakeVk) -> VkOutbound:
    group = VkGroupSettings(
        group_id=GROUP,
        access_token="group-token",
        confirmation_code="c",
        secret="s",
        api_base_url=fake.api_base_url,
    )
    return VkOutbound({GROUP: group})


def command(attempt: int = 1, **payload: Any) -> OutboundCommand:
    return OutboundCommand(
        id=7,
        channel="vk",
        kind="send_message",
        idempotency_key="reply-7",
        payload={
            "group_id": GROUP,
            "peer_id": 612444319,
            "text": "Добрый день!",
            "random_id": 424242,
            **payload,
        },
        attempt=attempt,
    )


async def test_send(fake: FakeVk, outbound: VkOutbound) -> None:
    result = await outbound.execute(command())
    assert result.status is OutboundStatus.SENT
    assert result.external_id == "501"
    (call,) = fake.calls
    assert call.method == "messages.send"
    assert call.random_id == 424242
    assert call.params["v"] == "5.199"
    assert call.params["peer_id"] == "612444319"
    assert fake.delivered == [
        {
            "id": 501,
            "peer_id": 612444319,
            "text": "Добрый день!",
            "random_id": 424242,
            "attachment": None,
            "v": "5.199",
        }
    ]


@pytest.mark.parametrize("code", [901, 902])
async def test_messages_not_allowed_marks_unreachable(
    fake: FakeVk, outbound: VkOutbound, code: int
) -> None:
    fake.fail(code, "Can't send messages for users without permission")
    result = await outbound.execute(command())
    assert result.status is OutboundStatus.FAILED
    assert result.meta == {"unreachable": "vk:612444319"}
    assert fake.delivered == []


@pytest.mark.parametrize(("code", "retry_after"), [(6, 1.0), (9, 60.0), (10, None)])
async def test_temporary_errors_retry_with_the_same_random_id(
    fake: FakeVk, outbound: VkOutbound, code: int, retry_after: float | None
) -> None:
    fake.fail(code, "temporary")
    first = await outbound.execute(command())
    assert first.status is OutboundStatus.RETRY
    assert first.retry_after == retry_after
    second = await outbound.execute(command(attempt=2))
    assert second.status is OutboundStatus.SENT
    assert [c.random_id for c in fake.calls] == [424242, 424242]
    assert len(fake.delivered) == 1


async def test_retry_after_a_lost_answer_does_not_deliver_twice(
    fake: FakeVk, outbound: VkOutbound
) -> None:
    # The first send reached VK but the worker died before recording it: same random_id again.
    first = await outbound.execute(command())
    second = await outbound.execute(command(attempt=2))
    assert first.status is second.status is OutboundStatus.SENT
    assert first.external_id == second.external_id == "501"
    assert len(fake.calls) == 2
    assert len(fake.delivered) == 1


async def test_http_error_is_retry(fake: FakeVk, outbound: VkOutbound) -> None:
    fake.fail_http(502)
    result = await outbound.execute(command())
    assert result.status is OutboundStatus.RETRY
    assert fake.delivered == []


async def test_other_api_errors_fail(fake: FakeVk, outbound: VkOutbound) -> None:
    fake.fail(100, "One of the parameters specified was missing or invalid")
    result = await outbound.execute(command())
    assert result.status is OutboundStatus.FAILED
    assert result.meta == {}
    assert "VK error 100" in (result.detail or "")


async def test_bad_token_fails(fake: FakeVk) -> None:
    group = VkGroupSettings(
        group_id=GROUP,
        access_token="wrong",
        confirmation_code="c",
        secret="s",
        api_base_url=fake.api_base_url,
    )
    result = await VkOutbound({GROUP: group}).execute(command())
    assert result.status is OutboundStatus.FAILED
    assert "VK error 5" in (result.detail or "")


async def test_server_down_is_retry() -> None:
    fake = FakeVk()
    await fake.start()
    url = fake.api_base_url
    await fake.close()
    group = VkGroupSettings(
        group_id=GROUP, access_token="t", confirmation_code="c", secret="s", api_base_url=url
    )
    result = await VkOutbound({GROUP: group}).execute(command())
    assert result.status is OutboundStatus.RETRY
    assert "network error" in (result.detail or "")


async def test_missing_random_id_is_derived_from_the_idempotency_key(
    fake: FakeVk, outbound: VkOutbound
) -> None:
    result = await outbound.execute(command(random_id=None))
    assert result.status is OutboundStatus.SENT
    assert fake.calls[0].random_id == random_id_for("reply-7")
    assert result.meta["random_id"] == random_id_for("reply-7")


@pytest.mark.parametrize(
    ("payload", "detail"),
    [
        ({"group_id": 1}, "unknown VK group 1"),
        ({"peer_id": "x"}, "peer_id must be"),
        ({"text": " "}, "nothing to send"),
    ],
)
async def test_bad_payloads_fail_without_calling_vk(
    fake: FakeVk, outbound: VkOutbound, payload: dict[str, Any], detail: str
) -> None:
    result = await outbound.execute(command(**payload))
    assert result.status is OutboundStatus.FAILED
    assert detail in (result.detail or "")
    assert fake.calls == []


def test_session_rewrites_only_the_api_prefix() -> None:
    session = VkSession("http://127.0.0.1:9/method")
    assert session.rewrite("https://api.vk.ru/method/messages.send") == (
        "http://127.0.0.1:9/method/messages.send"
    )
    assert session.rewrite("https://api.vk.com/method/users.get") == (
        "http://127.0.0.1:9/method/users.get"
    )
    assert session.rewrite("https://oauth.vk.ru/token") == "https://oauth.vk.ru/token"
    assert VkSession().rewrite("https://api.vk.ru/method/x") == "https://api.vk.ru/method/x"
