"""Connectors wired into the application: webhooks, push connectors, outbound executors."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web
from sqlalchemy import select

from connectors.asterisk import AsteriskConnector, AsteriskOutbound
from connectors.email import ImapMailbox, SmtpOutbound
from connectors.telegram import (
    BotApiMediaFetcher,
    TelegramOutbound,
    TelegramPoller,
    telegram_webhook,
)
from connectors.vk import VkOutbound, vk_callback
from connectors.webforms import FormSpec, WebformLimits, form_webhook
from crm_core.models import Form
from crm_core.outbox import OutboxWorker
from crm_core.ports import (
    Ingest,
    OutboundCommand,
    OutboundExecutor,
    OutboundResult,
    OutboundStatus,
)
from crm_core.state import DbStateStore
from gateway.api.keys import DB
from gateway.keys import HEALTH, LIVE, METRICS, SETTINGS
from gateway.leader import run_as_leader

__all__ = ["OUTBOX", "DbFormRegistry", "setup_background", "setup_hooks", "stop_connectors"]

log = structlog.get_logger("crmhub.wiring")
OUTBOX = web.AppKey("outbox", OutboxWorker)
PUSH_TASKS = web.AppKey("push_tasks", list[asyncio.Task[None]])
MEDIA = web.AppKey("telegram_media", BotApiMediaFetcher)


class DbFormRegistry:
    """Forms by key from the database, cached briefly (webhooks are hot paths)."""

    def __init__(self, app: web.Application, ttl: float = 10.0) -> None:
        self.app = app
        self.ttl = ttl
        self._cache: dict[str, tuple[float, FormSpec | None]] = {}

    async def get(self, key: str) -> FormSpec | None:
        hit = self._cache.get(key)
        now = time.monotonic()
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        async with self.app[DB].sessions() as s:
            row = await s.scalar(select(Form).where(Form.key == key))
        spec = None
        if row is not None:
            extra: dict[str, Any] = {}
            if row.honeypot_fields:
                extra["honeypot_fields"] = tuple(row.honeypot_fields)
            try:
                spec = FormSpec(
                    key=row.key,
                    name=row.name,
                    secret=row.secret,
                    aliases=dict(row.aliases or {}),
                    active=row.active,
                    **extra,
                )
            except ValueError as exc:  # a bad alias must not take the form down
                log.error("form_aliases_invalid", form=row.key, error=str(exc))
                spec = FormSpec(key=row.key, name=row.name, secret=row.secret, active=row.active)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (now, spec)
        return spec


def setup_hooks(app: web.Application, ingest: Ingest) -> None:
    settings = app[SETTINGS]

    def spam(key: str) -> None:
        app[METRICS].form_spam.labels(key).inc()

    limits = WebformLimits(
        max_body_bytes=settings.webforms.max_body_bytes,
        rate_per_minute=settings.webforms.rate_per_minute,
        trust_forwarded=settings.webforms.trust_forwarded,
    )
    handler = form_webhook(DbFormRegistry(app), ingest, limits=limits, on_spam=spam)
    app.router.add_route("*", "/hooks/forms/{form_key}", handler)
    if settings.telegram:
        bots = {b.name: b for b in settings.telegram}
        media = BotApiMediaFetcher(bots)
        app[MEDIA] = media
        app.router.add_post(
            "/hooks/telegram/{bot_name}", telegram_webhook(bots, ingest, media=media)
        )
    if settings.vk:
        groups = {g.group_id: g for g in settings.vk}
        app.router.add_post("/hooks/vk/{group_id}", vk_callback(groups, ingest))


class MultiPbxOutbound:
    """Click-to-call through the PBX named in the command (the first one by default)."""

    channel = "call"

    def __init__(self, by_name: dict[str, AsteriskOutbound]) -> None:
        self.by_name = by_name
        self.default = next(iter(by_name.values()))

    async def execute(self, command: OutboundCommand) -> OutboundResult:
        name = command.payload.get("pbx")
        ex = self.by_name.get(str(name)) if name else self.default
        if ex is None:
            return OutboundResult(OutboundStatus.FAILED, detail=f"no PBX named {name!r}")
        return await ex.execute(command)


def _build_channels(
    app: web.Application, ingest: Ingest
) -> tuple[dict[str, OutboundExecutor], list[tuple[str, Callable[[], Awaitable[None]], Any]]]:
    """Outbound executors by channel, and (lock name, run, health) per push connector."""
    settings = app[SETTINGS]
    health = app[HEALTH]
    db = app[DB]
    executors: dict[str, OutboundExecutor] = {}
    push: list[tuple[str, Callable[[], Awaitable[None]], Any]] = []
    pbx: dict[str, AsteriskOutbound] = {}
    for pbx_settings in settings.asterisk:
        h = health.register(pbx_settings.name, "call")
        conn = AsteriskConnector(pbx_settings, ingest, h, state=DbStateStore(db))
        pbx[pbx_settings.name] = AsteriskOutbound(conn, pbx_settings)
        push.append((f"asterisk:{pbx_settings.name}", conn.run, h))
    if pbx:
        executors["call"] = MultiPbxOutbound(pbx)
    state = DbStateStore(db)
    for box in settings.imap:
        h = health.register(box.name, "email")
        mailbox = ImapMailbox(box, ingest, state, h)
        push.append((f"imap:{box.name}", mailbox.run, h))
    if settings.smtp is not None:
        sent_box = next((b for b in settings.imap if b.sent_folder), None)
        executors["email"] = SmtpOutbound(settings.smtp, sent_box)
    if settings.telegram:
        executors["telegram"] = TelegramOutbound({b.name: b for b in settings.telegram})
        for bot in settings.telegram:
            if bot.polling:
                poller = TelegramPoller(bot, ingest, health, media=app.get(MEDIA))
                push.append((f"telegram:{bot.name}", poller.run, poller.health))
    if settings.vk:
        executors["vk"] = VkOutbound({g.group_id: g for g in settings.vk})
    return executors, push


async def _channels(app: web.Application) -> AsyncIterator[None]:
    """The outbox worker and every push connector (each elected in one process)."""
    from gateway.app import ingest_for

    settings = app[SETTINGS]
    metrics = app[METRICS]
    executors, push = _build_channels(app, ingest_for(app))
    worker = OutboxWorker(
        app[DB],
        executors,
        app[LIVE],
        poll_interval=settings.poll_interval,
        on_result=lambda ch, st: metrics.outbox.labels(ch, st).inc(),
    )
    app[OUTBOX] = worker
    tasks: list[asyncio.Task[None]] = []
    app[PUSH_TASKS] = tasks
    if settings.run_workers:
        worker.start()
        for name, run, health in push:
            tasks.append(asyncio.create_task(run_as_leader(app[DB], name, run, health), name=name))
    yield
    await stop_connectors(app)
    await worker.stop()
    for ex in executors.values():
        close = getattr(ex, "aclose", None)
        if close is not None:
            with contextlib.suppress(Exception):
                await close()
    if MEDIA in app:
        with contextlib.suppress(Exception):
            await app[MEDIA].aclose()


async def stop_connectors(app: web.Application) -> int:
    """Stop the push connectors (AMI links, IMAP IDLE, Telegram polling): nothing new
    comes in after this.  Idempotent; the first step of a graceful shutdown."""
    tasks = app.get(PUSH_TASKS) or []
    for t in tasks:
        t.cancel()
    for t in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await t
    n = len(tasks)
    tasks.clear()
    return n


def setup_background(app: web.Application) -> None:
    """Push connectors and the outbox worker (after the hub in cleanup order)."""
    app.cleanup_ctx.append(_channels)
