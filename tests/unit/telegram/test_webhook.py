"""The Telegram webhook handler through the aiohttp test client, with a recording ingest."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from connectors.telegram import SECRET_HEADER, TelegramBotSettings, telegram_webhook
from crm_core.events import EventKind
from tests.support.fake_telegram import RecordingIngest

FIXTURES = Path(__file__).parents[2] / "fixtures" / "telegram"
SECRET = "s3cr3t-Token_1"
ClientFactory = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]

BOTS = {
    "shop": TelegramBotSettings(name="shop", token="1:AAA", webhook_secret=SECRET),
    "nosecret": TelegramBotSettings(name="nosecret", token="2:BBB"),
}


@pytest.fixture
def ingest() -> RecordingIngest:
    return RecordingIngest()


@pytest.fixture
async def client(aiohttp_client: ClientFactory, ingest: RecordingIngest) -> TestClient[Any, Any]:
    app = web.Application()
    app.router.add_post("/hooks/telegram/{bot_name}", telegram_webhook(BOTS, ingest))
    return await aiohttp_client(app)


def body_of(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


async def post(
    client: TestClient[Any, Any], body: bytes, *, bot: str = "shop", secret: str | None = SECRET
) -> Any:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers[SECRET_HEADER] = secret
    return await client.post(f"/hooks/telegram/{bot}", data=body, headers=headers)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("06_real_message_text_en.json", EventKind.MESSAGE_RECEIVED),
        ("07_real_callback_query.json", EventKind.CALLBACK_QUERY),
        ("10_real_message_contact_share.json", EventKind.MESSAGE_RECEIVED),
        ("13_rasa_edited_message.json", EventKind.MESSAGE_EDITED),
        ("17_spec_business_message_outgoing_by_owner.json", EventKind.MESSAGE_SENT),
        ("19_spec_deleted_business_messages.json", EventKind.IGNORED),
    ],
)
async def test_accepted_update_is_ingested(
    client: TestClient[Any, Any], ingest: RecordingIngest, name: str, kind: EventKind
) -> None:
    resp = await post(client, body_of(name))
    assert resp.status == 200
    assert await resp.json() == {"ok": True, "duplicate": False}
    assert [e.kind for e in ingest.events] == [kind]
    assert ingest.events[0].source == "shop"


async def test_duplicate_delivery_keeps_the_external_id(
    client: TestClient[Any, Any], ingest: RecordingIngest
) -> None:
    body = body_of("06_real_message_text_en.json")
    first = await post(client, body)
    second = await post(client, body)
    assert (first.status, second.status) == (200, 200)
    assert (await second.json())["duplicate"] is True
    assert ingest.calls == 2
    assert [e.external_id for e in ingest.events] == ["shop:841266257"]


@pytest.mark.parametrize("secret", [None, "", "wrong", SECRET + "x", SECRET[:-1]])
async def test_wrong_secret_is_403(
    client: TestClient[Any, Any], ingest: RecordingIngest, secret: str | None
) -> None:
    resp = await post(client, body_of("06_real_message_text_en.json"), secret=secret)
    assert resp.status == 403
    assert ingest.calls == 0


async def test_bot_without_secret_refuses_webhooks(
    client: TestClient[Any, Any], ingest: RecordingIngest
) -> None:
    resp = await post(client, body_of("06_real_message_text_en.json"), bot="nosecret", secret="")
    assert resp.status == 403
    assert ingest.calls == 0


async def test_unknown_bot_is_404(client: TestClient[Any, Any]) -> None:
    resp = await post(client, body_of("06_real_message_text_en.json"), bot="other")
    assert resp.status == 404
    assert (await resp.json())["field"] == "bot_name"


@pytest.mark.parametrize("body", [b"{not json", b"", "\u00ff".encode("latin-1")])
async def test_body_not_json_is_400(
    client: TestClient[Any, Any], ingest: RecordingIngest, body: bytes
) -> None:
    resp = await post(client, body)
    assert resp.status == 400
    assert (await resp.json())["field"] == "body"
    assert ingest.calls == 0


@pytest.mark.parametrize(
    "name",
    ["01_docs_message_text_start.json", "05_docs_callback_query_inline.json"],
)
async def test_unparseable_update_is_stored_as_failed_and_answered_200(
    client: TestClient[Any, Any], ingest: RecordingIngest, name: str
) -> None:
    body = body_of(name)
    resp = await post(client, body)
    assert resp.status == 200
    (event,) = ingest.events
    assert event.kind is EventKind.IGNORED
    assert event.external_id == f"shop:failed:{hashlib.sha256(body).hexdigest()[:32]}"
    assert "is_bot" in event.meta["parse_error"]
    assert event.raw == body.decode()
    # Telegram retrying the same body does not store it twice
    await post(client, body)
    assert len(ingest.events) == 1


async def test_json_that_is_not_an_update_is_stored_as_failed(
    client: TestClient[Any, Any], ingest: RecordingIngest
) -> None:
    resp = await post(client, json.dumps([1, 2]).encode())
    assert resp.status == 200
    assert ingest.events[0].meta["field"] == "update"


async def test_ingest_unavailable_is_503(
    client: TestClient[Any, Any], ingest: RecordingIngest
) -> None:
    ingest.unavailable = True
    resp = await post(client, body_of("06_real_message_text_en.json"))
    assert resp.status == 503 and resp.headers["Retry-After"] == "5"
    ingest.unavailable = False
    resp = await post(client, body_of("06_real_message_text_en.json"))
    assert resp.status == 200
    assert len(ingest.events) == 1
