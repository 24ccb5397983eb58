"""Download the files of a message via ``getFile`` before ingest (optional, bounded)."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from collections.abc import Mapping
from typing import Any, Protocol

from telegram.error import TelegramError

from connectors.telegram.attachments import file_id_of
from connectors.telegram.bots import BotPool
from connectors.telegram.config import TelegramBotSettings
from crm_core.events import Attachment, InboundEvent

__all__ = ["BotApiMediaFetcher", "MediaFetcher"]


class MediaFetcher(Protocol):
    async def fetch(self, bot_name: str, event: InboundEvent) -> InboundEvent: ...


class BotApiMediaFetcher:
    """Fills ``Attachment.content`` for ``tg-file:`` attachments.

    Files above ``max_bytes`` (the Bot API serves at most 20 MB), beyond
    ``max_total_bytes`` per event, or that fail to download within ``timeout``
    keep their metadata only; the reason goes to ``meta["media_errors"]``.
    """

    def __init__(
        self,
        bots: Mapping[str, TelegramBotSettings] | BotPool,
        *,
        max_bytes: int = 20 * 1024 * 1024,
        max_total_bytes: int = 50 * 1024 * 1024,
        timeout: float = 20.0,
    ) -> None:
        self.pool = bots if isinstance(bots, BotPool) else BotPool(bots)
        self.max_bytes = max_bytes
        self.max_total_bytes = max_total_bytes
        self.timeout = timeout

    async def aclose(self) -> None:
        await self.pool.aclose()

    async def fetch(self, bot_name: str, event: InboundEvent) -> InboundEvent:
        if bot_name not in self.pool or not any(file_id_of(a) for a in event.attachments):
            return event
        limit = min(self.max_bytes, self.pool.settings[bot_name].media_max_bytes)
        budget = self.max_total_bytes
        errors: list[dict[str, Any]] = []
        out: list[Attachment] = []
        for att in event.attachments:
            file_id = file_id_of(att)
            if file_id is None or att.content is not None:
                out.append(att)
                continue
            if att.size > min(limit, budget):
                errors.append({"file": att.filename, "error": f"too large ({att.size} bytes)"})
                out.append(att)
                continue
            try:
                data = await asyncio.wait_for(
                    self._download(bot_name, file_id, limit), self.timeout
                )
            except (TelegramError, OSError, TimeoutError, ValueError) as exc:
                errors.append({"file": att.filename, "error": f"{type(exc).__name__}: {exc}"})
                out.append(att)
                continue
            if len(data) > budget:
                errors.append({"file": att.filename, "error": "over the per-event budget"})
                out.append(att)
                continue
            budget -= len(data)
            out.append(
                dataclasses.replace(
                    att,
                    content=data,
                    size=len(data),
                    sha256=hashlib.sha256(data).hexdigest(),
                )
            )
        meta = dict(event.meta)
        if errors:
            meta["media_errors"] = errors
        return dataclasses.replace(event, attachments=tuple(out), meta=meta)

    async def _download(self, bot_name: str, file_id: str, limit: int) -> bytes:
        bot = await self.pool.get(bot_name)
        tg_file = await bot.get_file(file_id)
        if tg_file.file_size is not None and tg_file.file_size > limit:
            raise ValueError(f"too large ({tg_file.file_size} bytes)")
        data = bytes(await tg_file.download_as_bytearray())
        if len(data) > limit:
            raise ValueError(f"too large ({len(data)} bytes)")
        return data
