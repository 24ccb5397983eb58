"""The VK Callback API handler through the aiohttp test client, with a recording ingest."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from connectors.vk import VkGroupSettings, vk_callback
from crm_core.events import EventKind
from tests.support.fake_vk import RecordingIngest

FIXTURES = Path(__file__).parents[2] / "fixtures" / "vk"
ClientFactory = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]

GROUPS = {
    123456: VkGroupSettings(
        group_id=123456, access_token="t1", confirmation_code="a1b2c3d4", secret="secret_123456"
    ),
    214167102: VkGroupSettings(
        group_id=214167102, access_token="t2", confirmation_code="zz", secret="callback-secret"
    ),
    202308925: VkGroupSettings(
        group_id=202308925, access_token="t3", confirmation_code="c3", secret="legacy-secret"
    ),
}


@pytest.fixture
def ingest() -> RecordingIngest:
    return RecordingIngest()


@pytest.fixture
async def client(aiohttp_client: ClientFactory, ingest: RecordingIngest) -> TestClient[Any, Any]:
    app = web.Application()
    app.router.add_post("/hooks/vk/{group_id}", vk_callback(GROUPS, ingest))
    return await aiohttp_client(app)


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return data


async def post(client: TestClient[Any, Any], group: int | str, body: bytes | dict[str, Any]) -> Any:
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    return await client.post(f"/hooks/vk/{group}", data=data)


async def test_confirmation_answers_the_bare_code(
    client: TestClient[Any, Any], ingest: RecordingIngest
) -> None:
    resp = await post(client, 123456, load("01_confirmation.json"))
    assert resp.status == 200
    assert resp.content_type == "text/plain"
    assert await resp.text() == "a1b2c3d4"
    assert ingest.calls == 0


async def test_confirmation_with_wrong_secret_is_403(client: TestClient[Any, Any]) -> None:
    data = load("01_confirmation.json") | {"secret": "nope"}
    resp = await post(client, 123456, data)
    assert resp.status == 403
    assert await resp.text() == "bad secret"


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("12_spec_message_event_callback_button.json", EventKind.IGNORED),
        ("13_spec_message_allow.json", EventKind.SUBSCRIPTION_CHANGED),
        ("14_spec_message_deny.json", EventKind.SUBSCRIPTION_CHANGED),
        ("15_spec_group_leave.json", EventKind.IGNORED),
    ],
)
async def test_events_are_answered_ok(
    client: TestClient[Any, Any], ingest: RecordingIngest, name: str, kind: EventKind
) -> None:
    resp = await post(client, 214167102, load(name))
    assert resp.status == 200
    assert await resp.text() == "ok"
    assert [e.kind for e in ingest.events] == [kind]


async def test_legacy_shape_is_accepted(
    client: TestClient[Any, Any], ingest: RecordingIngest
) -> None:
    body = load("06_message_new_legacy_api_lt_5_80.json") | {"secret": "legacy-secret"}
    resp = await post(client, 202308925, body)
    assert (resp.status, await resp.text()) == (200, "ok")
    assert ingest.events[0].text == "Ну как?"


@pytest.mark.parametrize("secret", [None, "", "callback-secre", "callback-secret2", 42])
async def test_wrong_secret_is_403(
    client: TestClient[Any, Any], ingest: RecordingIngest, secret: Any
) -> None:
    data = load("13_spec_message_allow.json")
    data.pop("secret")
    if secret is not None:
        data["secret"] = secret
    resp = await post(client, 214167102, data)
    assert resp.status == 403
    assert ingest.calls == 0


@pytest.mark.parametrize("group", ["999", "abc", "-1"])
async def test_unknown_group_is_404(client: TestClient[Any, Any], group: str) -> None:
    resp = await post(client, group, load("13_spec_message_allow.json"))
    assert resp.status == 404


async def test_body_not_json_is_400_once_the_secret_matched(
    client: TestClient[Any, Any], ingest: RecordingIngest
) -> None:
    resp = await post(client, 214167102, b'{"secret": "callback-secret", "type": message_new}')
    assert resp.status == 400
    assert "not JSON" in await resp.text()
    assert ingest.calls == 0


@pytest.mark.parametrize(
    "body",
    [
        b"type=message_new",
        b'{"secret": "wrong", "type": message_new',  # not JSON either: the secret comes first
        b'{"object": {"secret": "callback-secret"}, "type": "message_new"}',  # not top level
        b'{"type": "message_new", "text": ""secret": "callback-secret""}',  # in a string
        b'{"secret": "callback-secret", "secret": "callback-secret"}',  # twice: ambiguous
        b'{"secret": ["callback-secret"]}',
        b'["secret", "callback-secret"]',
    ],
)
async def test_secret_is_checked_before_parsing(
    client: TestClient[Any, Any], ingest: RecordingIngest, body: bytes
) -> None:
    resp = await post(client, 214167102, body)
    assert (resp.status, await resp.text()) == (403, "bad secret")
    assert ingest.calls == 0


@pytest.mark.parametrize("secret", ["callback-secret", "wrong"])
@pytest.mark.parametrize("depth", [129, 5_000, 60_000])
async def test_deep_body_is_400_not_500(
    client: TestClient[Any, Any], ingest: RecordingIngest, secret: str, depth: int
) -> None:
    body = b'{"secret": "%s", "type": "message_new", "object": %s1%s}' % (
        secret.encode(),
        b'{"a": [' * (depth // 2),
        b"]}" * (depth // 2),
    )
    resp = await post(client, 214167102, body)
    assert resp.status == 400
    assert "nested deeper than 128" in await resp.text()
    assert ingest.calls == 0


async def test_body_at_the_depth_limit_is_accepted(
    client: TestClient[Any, Any], ingest: RecordingIngest
) -> None:
    data = load("13_spec_message_allow.json")
    nested: Any = 1
    for _ in range(126):
        nested = [nested]
    data["object"]["extra"] = nested  # object (2) + 126 lists = 128 levels
    resp = await post(client, 214167102, data)
    assert (resp.status, await resp.text()) == (200, "ok")
    assert [e.kind for e in ingest.events] == [EventKind.SUBSCRIPTION_CHANGED]


@pytest.mark.parametrize("chunked", [False, True])
async def test_oversized_body_is_413(
    client: TestClient[Any, Any], ingest: RecordingIngest, chunked: bool
) -> None:
    data = load("13_spec_message_allow.json")
    data["object"]["padding"] = "x" * (512 * 1024)
    raw = json.dumps(data).encode()

    async def gen() -> Any:
        for i in range(0, len(raw), 10_000):
            yield raw[i : i + 10_000]

    resp = await client.post("/hooks/vk/214167102", data=gen() if chunked else raw)
    assert resp.status == 413
    assert ingest.calls == 0


async def test_duplicate_delivery_same_external_id(
    client: TestClient[Any, Any], ingest: RecordingIngest
) -> None:
    data = load("13_spec_message_allow.json")
    for _ in range(3):
        resp = await post(client, 214167102, data)
        assert (resp.status, await resp.text()) == (200, "ok")
    assert ingest.calls == 3
    assert [e.external_id for e in ingest.events] == [
        "214167102:1a1b2c3d4e5f60718293a4b5c6d7e8f901234567"
    ]


async def test_unparseable_event_is_stored_as_failed_and_ok(
    client: TestClient[Any, Any], ingest: RecordingIngest
) -> None:
    data = {
        "type": "message_new",
        "object": "broken",
        "group_id": 214167102,
        "secret": "callback-secret",
        "event_id": "e1",
    }
    body = json.dumps(data).encode()
    resp = await post(client, 214167102, body)
    assert (resp.status, await resp.text()) == (200, "ok")
    (event,) = ingest.events
    assert event.kind is EventKind.IGNORED
    assert event.external_id == f"214167102:failed:{hashlib.sha256(body).hexdigest()[:32]}"
    assert event.meta["field"] == "object"
    assert "object" in event.meta["parse_error"]


async def test_group_id_mismatch_is_stored_as_failed(
    client: TestClient[Any, Any], ingest: RecordingIngest
) -> None:
    data = load("13_spec_message_allow.json") | {"group_id": 1}
    resp = await post(client, 214167102, data)
    assert (resp.status, await resp.text()) == (200, "ok")
    assert ingest.events[0].meta["field"] == "group_id"


async def test_ingest_unavailable_is_503(
    client: TestClient[Any, Any], ingest: RecordingIngest
) -> None:
    ingest.unavailable = True
    resp = await post(client, 214167102, load("14_spec_message_deny.json"))
    assert resp.status == 503 and resp.headers["Retry-After"] == "5"
    assert ingest.events == []
