"""Polling mode (``getUpdates``) for installations without a public URL.

Same path as the webhook (:func:`submit_update`).  The offset moves past an update
only once ingest returned, so an update that could not be stored is fetched again
(the inbox deduplicates on the external id).  ``getUpdates`` is called through
``do_api_request`` to get raw dicts: one update PTB cannot parse must not stall the
whole batch; it is stored as a failed event like on the webhook.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import warnings
from collections.abc import Sequence
from typing import Any

from telegram import Bot
from telegram.error import Conflict, Forbidden, InvalidToken, RetryAfter, TelegramError

from connectors.telegram.bots import make_bot
from connectors.telegram.config import TelegramBotSettings
from connectors.telegram.connector import submit_update
from connectors.telegram.media import MediaFetcher
from crm_core.ports import (
    ConnectorHealth,
    ConnectorState,
    HealthRegistry,
    Ingest,
    IngestUnavailable,
)

__all__ = ["TelegramPoller"]

log = logging.getLogger(__name__)


def _retry_after_seconds(exc: RetryAfter) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value: Any = exc.retry_after
    return float(value.total_seconds() if hasattr(value, "total_seconds") else value)


class TelegramPoller:
    def __init__(
        self,
        settings: TelegramBotSettings,
        ingest: Ingest,
        health: HealthRegistry,
        *,
        media: MediaFetcher | None = None,
        bot: Bot | None = None,
        poll_timeout: int = 25,
        min_backoff: float = 1.0,
        max_backoff: float = 60.0,
        allowed_updates: Sequence[str] | None = None,
        delete_webhook: bool = True,
    ) -> None:
        self.settings = settings
        self.ingest = ingest
        self.media = media
        self.health: ConnectorHealth = health.register(settings.name, "telegram")
        self.bot = bot or make_bot(settings)
        self.poll_timeout = poll_timeout
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.allowed_updates = list(allowed_updates) if allowed_updates is not None else None
        self.delete_webhook = delete_webhook
        self.offset: int | None = None
        self.processed = 0
        self._stop = asyncio.Event()
        self._failures = 0

    def stop(self) -> None:
        self._stop.set()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)

    def _backoff(self) -> float:
        self._failures += 1
        return min(self.max_backoff, self.min_backoff * 2 ** (self._failures - 1))

    async def run(self) -> None:
        """Poll until :meth:`stop` (or cancellation); never raises on link errors."""
        self.health.set(ConnectorState.STARTING)
        try:
            while not self._stop.is_set():
                try:
                    await self._start()
                    break
                except (InvalidToken, Forbidden) as exc:
                    self.health.set(ConnectorState.AUTH_FAILED, str(exc))
                    await self._sleep(self.max_backoff)
                except TelegramError as exc:
                    self.health.set(ConnectorState.RECONNECTING, str(exc))
                    await self._sleep(self._backoff())
            while not self._stop.is_set():
                await self._poll_once()
        finally:
            with contextlib.suppress(Exception):
                await self.bot.shutdown()
            self.health.set(ConnectorState.DOWN, "stopped")

    async def _start(self) -> None:
        await self.bot.initialize()
        if self.delete_webhook:
            await self.bot.delete_webhook(drop_pending_updates=False)

    async def _poll_once(self) -> None:
        kwargs: dict[str, Any] = {"timeout": self.poll_timeout}
        if self.offset is not None:
            kwargs["offset"] = self.offset
        if self.allowed_updates is not None:
            kwargs["allowed_updates"] = self.allowed_updates
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "use Bot.get_updates": we want raw dicts
                result = await self.bot.do_api_request(
                    "getUpdates", api_kwargs=kwargs, read_timeout=self.poll_timeout + 10
                )
        except RetryAfter as exc:
            self.health.set(ConnectorState.RECONNECTING, str(exc))
            await self._sleep(_retry_after_seconds(exc))
            return
        except (InvalidToken, Forbidden) as exc:
            self.health.set(ConnectorState.AUTH_FAILED, str(exc))
            await self._sleep(self.max_backoff)
            return
        except Conflict as exc:  # a webhook is set, or another process polls this bot
            self.health.set(ConnectorState.RECONNECTING, f"conflict: {exc}")
            await self._sleep(self._backoff())
            return
        except TelegramError as exc:
            self.health.set(ConnectorState.RECONNECTING, str(exc))
            await self._sleep(self._backoff())
            return
        self.health.set(ConnectorState.CONNECTED)
        self._failures = 0
        updates = result if isinstance(result, list) else []
        for item in updates:
            if self._stop.is_set():
                return
            body = json.dumps(item, ensure_ascii=False).encode()
            try:
                await submit_update(self.settings.name, item, body, self.ingest, media=self.media)
            except IngestUnavailable as exc:
                self.health.set(ConnectorState.RECONNECTING, f"ingest unavailable: {exc}")
                await self._sleep(self._backoff())
                return  # same offset: the update comes again
            update_id = item.get("update_id") if isinstance(item, dict) else None
            if isinstance(update_id, int) and not isinstance(update_id, bool):
                self.offset = max(self.offset or 0, update_id + 1)
            self.processed += 1
