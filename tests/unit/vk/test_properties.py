"""Property tests (issue 10 item 18): any VK Callback body, recorded fixtures with hostile
mutations included, gives an event (or None for ``confirmation``) or a NormalizeError
naming the field, never another exception."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.vk.connector import build_callback_event
from connectors.vk.normalize import normalize_callback
from crm_core.events import NormalizeError
from tests.support.hostile import assert_event_ok, hostile_values, mutated_tree

FIXTURES = [
    json.loads(p.read_text(encoding="utf-8"))
    for p in sorted((Path(__file__).parents[2] / "fixtures" / "vk").glob("*.json"))
]
NOW = datetime(2026, 3, 2, 9, 15, tzinfo=UTC)
PROPS = settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
KEYS = ["type", "object", "message", "group_id", "event_id", "v", "from_id", "peer_id",
        "text", "date", "attachments", "answers", "user_id", "payload", "update_time",
        "conversation_message_id", "fwd_messages", "reply_message", "out", "chat_id"]  # fmt: skip


def _group(data: Any) -> int:
    raw = data.get("group_id") if isinstance(data, dict) else None
    return raw if isinstance(raw, int) and not isinstance(raw, bool) and raw > 0 else 1


def check(data: Any, group_id: int) -> None:
    try:
        event = normalize_callback(data, group_id=group_id, received_at=NOW)
    except NormalizeError as exc:
        assert exc.field, f"NormalizeError without a field: {exc}"
        return
    if event is None:
        assert data["type"] == "confirmation"
        return
    assert_event_ok(event)
    body = json.dumps(data).encode()
    assert build_callback_event(group_id, data, body) is not None


@PROPS
@given(mutated_tree(FIXTURES, extra_keys=KEYS))
def test_mutated_fixtures(data: Any) -> None:
    check(data, _group(data))


@PROPS
@given(
    st.sampled_from(["message_new", "message_reply", "message_edit", "lead_forms_new",
                     "message_allow", "message_deny", "group_join", "confirmation", ""]),
    hostile_values(),
    st.integers(min_value=1, max_value=2**40),
)  # fmt: skip
def test_any_object(vk_type: str, obj: Any, group_id: int) -> None:
    check({"type": vk_type, "object": obj, "group_id": group_id}, group_id)


@PROPS
@given(hostile_values())
def test_any_json_value(data: Any) -> None:
    check(data, 1)
