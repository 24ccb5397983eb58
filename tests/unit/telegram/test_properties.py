"""Property tests (issue 10 item 18): any Telegram update, recorded fixtures with hostile
mutations included, gives an event or a NormalizeError naming the field, never another
exception."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.telegram.normalize import normalize_update
from crm_core.events import NormalizeError
from tests.support.hostile import assert_event_ok, hostile_values, mutated_tree

FIXTURES = [
    json.loads(p.read_text(encoding="utf-8"))
    for p in sorted((Path(__file__).parents[2] / "fixtures" / "telegram").glob("*.json"))
]
NOW = datetime(2026, 3, 2, 9, 15, tzinfo=UTC)
PROPS = settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
KEYS = ["update_id", "message", "edited_message", "business_message", "callback_query",
        "my_chat_member", "from", "chat", "date", "text", "caption", "contact", "photo",
        "document", "edit_date", "is_bot", "id", "type", "message_id", "phone_number",
        "user_id", "reply_to_message", "forward_origin", "sticker", "location"]  # fmt: skip


def check(data: Any) -> None:
    try:
        event = normalize_update(data, bot_name="shop", received_at=NOW)
    except NormalizeError as exc:
        assert exc.field, f"NormalizeError without a field: {exc}"
        return
    assert_event_ok(event)


@PROPS
@given(mutated_tree(FIXTURES, extra_keys=KEYS))
def test_mutated_fixtures(data: Any) -> None:
    check(data)


@PROPS
@given(
    st.sampled_from(["message", "edited_message", "business_message", "callback_query",
                     "my_chat_member", "edited_business_message", "poll"]),
    hostile_values(),
    st.integers(),
)  # fmt: skip
def test_any_update_body(kind: str, body: Any, update_id: int) -> None:
    check({"update_id": update_id, kind: body})


@PROPS
@given(hostile_values())
def test_any_json_value(data: Any) -> None:
    check(data)
