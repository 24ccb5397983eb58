"""Replies through a bot: ``sendMessage`` / ``sendDocument`` (an ``OutboundExecutor``).

Payload: ``{"bot": name, "chat_id": int|str, "text": str, "files": [paths],
"reply_to_message_id": int, "business_connection_id": str}`` (the last one answers a
business chat on behalf of the business account).  Error mapping: 403 ``Forbidden`` (bot blocked) ->
FAILED with ``meta["unreachable"] = "telegram:<chat_id>"``; ``RetryAfter`` (429) ->
RETRY with ``retry_after``; network errors before Telegram got the request -> RETRY;
no answer after it got it (read timeout, dropped connection) -> FAILED, not retried
(it may have been delivered, and the Bot API has no idempotency key); ``BadRequest`` and
anything else from Telegram -> FAILED.

With files, the text goes as the caption of the first file when it fits (1024
characters) so that one command is one Telegram message wherever possible;
Telegram has no idempotency key, so a retry after a partial success may repeat
what was already delivered (reported in ``detail``).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
from telegram import Bot, Message
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)

from connectors.telegram.bots import BotPool
from connectors.telegram.config import TelegramBotSettings
from crm_core.ports import OutboundCommand, OutboundResult, OutboundStatus

__all__ = ["TelegramOutbound"]

CAPTION_LIMIT = 1024
TEXT_LIMIT = 4096


_ANSWER_LOST = (httpx.ReadTimeout, httpx.ReadError, httpx.RemoteProtocolError)


def _maybe_delivered(exc: BaseException) -> bool:
    """The request reached Telegram but its answer did not come back (a read timeout, a
    connection dropped while reading): Telegram has no idempotency key, so a retry could
    deliver the message twice.  Connect, write and pool errors are safe to retry."""
    return isinstance(
        exc.__cause__, httpx.ReadTimeout | httpx.ReadError | httpx.RemoteProtocolError
    )


def _failed(detail: str, **meta: Any) -> OutboundResult:
    return OutboundResult(status=OutboundStatus.FAILED, detail=detail, meta=meta)


class _BadPayload(ValueError):
    pass


def _chat_id(payload: Mapping[str, Any]) -> int | str:
    chat_id = payload.get("chat_id")
    if isinstance(chat_id, bool) or not isinstance(chat_id, int | str) or chat_id == "":
        raise _BadPayload(f"chat_id must be an integer or @channel name, got {chat_id!r}")
    if isinstance(chat_id, str) and chat_id.isascii() and chat_id.lstrip("-").isdigit():
        return int(chat_id)
    return chat_id


class TelegramOutbound:
    channel = "telegram"

    def __init__(self, bots: Mapping[str, TelegramBotSettings] | BotPool) -> None:
        self.pool = bots if isinstance(bots, BotPool) else BotPool(bots)

    async def aclose(self) -> None:
        await self.pool.aclose()

    async def execute(self, command: OutboundCommand) -> OutboundResult:
        if command.kind != "send_message":
            return _failed(f"unsupported command kind {command.kind!r}")
        payload = command.payload
        name = payload.get("bot")
        if not isinstance(name, str) or name not in self.pool:
            return _failed(f"unknown bot {name!r}")
        try:
            chat_id = _chat_id(payload)
            text, files, reply_to = self._parse(payload)
        except _BadPayload as exc:
            return _failed(str(exc))
        business = payload.get("business_connection_id")
        if business is not None and not isinstance(business, str):
            return _failed("business_connection_id must be a string")
        sent: list[int] = []
        try:
            bot = await self.pool.get(name)
            await self._send(bot, chat_id, text, files, reply_to, sent, business or None)
        except Forbidden as exc:
            return _failed(f"bot blocked or kicked: {exc}", unreachable=f"telegram:{chat_id}")
        except RetryAfter as exc:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                value: Any = exc.retry_after
            seconds = float(value.total_seconds() if hasattr(value, "total_seconds") else value)
            return OutboundResult(
                status=OutboundStatus.RETRY,
                retry_after=seconds,
                detail=f"flood control: {exc}{self._partial(sent)}",
            )
        except ChatMigrated as exc:
            return _failed(
                f"chat migrated to {exc.new_chat_id}", migrate_to_chat_id=exc.new_chat_id
            )
        except BadRequest as exc:  # before NetworkError: BadRequest is a subclass
            return _failed(f"bad request: {exc}{self._partial(sent)}")
        except InvalidToken as exc:
            return _failed(f"token rejected: {exc}")
        except NetworkError as exc:  # includes TimedOut
            if _maybe_delivered(exc):
                return _failed(
                    f"Telegram did not confirm the send ({exc or type(exc).__name__}); it may "
                    "have been delivered, so it is not sent again: check the chat"
                    f"{self._partial(sent)}"
                )
            return OutboundResult(
                status=OutboundStatus.RETRY,
                detail=f"network error: {exc}{self._partial(sent)}",
            )
        except TelegramError as exc:
            return _failed(f"telegram error: {exc}")
        except OSError as exc:  # a file to send is missing or unreadable
            return _failed(f"cannot read file: {exc}")
        return OutboundResult(
            status=OutboundStatus.SENT,
            external_id=str(sent[0]) if sent else None,
            meta={"message_ids": sent, "chat_id": chat_id},
        )

    @staticmethod
    def _partial(sent: list[int]) -> str:
        return f" (after {len(sent)} message(s) were delivered)" if sent else ""

    @staticmethod
    def _parse(payload: Mapping[str, Any]) -> tuple[str, list[Path], int | None]:
        text = payload.get("text") or ""
        if not isinstance(text, str):
            raise _BadPayload("text must be a string")
        if len(text) > TEXT_LIMIT:
            raise _BadPayload(f"text is longer than {TEXT_LIMIT} characters")
        raw_files = payload.get("files") or []
        if not isinstance(raw_files, list) or not all(isinstance(f, str) for f in raw_files):
            raise _BadPayload("files must be a list of paths")
        if not text.strip() and not raw_files:
            raise _BadPayload("nothing to send: text and files are empty")
        reply_to = payload.get("reply_to_message_id")
        if reply_to is not None and (isinstance(reply_to, bool) or not isinstance(reply_to, int)):
            raise _BadPayload("reply_to_message_id must be an integer")
        return text, [Path(f) for f in raw_files], reply_to

    @staticmethod
    async def _send(
        bot: Bot,
        chat_id: int | str,
        text: str,
        files: list[Path],
        reply_to: int | None,
        sent: list[int],
        business: str | None = None,
    ) -> None:
        for path in files:
            if not path.is_file():
                raise FileNotFoundError(f"no such file: {path}")
        caption: str | None = None
        if text and files and len(text) <= CAPTION_LIMIT:
            caption, text = text, ""
        msg: Message
        if text:
            msg = await bot.send_message(
                chat_id, text, reply_to_message_id=reply_to, business_connection_id=business
            )
            sent.append(msg.message_id)
        for i, path in enumerate(files):
            msg = await bot.send_document(
                chat_id,
                document=path,
                filename=path.name,
                caption=caption if i == 0 else None,
                reply_to_message_id=reply_to if not sent else None,
                business_connection_id=business,
            )
            sent.append(msg.message_id)
