"""PTB ``Bot`` objects per configured bot, created and initialized lazily (one per name)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from telegram import Bot
from telegram.request import HTTPXRequest

from connectors.telegram.config import TelegramBotSettings

__all__ = ["BotPool", "make_bot"]


def make_bot(settings: TelegramBotSettings) -> Bot:
    """A Bot talking to ``settings.base_url`` (a local Bot API server or a test fake)."""
    t = settings.request_timeout_seconds
    return Bot(
        settings.token,
        base_url=settings.api_base_url,
        base_file_url=settings.file_base_url,
        request=HTTPXRequest(connect_timeout=t, read_timeout=t, write_timeout=t, pool_timeout=t),
    )


class BotPool:
    """Initialized bots by name; ``initialize()`` calls getMe once per bot."""

    def __init__(self, bots: Mapping[str, TelegramBotSettings]) -> None:
        self.settings = dict(bots)
        self._bots: dict[str, Bot] = {}
        self._lock = asyncio.Lock()

    def __contains__(self, name: object) -> bool:
        return name in self.settings

    async def get(self, name: str) -> Bot:
        bot = self._bots.get(name)
        if bot is not None:
            return bot
        async with self._lock:
            bot = self._bots.get(name)
            if bot is None:
                bot = make_bot(self.settings[name])
                await bot.initialize()
                self._bots[name] = bot
            return bot

    async def aclose(self) -> None:
        bots, self._bots = list(self._bots.values()), {}
        for bot in bots:
            await bot.shutdown()
