"""Telegram ``Update`` JSON -> :class:`InboundEvent`.  Pure: no I/O, no clock unless asked.

External ids (unique per channel+kind in the inbox, stable under redelivery):

* a new message, callback query, anything else: ``"{bot}:{update_id}"``;
* an edit: ``"{bot}:{chat_id}:{message_id}:{edit_date}"`` (a second edit is a new event,
  a redelivery of the same edit is not); ``meta["message_key"] = "{chat_id}:{message_id}"``
  is on new and edited messages alike so the core updates the interaction in place;
* an update that cannot be parsed: ``"{bot}:failed:{sha256(body)[:32]}"``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from telegram import CallbackQuery, ChatMemberUpdated, Message, Update, User

from connectors.telegram.attachments import message_attachments
from connectors.telegram.deeplink import parse_start_payload
from crm_core.events import (
    Channel,
    Direction,
    EventKind,
    InboundEvent,
    NormalizeError,
    check_depth,
)
from crm_core.identity import IdentityError, normalize_phone

__all__ = ["failed_update_event", "normalize_update", "parse_update"]

_MISSING_ARG_RE = re.compile(r"argument[s]?: '(\w+)'")
# (update field, edited, business)
_MESSAGE_KINDS = (
    ("message", False, False),
    ("edited_message", True, False),
    ("business_message", False, True),
    ("edited_business_message", True, True),
)


def parse_update(data: Any) -> Update:
    """``Update.de_json`` offline (bot=None), with every failure as :class:`NormalizeError`."""
    if not isinstance(data, Mapping):
        raise NormalizeError(
            f"a Telegram update must be a JSON object, got {type(data).__name__}", "update"
        )
    check_depth(data, "update")
    update_id = data.get("update_id")
    if not isinstance(update_id, int) or isinstance(update_id, bool):
        raise NormalizeError(f"update_id must be an integer, got {update_id!r}", "update_id")
    try:
        update = Update.de_json(dict(data), None)
    except Exception as exc:  # PTB raises TypeError/KeyError/ValueError/AttributeError...
        m = _MISSING_ARG_RE.search(str(exc))
        # PTB does not say where a wrong type was: name the update's part at least.
        field = m.group(1) if m else _update_kind(data)
        if isinstance(exc, KeyError) and exc.args:
            field = str(exc.args[0])
        raise NormalizeError(
            f"Telegram update {update_id} cannot be parsed: {type(exc).__name__}: {exc}", field
        ) from None
    if update is None:  # pragma: no cover - de_json returns None only for None input
        raise NormalizeError("empty Telegram update", "update")
    return update


def _update_kind(data: Mapping[str, Any]) -> str:
    kinds = [str(k) for k in data if k != "update_id"]
    return kinds[0] if kinds else "update"


def _check(ok: bool, where: str, what: str) -> None:
    if not ok:
        raise NormalizeError(f"{where}: {what}", where)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _opt_str(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _check_user(user: User | None, where: str) -> None:
    if user is None:
        return
    _check(_is_int(user.id), f"{where}.id", "must be an integer")
    for name in ("first_name", "last_name", "username", "language_code"):
        _check(_opt_str(getattr(user, name)), f"{where}.{name}", "must be a string")


def _check_message(msg: Message, where: str, *, edited: bool) -> None:
    """What PTB does not check and the event needs (it accepts any JSON type)."""
    _check(_is_int(msg.message_id), f"{where}.message_id", "must be an integer")
    _check(isinstance(msg.date, datetime), f"{where}.date", "must be a Unix time")
    if edited:
        ok = msg.edit_date is None or isinstance(msg.edit_date, datetime)
        _check(ok, f"{where}.edit_date", "must be a Unix time")
    chat = msg.chat
    _check(chat is not None and _is_int(chat.id), f"{where}.chat.id", "must be an integer")
    for name in ("title", "first_name", "last_name", "username"):
        _check(_opt_str(getattr(chat, name)), f"{where}.chat.{name}", "must be a string")
    _check_user(msg.from_user, f"{where}.from")
    for name in ("text", "caption", "media_group_id", "business_connection_id"):
        _check(_opt_str(getattr(msg, name)), f"{where}.{name}", "must be a string")
    if msg.contact is not None:
        c = msg.contact
        _check(isinstance(c.phone_number, str), f"{where}.contact.phone_number", "not a string")
        _check(c.user_id is None or _is_int(c.user_id), f"{where}.contact.user_id", "not an id")
        for name in ("first_name", "last_name"):
            _check(_opt_str(getattr(c, name)), f"{where}.contact.{name}", "must be a string")


def normalize_update(
    data: Mapping[str, Any], *, bot_name: str, received_at: datetime | None = None
) -> InboundEvent:
    """Turn one webhook body / getUpdates item into an event.

    ``received_at`` is used where the update carries no date (callback queries,
    unknown update types); None means now.
    """
    update = parse_update(data)
    ctx = _Ctx(bot=bot_name, update_id=update.update_id, raw=data, received_at=received_at)
    for where, edited, business in _MESSAGE_KINDS:
        msg = getattr(update, where)
        if msg is not None:
            _check_message(msg, where, edited=edited)
            return _message_event(ctx, msg, edited=edited, business=business, where=where)
    if update.callback_query is not None:
        return _callback_event(ctx, update.callback_query)
    cmu = update.my_chat_member
    if cmu is not None:
        ok = cmu.chat is not None and cmu.new_chat_member is not None
        _check(ok, "my_chat_member", "needs chat and new_chat_member")
        if cmu.chat.type == "private":
            return _subscription_event(ctx, cmu)
    kinds = [k for k in data if k != "update_id"]
    return ctx.ignored(update_type=kinds[0] if kinds else "unknown")


def failed_update_event(
    *, bot_name: str, body: bytes, error: NormalizeError, received_at: datetime | None = None
) -> InboundEvent:
    """The event stored (as failed, for replay) when a body could not be normalized."""
    digest = hashlib.sha256(body).hexdigest()[:32]
    return InboundEvent(
        channel=Channel.TELEGRAM,
        kind=EventKind.IGNORED,
        external_id=f"{bot_name}:failed:{digest}",
        occurred_at=received_at or datetime.now(UTC),
        meta={"parse_error": str(error), "field": error.field, "bot": bot_name},
        raw=body.decode("utf-8", errors="replace"),
        source=bot_name,
    )


class _Ctx:
    __slots__ = ("bot", "raw", "received_at", "update_id")

    def __init__(
        self, *, bot: str, update_id: int, raw: Mapping[str, Any], received_at: datetime | None
    ) -> None:
        self.bot = bot
        self.update_id = update_id
        self.raw = raw
        self.received_at = received_at

    @property
    def update_key(self) -> str:
        return f"{self.bot}:{self.update_id}"

    def now(self) -> datetime:
        return self.received_at or datetime.now(UTC)

    def ignored(self, **meta: Any) -> InboundEvent:
        return InboundEvent(
            channel=Channel.TELEGRAM,
            kind=EventKind.IGNORED,
            external_id=self.update_key,
            occurred_at=self.now(),
            meta={"bot": self.bot, "update_id": self.update_id, **meta},
            raw=self.raw,
            source=self.bot,
        )


def _full_name(first: Any, last: Any) -> str | None:
    name = " ".join(p.strip() for p in (first, last) if isinstance(p, str) and p.strip())
    return name or None


def _user_meta(user: User | None) -> dict[str, Any]:
    if user is None:
        return {}
    out: dict[str, Any] = {"user_id": user.id, "username": user.username}
    if user.is_bot is True:  # some senders write the string "False": not a bot
        out["from_is_bot"] = True
    if user.language_code:
        out["language_code"] = user.language_code
    return out


def _has_content(msg: Message) -> bool:
    return bool(
        msg.text
        or msg.caption
        or msg.contact
        or msg.location
        or msg.venue
        or msg.poll
        or msg.dice
        or message_attachments(msg)
    )


def _message_event(
    ctx: _Ctx, msg: Message, *, edited: bool, business: bool, where: str
) -> InboundEvent:
    chat = msg.chat
    sender = msg.from_user
    # A business message written by the account owner (or a bot acting for them) is ours.
    outgoing = business and (
        msg.sender_business_bot is not None
        or (chat.type == "private" and sender is not None and sender.id != chat.id)
    )
    message_key = f"{chat.id}:{msg.message_id}"
    meta: dict[str, Any] = {
        "bot": ctx.bot,
        "update_id": ctx.update_id,
        "chat_id": chat.id,
        "chat_type": str(chat.type),
        "message_id": msg.message_id,
        "message_key": message_key,
    }
    if not _has_content(msg):
        return ctx.ignored(**meta, reason="service message without content")
    if outgoing:
        # The client is the other side of the private chat.
        identities = [f"telegram:{chat.id}"]
        display_name = _full_name(chat.first_name, chat.last_name)
        meta["username"] = chat.username
        meta["owner"] = _user_meta(sender)
    else:
        identities = [f"telegram:{sender.id}"] if sender is not None else []
        display_name = _full_name(sender.first_name, sender.last_name) if sender else None
        if display_name is None and sender is None:
            display_name = chat.title or _full_name(chat.first_name, chat.last_name)
        meta.update(_user_meta(sender) if sender else {"username": chat.username})
    if business:
        meta["business_connection_id"] = msg.business_connection_id
    if msg.reply_to_message is not None:
        meta["reply_to_message_id"] = msg.reply_to_message.message_id
    if msg.forward_origin is not None:
        meta["forwarded"] = {"type": msg.forward_origin.type, "date": msg.forward_origin.date}
    if msg.media_group_id:
        meta["media_group_id"] = msg.media_group_id
    if msg.location is not None:
        meta["location"] = {"latitude": msg.location.latitude, "longitude": msg.location.longitude}
    text = msg.text or msg.caption
    if text and not edited:
        meta.update(_start_meta(text))
    if msg.contact is not None:
        shared, phone = _shared_contact(msg, sender)
        meta["shared_contact"] = shared
        if phone:
            identities.append(f"phone:{phone}")
    if edited:
        kind = EventKind.MESSAGE_EDITED
        edit_part = str(int(msg.edit_date.timestamp())) if msg.edit_date else f"u{ctx.update_id}"
        external_id = f"{ctx.bot}:{message_key}:{edit_part}"
        meta["edit_date"] = msg.edit_date
        occurred_at = msg.edit_date or msg.date
    else:
        kind = EventKind.MESSAGE_SENT if outgoing else EventKind.MESSAGE_RECEIVED
        external_id = ctx.update_key
        occurred_at = msg.date
    return InboundEvent(
        channel=Channel.TELEGRAM,
        kind=kind,
        external_id=external_id,
        occurred_at=occurred_at,
        identities=tuple(identities),
        display_name=display_name,
        text=text,
        thread_refs=(f"tg-chat:{ctx.bot}:{chat.id}",),
        attachments=tuple(message_attachments(msg)),
        meta=meta,
        raw=ctx.raw,
        direction=Direction.OUTBOUND if outgoing else Direction.INBOUND,
        source=ctx.bot,
    )


def _start_meta(text: str) -> dict[str, Any]:
    parts = text.strip().split(maxsplit=1)
    if not parts or not (parts[0] == "/start" or parts[0].startswith("/start@")):
        return {}
    payload = parts[1].strip() if len(parts) > 1 else ""
    out: dict[str, Any] = {"command": "start"}
    if payload:
        out["start_payload"] = payload
        out.update(parse_start_payload(payload))
    return out


def _shared_contact(msg: Message, sender: User | None) -> tuple[dict[str, Any], str | None]:
    contact = msg.contact
    assert contact is not None
    shared: dict[str, Any] = {
        "phone": None,
        "user_id": contact.user_id,
        "display_name": _full_name(contact.first_name, contact.last_name),
        "own": bool(sender is not None and contact.user_id == sender.id),
    }
    try:
        shared["phone"] = normalize_phone(contact.phone_number).e164
    except IdentityError as exc:
        shared["phone_raw"] = contact.phone_number
        shared["error"] = str(exc)
    # Only the sender's own number (Telegram's request_contact button) identifies them.
    phone = shared["phone"] if shared["own"] else None
    return shared, phone


def _callback_event(ctx: _Ctx, cq: CallbackQuery) -> InboundEvent:
    user = cq.from_user
    _check(user is not None, "callback_query.from", "is missing")
    _check_user(user, "callback_query.from")
    for name in ("id", "data", "game_short_name", "inline_message_id", "chat_instance"):
        _check(_opt_str(getattr(cq, name)), f"callback_query.{name}", "must be a string")
    if cq.message is not None:
        chat = cq.message.chat
        ok = chat is not None and _is_int(chat.id) and _is_int(cq.message.message_id)
        _check(ok, "callback_query.message", "needs an integer chat.id and message_id")
    meta: dict[str, Any] = {
        "bot": ctx.bot,
        "update_id": ctx.update_id,
        "callback_query_id": cq.id,
        "callback_data": cq.data,
        "chat_instance": cq.chat_instance,
        **_user_meta(user),
    }
    thread_refs: tuple[str, ...] = ()
    if cq.message is not None:
        meta["chat_id"] = cq.message.chat.id
        meta["chat_type"] = str(cq.message.chat.type)
        meta["message_id"] = cq.message.message_id
        meta["message_key"] = f"{cq.message.chat.id}:{cq.message.message_id}"
        thread_refs = (f"tg-chat:{ctx.bot}:{cq.message.chat.id}",)
    if cq.inline_message_id:
        meta["inline_message_id"] = cq.inline_message_id
    return InboundEvent(
        channel=Channel.TELEGRAM,
        kind=EventKind.CALLBACK_QUERY,
        external_id=ctx.update_key,
        occurred_at=ctx.now(),
        identities=(f"telegram:{user.id}",),
        display_name=_full_name(user.first_name, user.last_name),
        text=cq.data or cq.game_short_name,
        thread_refs=thread_refs,
        meta=meta,
        raw=ctx.raw,
        source=ctx.bot,
    )


def _subscription_event(ctx: _Ctx, cmu: ChatMemberUpdated) -> InboundEvent:
    """The user blocked (``kicked``) or (re)started the bot in a private chat."""
    status = cmu.new_chat_member.status
    if status not in ("kicked", "member"):
        return ctx.ignored(update_type="my_chat_member", status=str(status))
    user = cmu.from_user
    _check(user is not None, "my_chat_member.from", "is missing")
    _check_user(user, "my_chat_member.from")
    _check(isinstance(cmu.date, datetime), "my_chat_member.date", "must be a Unix time")
    _check(_is_int(cmu.chat.id), "my_chat_member.chat.id", "must be an integer")
    return InboundEvent(
        channel=Channel.TELEGRAM,
        kind=EventKind.SUBSCRIPTION_CHANGED,
        external_id=ctx.update_key,
        occurred_at=cmu.date,
        identities=(f"telegram:{user.id}",),
        display_name=_full_name(user.first_name, user.last_name),
        thread_refs=(f"tg-chat:{ctx.bot}:{cmu.chat.id}",),
        meta={
            "bot": ctx.bot,
            "update_id": ctx.update_id,
            "chat_id": cmu.chat.id,
            "allowed": status == "member",
            "status": status,
            **_user_meta(user),
        },
        raw=ctx.raw,
        source=ctx.bot,
    )
