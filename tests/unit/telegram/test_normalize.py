"""Telegram normalize on every recorded payload in tests/fixtures/telegram, plus variants."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from connectors.telegram import dry_run, normalize_update
from crm_core.events import Direction, EventKind, NormalizeError

FIXTURES = Path(__file__).parents[2] / "fixtures" / "telegram"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return data


# file, kind, external id (bot "shop"), identities, direction, meta subset
CASES: list[tuple[str, EventKind, str, list[str], Direction, dict[str, Any]]] = [
    (
        "06_real_message_text_en.json",
        EventKind.MESSAGE_RECEIVED,
        "shop:841266257",
        ["telegram:234140659"],
        Direction.INBOUND,
        {
            "username": "zhmurko",
            "chat_id": 234140659,
            "chat_type": "private",
            "message_id": 698,
            "message_key": "234140659:698",
            "bot": "shop",
        },
    ),
    (
        "07_real_callback_query.json",
        EventKind.CALLBACK_QUERY,
        "shop:841266275",
        ["telegram:234140659"],
        Direction.INBOUND,
        {"callback_data": "order:Espresso", "chat_id": 234140659, "message_id": 713},
    ),
    (
        "08_real_message_text_ru.json",
        EventKind.MESSAGE_RECEIVED,
        "shop:207882735",
        ["telegram:1005024016"],
        Direction.INBOUND,
        {"username": "defProger", "message_key": "1005024016:4778"},
    ),
    (
        "09_real_callback_query_ru.json",
        EventKind.CALLBACK_QUERY,
        "shop:207882762",
        ["telegram:1005024016"],
        Direction.INBOUND,
        {"callback_data": "street", "callback_query_id": "4316545281924898172"},
    ),
    (
        "10_real_message_contact_share.json",
        EventKind.MESSAGE_RECEIVED,
        "shop:207883434",
        ["telegram:1005024016", "phone:+380931234567"],
        Direction.INBOUND,
        {
            "shared_contact": {
                "phone": "+380931234567",
                "user_id": 1005024016,
                "display_name": "ᴅ3ꜰᴀᴜʟᴛ ᴘʀᴏɢʀᴀᴍᴍᴇʀ",
                "own": True,
            },
            "reply_to_message_id": 5922,
        },
    ),
    (
        "11_real_start_deeplink.json",
        EventKind.MESSAGE_RECEIVED,
        "shop:734997090",
        ["telegram:996202131"],
        Direction.INBOUND,
        {
            "command": "start",
            "start_payload": "YnZiMTIzbWlzY0BnbWFpbC5jb20=",
            "start_payload_decoded": "bvb123misc@gmail.com",
        },
    ),
    (
        "13_rasa_edited_message.json",
        EventKind.MESSAGE_EDITED,
        "shop:1760450482:591:1621580124",
        ["telegram:1760450482"],
        Direction.INBOUND,
        {"message_key": "1760450482:591", "chat_id": 1760450482},
    ),
    (
        "14_pytelegrambotapi_update.json",
        EventKind.MESSAGE_RECEIVED,
        "shop:938203",
        ["telegram:9734"],
        Direction.INBOUND,
        {"chat_id": 1111, "from_is_bot": True, "username": "nir"},
    ),
    (
        "15_spec_business_connection.json",
        EventKind.IGNORED,
        "shop:900000001",
        [],
        Direction.INBOUND,
        {"update_type": "business_connection"},
    ),
    (
        "16_spec_business_message_incoming.json",
        EventKind.MESSAGE_RECEIVED,
        "shop:900000002",
        ["telegram:600000002"],
        Direction.INBOUND,
        {"business_connection_id": "AbCdEf-bizconn-1", "message_key": "600000002:77"},
    ),
    (
        "17_spec_business_message_outgoing_by_owner.json",
        EventKind.MESSAGE_SENT,
        "shop:900000003",
        ["telegram:600000002"],
        Direction.OUTBOUND,
        {
            "business_connection_id": "AbCdEf-bizconn-1",
            "username": "irina_client",
            "owner": {"user_id": 500000001, "username": "shop_owner", "language_code": "ru"},
        },
    ),
    (
        "19_spec_deleted_business_messages.json",
        EventKind.IGNORED,
        "shop:900000005",
        [],
        Direction.INBOUND,
        {"update_type": "deleted_business_messages"},
    ),
    (
        "20_spec_contact_of_other_person.json",
        EventKind.MESSAGE_RECEIVED,
        "shop:900000006",
        ["telegram:600000002"],  # someone else's card: no phone identity
        Direction.INBOUND,
        {
            "shared_contact": {
                "phone": "+79165551234",
                "user_id": None,
                "display_name": "Пётр",
                "own": False,
            }
        },
    ),
]


@pytest.mark.parametrize(
    ("name", "kind", "external_id", "identities", "direction", "meta"),
    CASES,
    ids=[c[0] for c in CASES],
)
def test_fixture(
    name: str,
    kind: EventKind,
    external_id: str,
    identities: list[str],
    direction: Direction,
    meta: dict[str, Any],
) -> None:
    data = load(name)
    event = normalize_update(data, bot_name="shop")
    assert event.kind is kind
    assert event.external_id == external_id
    assert list(event.identities) == identities
    assert event.direction is direction
    assert event.source == "shop"
    assert event.raw == data
    for key, value in meta.items():
        assert event.meta[key] == value, key
    # a redelivery gives the same key
    again = normalize_update(copy.deepcopy(data), bot_name="shop")
    assert (again.kind, again.external_id) == (event.kind, event.external_id)
    json.dumps(event.to_json(), ensure_ascii=False)  # JSON-able


def test_every_fixture_is_covered() -> None:
    covered = {c[0] for c in CASES} | {c for c in DOCS_EXAMPLES}
    assert covered == {p.name for p in FIXTURES.glob("*.json")}


DOCS_EXAMPLES = [
    "01_docs_message_text_start.json",
    "02_docs_forwarded_message.json",
    "03_docs_edited_message.json",
    "05_docs_callback_query_inline.json",
]


@pytest.mark.parametrize("name", DOCS_EXAMPLES)
def test_docs_examples_lacking_is_bot_are_normalize_errors(name: str) -> None:
    with pytest.raises(NormalizeError) as info:
        normalize_update(load(name), bot_name="shop")
    assert info.value.field == "is_bot"
    assert "update 10000 cannot be parsed" in str(info.value)


def test_display_name_and_text() -> None:
    event = normalize_update(load("08_real_message_text_ru.json"), bot_name="b")
    assert event.display_name == "ᴅ3ꜰᴀᴜʟᴛ ᴘʀᴏɢʀᴀᴍᴍᴇʀ"
    assert event.text == "asdasd"
    assert event.thread_refs == ("tg-chat:b:1005024016",)
    assert event.occurred_at.isoformat() == "2021-10-29T10:05:47+00:00"


def test_second_edit_is_a_new_event_same_message_key() -> None:
    first = load("13_rasa_edited_message.json")
    second = copy.deepcopy(first)
    second["update_id"] += 1
    second["edited_message"]["edit_date"] += 60
    second["edited_message"]["text"] = "Hello again"
    a = normalize_update(first, bot_name="b")
    b = normalize_update(second, bot_name="b")
    assert a.external_id != b.external_id
    assert a.meta["message_key"] == b.meta["message_key"] == "1760450482:591"
    assert b.text == "Hello again"


def _message(text: str | None = None, **extra: Any) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "message_id": 5,
        "from": {"id": 77, "is_bot": False, "first_name": "Anna", "last_name": "K"},
        "chat": {"id": 77, "type": "private", "first_name": "Anna"},
        "date": 1717000000,
        **extra,
    }
    if text is not None:
        msg["text"] = text
    return {"update_id": 1, "message": msg}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "/start utm_source-vk__utm_medium-cpc",
            {"utm": {"utm_source": "vk", "utm_medium": "cpc"}},
        ),
        (
            "/start utm_source=ya&utm_campaign=spring",
            {"utm": {"utm_source": "ya", "utm_campaign": "spring"}},
        ),
        ("/start deal-123", {"deal_ref": "123"}),
        (
            "/start@fake_crm_bot deal_55__utm_source-tg",
            {"deal_ref": "55", "utm": {"utm_source": "tg"}},
        ),
        ("/start", {"command": "start"}),
    ],
)
def test_start_deep_links(text: str, expected: dict[str, Any]) -> None:
    event = normalize_update(_message(text), bot_name="b")
    assert event.kind is EventKind.MESSAGE_RECEIVED
    assert event.meta["command"] == "start"
    for key, value in expected.items():
        assert event.meta[key] == value


def test_plain_text_has_no_start_meta() -> None:
    event = normalize_update(_message("start deal-123"), bot_name="b")
    assert "start_payload" not in event.meta and "deal_ref" not in event.meta


def test_photo_and_document_attachments() -> None:
    photo = _message(
        caption="see",
        photo=[
            {
                "file_id": "small",
                "file_unique_id": "us",
                "width": 90,
                "height": 90,
                "file_size": 1000,
            },
            {
                "file_id": "big",
                "file_unique_id": "ub",
                "width": 1280,
                "height": 960,
                "file_size": 90000,
            },
        ],
    )
    event = normalize_update(photo, bot_name="b")
    assert event.text == "see"
    assert [(a.filename, a.content_type, a.size, a.url) for a in event.attachments] == [
        ("photo_ub.jpg", "image/jpeg", 90000, "tg-file:big")
    ]
    doc = _message(
        document={
            "file_id": "D1",
            "file_unique_id": "uD1",
            "file_name": "price.pdf",
            "mime_type": "application/pdf",
            "file_size": 12345,
        }
    )
    event = normalize_update(doc, bot_name="b")
    assert event.kind is EventKind.MESSAGE_RECEIVED
    assert [(a.filename, a.content_type, a.size, a.url) for a in event.attachments] == [
        ("price.pdf", "application/pdf", 12345, "tg-file:D1")
    ]


def test_voice_gets_a_generated_name() -> None:
    event = normalize_update(
        _message(voice={"file_id": "V", "file_unique_id": "uV", "duration": 3}), bot_name="b"
    )
    assert [(a.filename, a.content_type, a.size) for a in event.attachments] == [
        ("voice_uV.ogg", "audio/ogg", 0)
    ]


def test_service_message_is_ignored() -> None:
    event = normalize_update(_message(new_chat_title="Sales"), bot_name="b")
    assert event.kind is EventKind.IGNORED
    assert event.external_id == "b:1"


def test_invalid_shared_phone_is_kept_apart() -> None:
    data = _message(contact={"phone_number": "12", "first_name": "Anna", "user_id": 77})
    event = normalize_update(data, bot_name="b")
    assert event.identities == ("telegram:77",)
    assert event.meta["shared_contact"]["phone"] is None
    assert event.meta["shared_contact"]["phone_raw"] == "12"


def test_contact_of_the_sender_without_plus() -> None:
    data = _message(contact={"phone_number": "79165551234", "first_name": "Anna", "user_id": 77})
    event = normalize_update(data, bot_name="b")
    assert event.identities == ("telegram:77", "phone:+79165551234")


@pytest.mark.parametrize(("status", "allowed"), [("kicked", False), ("member", True)])
def test_bot_blocked_or_restarted(status: str, allowed: bool) -> None:
    user = {"id": 77, "is_bot": False, "first_name": "Anna"}
    data = {
        "update_id": 9,
        "my_chat_member": {
            "chat": {"id": 77, "type": "private", "first_name": "Anna"},
            "from": user,
            "date": 1717000000,
            "old_chat_member": {"status": "member", "user": BOT},
            "new_chat_member": (
                {"status": "kicked", "user": BOT, "until_date": 0}
                if status == "kicked"
                else {"status": "member", "user": BOT}
            ),
        },
    }
    event = normalize_update(data, bot_name="b")
    assert event.kind is EventKind.SUBSCRIPTION_CHANGED
    assert event.meta["allowed"] is allowed
    assert event.identities == ("telegram:77",)


BOT = {"id": 4242, "is_bot": True, "first_name": "Fake"}
MSG = {"message_id": 1, "date": 1772000000, "chat": {"id": 1, "type": "private"}, "text": "hi"}


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ([1, 2], "update"),
        ({"message": {}}, "update_id"),
        ({"update_id": "7"}, "update_id"),
        ({"update_id": 7, "message": {"message_id": 1}}, "date"),
        ({"update_id": 7, "message": "text"}, "message"),
        # Found by the property tests (tests/unit/telegram/test_properties.py): PTB accepts
        # any JSON type, and these raised TypeError/AttributeError/ValueError.
        ({"update_id": 7, "message": {**MSG, "chat": {"id": "x", "type": "private"}}},
         "message.chat.id"),
        ({"update_id": 7, "message": {**MSG, "text": True}}, "message.text"),
        ({"update_id": 7, "message": {**MSG, "date": 253402300800}}, "message"),
        ({"update_id": 7, "edited_message": {**MSG, "date": None}}, "edited_message.date"),
        ({"update_id": 7, "message": {**MSG, "from": {"id": 5, "is_bot": False,
                                                      "first_name": True}}},
         "message.from.first_name"),
        ({"update_id": 7, "callback_query": {"id": "1", "chat_instance": "1", "from": None}},
         "callback_query.from"),
    ],
)  # fmt: skip
def test_bad_payloads_raise_normalize_error(data: Any, field: str | None) -> None:
    with pytest.raises(NormalizeError) as info:
        normalize_update(data, bot_name="b")
    assert info.value.field == field


def test_unknown_update_type_is_ignored() -> None:
    event = normalize_update({"update_id": 3, "future_thing": {"id": "x"}}, bot_name="b")
    assert event.kind is EventKind.IGNORED
    assert event.meta["update_type"] == "future_thing"
    assert event.external_id == "b:3"


def test_dry_run(tmp_path: Path) -> None:
    out = dry_run(FIXTURES / "17_spec_business_message_outgoing_by_owner.json")
    assert out["kind"] == "message_sent"
    assert out["direction"] == "out"
    assert out["external_id"] == "bot:900000003"
    bad = tmp_path / "bad.json"
    bad.write_text("{nope", encoding="utf-8")
    with pytest.raises(NormalizeError, match="is not JSON"):
        dry_run(bad)
    with pytest.raises(NormalizeError, match="is_bot"):
        dry_run(FIXTURES / "01_docs_message_text_start.json")


def test_update_nested_too_deep_is_a_normalize_error() -> None:
    deep: Any = 1
    for _ in range(200):
        deep = {"a": deep}
    with pytest.raises(NormalizeError) as info:
        normalize_update({"update_id": 1, "message": {**MSG, "x": deep}}, bot_name="b")
    assert info.value.field == "update"
