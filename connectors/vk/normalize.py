"""VK Callback API body -> :class:`InboundEvent` (pure).

External id: ``"{group_id}:{event_id}"``; bodies without ``event_id`` (old servers)
get ``"{group_id}:sha256:{hash of the body without its secret}"``, stable under
redelivery.  ``confirmation`` gives None (the webhook answers it with the code).
``meta["message_key"]`` is ``"{peer_id}:{conversation_message_id}"`` (unique per
conversation, also in group chats where ``message.id`` is 0), so an edit finds the
interaction of the original message.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from connectors.vk.attachments import message_attachments
from crm_core.events import (
    Channel,
    Classification,
    Direction,
    EventKind,
    InboundEvent,
    NormalizeError,
    check_depth,
)
from crm_core.identity import IdentityError, normalize_email, normalize_phone

__all__ = ["CHAT_PEER_OFFSET", "external_id_of", "failed_callback_event", "normalize_callback"]

CHAT_PEER_OFFSET = 2_000_000_000
_MESSAGE_KINDS = {
    "message_new": EventKind.MESSAGE_RECEIVED,
    "message_reply": EventKind.MESSAGE_SENT,
    "message_edit": EventKind.MESSAGE_EDITED,
}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _as_int(value: Any) -> int | None:
    if _is_int(value):
        return int(value)
    if isinstance(value, str) and value.isascii() and value.lstrip("-").isdigit():
        return int(value)
    return None


def external_id_of(data: Mapping[str, Any], group_id: int) -> str:
    event_id = data.get("event_id")
    if isinstance(event_id, str) and event_id.strip():
        return f"{group_id}:{event_id.strip()}"
    body = {k: v for k, v in data.items() if k != "secret"}
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return f"{group_id}:sha256:{hashlib.sha256(canonical.encode()).hexdigest()[:32]}"


_MAX_TS = 253_402_214_400  # 9999-12-31: datetime's last day


def _ts(value: Any, fallback: datetime | None, field: str = "date") -> datetime:
    if _is_int(value) and value > 0:
        if value >= _MAX_TS:
            raise NormalizeError(f"{field} {value} is not a usable Unix time", field)
        return datetime.fromtimestamp(value, UTC)
    return fallback or datetime.now(UTC)


def normalize_callback(
    data: Any, *, group_id: int, received_at: datetime | None = None
) -> InboundEvent | None:
    if not isinstance(data, Mapping):
        raise NormalizeError(
            f"a VK callback must be a JSON object, got {type(data).__name__}", "body"
        )
    check_depth(data, "body")
    vk_type = data.get("type")
    if not isinstance(vk_type, str) or not vk_type:
        raise NormalizeError("missing or empty 'type'", "type")
    body_group = data.get("group_id")
    if body_group is not None and _as_int(body_group) != group_id:
        raise NormalizeError(f"group_id {body_group!r} does not match {group_id}", "group_id")
    if vk_type == "confirmation":
        return None
    base = _Base(data, group_id, vk_type, received_at)
    obj = data.get("object")
    if vk_type in _MESSAGE_KINDS:
        return _message(base, obj)
    if vk_type == "lead_forms_new":
        return _lead_form(base, obj)
    if vk_type in ("message_allow", "message_deny"):
        return _subscription(base, obj)
    return base.ignored(obj)


def failed_callback_event(
    *, group_id: int, body: bytes, error: NormalizeError, received_at: datetime | None = None
) -> InboundEvent:
    """Stored (as failed, for replay) when a body could not be normalized."""
    return InboundEvent(
        channel=Channel.VK,
        kind=EventKind.IGNORED,
        external_id=f"{group_id}:failed:{hashlib.sha256(body).hexdigest()[:32]}",
        occurred_at=received_at or datetime.now(UTC),
        meta={"parse_error": str(error), "field": error.field, "group_id": group_id},
        raw=body.decode("utf-8", errors="replace"),
        source=str(group_id),
    )


class _Base:
    __slots__ = ("data", "external_id", "group_id", "received_at", "vk_type")

    def __init__(
        self, data: Mapping[str, Any], group_id: int, vk_type: str, received_at: datetime | None
    ) -> None:
        self.data = data
        self.group_id = group_id
        self.vk_type = vk_type
        self.received_at = received_at
        self.external_id = external_id_of(data, group_id)

    def meta(self, **extra: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"group_id": self.group_id, "vk_type": self.vk_type}
        if self.data.get("v") is not None:
            out["api_version"] = str(self.data.get("v"))
        out.update(extra)
        return out

    def event(self, kind: EventKind, **fields: Any) -> InboundEvent:
        fields.setdefault("occurred_at", _ts(None, self.received_at))
        return InboundEvent(
            channel=Channel.VK,
            kind=kind,
            external_id=self.external_id,
            raw=self.data,
            source=str(self.group_id),
            **fields,
        )

    def ignored(self, obj: Any) -> InboundEvent:
        meta = self.meta()
        identities: tuple[str, ...] = ()
        if isinstance(obj, Mapping):
            user_id = _as_int(obj.get("user_id"))
            if user_id is not None and user_id > 0:
                identities = (f"vk:{user_id}",)
                meta["user_id"] = user_id
            if "payload" in obj:
                meta["payload"] = obj.get("payload")
        return self.event(EventKind.IGNORED, identities=identities, meta=meta)


def _require_object(obj: Any) -> Mapping[str, Any]:
    if not isinstance(obj, Mapping):
        raise NormalizeError("'object' must be a JSON object", "object")
    return obj


def _message(base: _Base, obj: Any) -> InboundEvent:
    obj = _require_object(obj)
    nested = isinstance(obj.get("message"), Mapping)
    msg: Mapping[str, Any] = obj["message"] if nested else obj  # API >= 5.103 vs older
    where = "object.message" if nested else "object"
    legacy = "body" in msg or ("user_id" in msg and "from_id" not in msg)  # API < 5.80
    from_id = _as_int(msg.get("from_id", msg.get("user_id")))
    peer_id = _as_int(msg.get("peer_id"))
    if peer_id is None:
        chat_id = _as_int(msg.get("chat_id"))
        peer_id = CHAT_PEER_OFFSET + chat_id if chat_id else from_id
    if from_id is None or peer_id is None:
        raise NormalizeError(f"{where} has no usable from_id/user_id or peer_id", where)
    text = msg.get("text", msg.get("body"))
    if text is not None and not isinstance(text, str):
        raise NormalizeError(f"{where}.text must be a string", f"{where}.text")
    out = base.vk_type == "message_reply" or msg.get("out") == 1
    message_id = _as_int(msg.get("id"))
    cmid = _as_int(msg.get("conversation_message_id"))
    message_key = f"{peer_id}:{cmid}" if cmid is not None else f"{peer_id}:id{message_id}"
    chat_type = "chat" if peer_id >= CHAT_PEER_OFFSET else ("user" if peer_id > 0 else "group")
    meta = base.meta(
        peer_id=peer_id,
        from_id=from_id,
        message_id=message_id,
        conversation_message_id=cmid,
        message_key=message_key,
        chat_type=chat_type,
    )
    if legacy:
        meta["legacy_shape"] = True
    for key in ("payload", "ref", "ref_source", "admin_author_id", "update_time"):
        if msg.get(key) not in (None, ""):
            meta[key] = msg.get(key)
    if isinstance(msg.get("reply_message"), Mapping):
        meta["reply_to"] = msg["reply_message"].get("conversation_message_id")
    if isinstance(msg.get("fwd_messages"), list) and msg["fwd_messages"]:
        meta["forwarded_count"] = len(msg["fwd_messages"])
    attachments, other = message_attachments(msg.get("attachments"))
    if other:
        meta["other_attachments"] = other
    if out:
        client = peer_id if 0 < peer_id < CHAT_PEER_OFFSET else None
    else:
        client = from_id if from_id > 0 else None
    when = msg.get("update_time") if base.vk_type == "message_edit" else None
    return base.event(
        _MESSAGE_KINDS[base.vk_type],
        occurred_at=_ts(
            when or msg.get("date"),
            base.received_at,
            f"{where}.update_time" if when else f"{where}.date",
        ),
        identities=(f"vk:{client}",) if client is not None else (),
        text=text or None,
        thread_refs=(f"vk-peer:{base.group_id}:{peer_id}",),
        attachments=tuple(attachments),
        meta=meta,
        direction=Direction.OUTBOUND if out else Direction.INBOUND,
    )


def _answer_text(value: Any) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, list):
        return ", ".join(_answer_text(v) for v in value)
    if isinstance(value, Mapping):
        return ", ".join(_answer_text(v) for v in value.values())
    return "" if value is None else str(value)


def _lead_form(base: _Base, obj: Any) -> InboundEvent:
    obj = _require_object(obj)
    user_id = _as_int(obj.get("user_id"))
    raw_answers = obj.get("answers")
    if not isinstance(raw_answers, list):
        raise NormalizeError("object.answers must be a list", "object.answers")
    answers: list[dict[str, Any]] = []
    by_key: dict[str, str] = {}
    for item in raw_answers:
        if not isinstance(item, Mapping):
            continue
        key = str(item.get("key") or "")
        value = _answer_text(item.get("answer"))
        answers.append({"key": key, "question": item.get("question"), "answer": value})
        by_key.setdefault(key, value)
    identities = [f"vk:{user_id}"] if user_id is not None and user_id > 0 else []
    errors: list[str] = []
    for item in answers:
        key, value = item["key"].lower(), item["answer"]
        if not value:
            continue
        try:
            if "phone" in key:
                identities.append(normalize_phone(value).identity)
            elif "email" in key:
                identities.append(f"email:{normalize_email(value)}")
        except IdentityError as exc:
            errors.append(f"{item['key']}: {exc}")
    name = " ".join(
        by_key[k] for k in ("first_name", "patronymic", "last_name") if by_key.get(k)
    ) or by_key.get("name")
    meta = base.meta(
        form_id=obj.get("form_id"),
        form_name=obj.get("form_name"),
        lead_id=obj.get("lead_id"),
        user_id=user_id,
        answers=answers,
    )
    for key in ("ad_id", "site_id"):
        if obj.get(key) is not None:
            meta[key] = obj.get(key)
    if errors:
        meta["identity_errors"] = errors
    has_contact = any(i.startswith(("phone:", "email:")) for i in identities)
    return base.event(
        EventKind.LEAD_FORM_SUBMITTED,
        identities=tuple(identities),
        display_name=name or None,
        subject=str(obj.get("form_name") or "") or None,
        text="\n".join(f"{a['question'] or a['key']}: {a['answer']}" for a in answers) or None,
        meta=meta,
        classification=Classification.REGULAR if has_contact else Classification.NEEDS_REVIEW,
    )


def _subscription(base: _Base, obj: Any) -> InboundEvent:
    obj = _require_object(obj)
    user_id = _as_int(obj.get("user_id"))
    if user_id is None or user_id <= 0:
        raise NormalizeError("object.user_id must be a positive integer", "object.user_id")
    meta = base.meta(allowed=base.vk_type == "message_allow", user_id=user_id)
    if obj.get("key"):
        meta["key"] = obj.get("key")
    return base.event(
        EventKind.SUBSCRIPTION_CHANGED,
        identities=(f"vk:{user_id}",),
        thread_refs=(f"vk-peer:{base.group_id}:{user_id}",),
        meta=meta,
    )
