"""The central event type every channel produces (DESIGN.md, "Central types").

Connectors build an :class:`InboundEvent` in a pure ``normalize`` step; the ingest
pipeline persists it, matches it, assigns it and logs it.  The JSON shape printed by
``crmhub ingest`` is :meth:`InboundEvent.to_json`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

__all__ = [
    "MAX_PAYLOAD_DEPTH",
    "Attachment",
    "Channel",
    "Classification",
    "Direction",
    "EventKind",
    "InboundEvent",
    "NormalizeError",
    "check_depth",
]


class Channel(StrEnum):
    CALL = "call"
    EMAIL = "email"
    WEBFORM = "webform"
    TELEGRAM = "telegram"
    VK = "vk"


class EventKind(StrEnum):
    CALL_STARTED = "call_started"
    CALL_ANSWERED = "call_answered"
    CALL_MISSED = "call_missed"
    CALL_ENDED = "call_ended"
    # After each AMI login: the PBX's live calls; calls crmhub saw start that are gone
    # (ended while it was down or disconnected) are closed by the pipeline.
    CALLS_RECONCILED = "calls_reconciled"
    EMAIL_RECEIVED = "email_received"
    EMAIL_SENT = "email_sent"  # a manager's own mail program sent it (From is ours)
    MESSAGE_RECEIVED = "message_received"
    MESSAGE_EDITED = "message_edited"
    MESSAGE_SENT = "message_sent"  # outbound written outside the CRM (business owner, VK UI)
    CALLBACK_QUERY = "callback_query"
    FORM_SUBMITTED = "form_submitted"
    LEAD_FORM_SUBMITTED = "lead_form_submitted"  # VK lead forms
    SUBSCRIPTION_CHANGED = "subscription_changed"  # message_allow / message_deny
    IGNORED = "ignored"  # understood, recorded for audit, creates nothing


class Direction(StrEnum):
    INBOUND = "in"
    OUTBOUND = "out"


class Classification(StrEnum):
    REGULAR = "regular"
    AUTO_REPLY = "auto_reply"
    BOUNCE = "bounce"
    BULK = "bulk"
    SPAM = "spam"  # e.g. a filled honeypot
    NEEDS_REVIEW = "needs_review"  # accepted, but no usable phone or email


class NormalizeError(ValueError):
    """A payload that cannot be understood.  ``field`` names what is wrong."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field

    def to_json(self) -> dict[str, Any]:
        return {"error": str(self), "field": self.field}


MAX_PAYLOAD_DEPTH = 128  # real payloads nest about 10 levels


def check_depth(data: Any, field: str = "body", limit: int = MAX_PAYLOAD_DEPTH) -> None:
    """:class:`NormalizeError` if a JSON tree nests deeper than ``limit`` (checked without
    recursion), so nothing recursive downstream (serializing ``raw``) can overflow."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, Mapping):
            children: Any = node.values()
        elif isinstance(node, list | tuple):
            children = node
        else:
            continue
        if depth > limit:
            raise NormalizeError(f"{field}: nested deeper than {limit} levels", field)
        stack.extend((child, depth + 1) for child in children)


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    content_type: str
    size: int
    sha256: str = ""
    content_id: str | None = None  # inline images (cid:)
    inline: bool = False
    content: bytes | None = field(default=None, repr=False, compare=False)
    url: str | None = None  # where the channel serves it (Telegram file_id, recording URL)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "filename": self.filename,
            "content_type": self.content_type,
            "size": self.size,
        }
        if self.sha256:
            out["sha256"] = self.sha256
        if self.content_id:
            out["content_id"] = self.content_id
        if self.inline:
            out["inline"] = True
        if self.url:
            out["url"] = self.url
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Attachment:
        return cls(
            filename=str(data.get("filename") or ""),
            content_type=str(data.get("content_type") or "application/octet-stream"),
            size=int(data.get("size") or 0),
            sha256=str(data.get("sha256") or ""),
            content_id=data.get("content_id"),
            inline=bool(data.get("inline", False)),
            url=data.get("url"),
        )


def _utc(dt: datetime) -> datetime:
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class InboundEvent:
    """One thing that happened on a channel, normalized.

    ``external_id`` is the sender's own id (AMI Linkedid, Message-ID, Telegram
    ``update_id``, VK ``event_id``, Tilda ``tranid`` ...), already scoped where the
    sender's ids are not unique on their own (``bot:update_id``).  Together with
    ``channel`` it is unique in the inbox: a second delivery changes nothing.

    ``identities`` are normalized contact points, ``kind:value``:
    ``phone:+79165551234``, ``email:ivan@example.ru``, ``telegram:123456``, ``vk:987``.
    """

    channel: Channel
    kind: EventKind
    external_id: str
    occurred_at: datetime
    identities: tuple[str, ...] = ()
    display_name: str | None = None
    subject: str | None = None
    text: str | None = None
    html: str | None = None  # sanitized (nh3) before it gets here
    thread_refs: tuple[str, ...] = ()
    attachments: tuple[Attachment, ...] = ()
    meta: Mapping[str, Any] = field(default_factory=dict)
    raw: Any = None
    classification: Classification = Classification.REGULAR
    direction: Direction = Direction.INBOUND
    source: str | None = None  # form key, mailbox, bot, PBX name

    def __post_init__(self) -> None:
        if not self.external_id:
            raise NormalizeError("external_id is empty", "external_id")
        object.__setattr__(self, "occurred_at", _utc(self.occurred_at))
        object.__setattr__(self, "identities", tuple(dict.fromkeys(self.identities)))
        object.__setattr__(self, "thread_refs", tuple(self.thread_refs))
        object.__setattr__(self, "attachments", tuple(self.attachments))

    def identities_of(self, kind: str) -> list[str]:
        prefix = kind + ":"
        return [i[len(prefix) :] for i in self.identities if i.startswith(prefix)]

    @property
    def phones(self) -> list[str]:
        return self.identities_of("phone")

    @property
    def emails(self) -> list[str]:
        return self.identities_of("email")

    def to_json(self, *, with_raw: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "channel": self.channel.value,
            "kind": self.kind.value,
            "external_id": self.external_id,
            "occurred_at": self.occurred_at.isoformat(),
            "direction": self.direction.value,
            "source": self.source,
            "identities": list(self.identities),
            "display_name": self.display_name,
            "subject": self.subject,
            "text": self.text,
            "html": self.html,
            "thread_refs": list(self.thread_refs),
            "attachments": [a.to_json() for a in self.attachments],
            "meta": _jsonable(dict(self.meta)),
            "classification": self.classification.value,
        }
        if with_raw:
            out["raw"] = _jsonable(self.raw)
        return out

    def dumps(self, *, with_raw: bool = False) -> str:
        return json.dumps(self.to_json(with_raw=with_raw), ensure_ascii=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> InboundEvent:
        """Rebuild an event from :meth:`to_json` output (``crmhub rules explain``, replay)."""
        try:
            channel = Channel(data["channel"])
            kind = EventKind(data["kind"])
        except KeyError as exc:
            raise NormalizeError(f"missing field {exc.args[0]!r}", str(exc.args[0])) from None
        except ValueError as exc:
            raise NormalizeError(str(exc), "channel/kind") from None
        occurred = data.get("occurred_at")
        try:
            occurred_at = (
                datetime.fromisoformat(occurred) if isinstance(occurred, str) else datetime.now(UTC)
            )
        except ValueError:
            raise NormalizeError(
                f"occurred_at is not ISO 8601: {occurred!r}", "occurred_at"
            ) from None
        ids = data.get("identities") or []
        if not isinstance(ids, Sequence) or isinstance(ids, str):
            raise NormalizeError("identities must be a list", "identities")
        return cls(
            channel=channel,
            kind=kind,
            external_id=str(data.get("external_id") or ""),
            occurred_at=occurred_at,
            identities=tuple(str(i) for i in ids),
            display_name=data.get("display_name"),
            subject=data.get("subject"),
            text=data.get("text"),
            html=data.get("html"),
            thread_refs=tuple(data.get("thread_refs") or ()),
            attachments=tuple(Attachment.from_json(a) for a in data.get("attachments") or ()),
            meta=dict(data.get("meta") or {}),
            raw=data.get("raw"),
            classification=Classification(data.get("classification") or "regular"),
            direction=Direction(data.get("direction") or "in"),
            source=data.get("source"),
        )
