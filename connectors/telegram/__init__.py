"""Telegram connector: bot webhooks and polling, replies through the outbox.

The gateway mounts :func:`telegram_webhook` at ``POST /hooks/telegram/{bot_name}``,
runs a :class:`TelegramPoller` per bot with ``polling = true``, and registers
:class:`TelegramOutbound` with the outbox worker.
"""

from connectors.telegram.bots import BotPool, make_bot
from connectors.telegram.cli import dry_run
from connectors.telegram.config import TelegramBotSettings
from connectors.telegram.connector import (
    SECRET_HEADER,
    build_event,
    submit_update,
    telegram_webhook,
)
from connectors.telegram.media import BotApiMediaFetcher, MediaFetcher
from connectors.telegram.normalize import failed_update_event, normalize_update, parse_update
from connectors.telegram.outbound import TelegramOutbound
from connectors.telegram.poller import TelegramPoller

__all__ = [
    "SECRET_HEADER",
    "BotApiMediaFetcher",
    "BotPool",
    "MediaFetcher",
    "TelegramBotSettings",
    "TelegramOutbound",
    "TelegramPoller",
    "build_event",
    "dry_run",
    "failed_update_event",
    "make_bot",
    "normalize_update",
    "parse_update",
    "submit_update",
    "telegram_webhook",
]
