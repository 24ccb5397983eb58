"""The aiohttp application: one ``create_app(settings)`` factory.

Every resource and background task lives in ``cleanup_ctx`` (database, hub workers,
push connectors, outbox worker, rules watcher, reminders), so a test or the CLI gets
the same wiring and a clean shutdown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import structlog
from aiohttp import web

from crm_core.db import Database, migrate
from crm_core.events import InboundEvent
from crm_core.hub import Hub
from crm_core.live import LiveHub
from crm_core.pipeline.process import PipelineConfig
from crm_core.ports import HealthRegistry, Ingest, IngestReceipt, IngestUnavailable
from gateway.api import setup_api
from gateway.api.keys import DB
from gateway.campaigns import setup_campaigns
from gateway.jobs import setup_jobs
from gateway.keys import HEALTH, HUB, LIVE, METRICS, SETTINGS
from gateway.live import setup_live
from gateway.observability import Metrics, request_context_middleware
from gateway.ops import setup_ops
from gateway.server import body_timeout_middleware
from gateway.settings import Settings
from gateway.sla import setup_sla
from gateway.ui import setup_ui
from gateway.wiring import setup_background, setup_hooks

__all__ = ["create_app", "ingest_for"]

log = structlog.get_logger("crmhub.app")


def ingest_for(app: web.Application) -> Ingest:
    """The ``Ingest`` port for connectors, bound late: the hub starts in cleanup_ctx."""

    async def ingest(event: InboundEvent, *, wait: bool = False) -> IngestReceipt:
        hub = app.get(HUB)
        if hub is None:
            raise IngestUnavailable("the hub is not running")
        return await hub(event, wait=wait)

    return ingest


async def _first_admin_hint(db: Database) -> None:
    """A new installation has no user: say (in the log, and on the sign-in page through
    ``GET /api/v1/setup``) how to create the first admin."""
    from sqlalchemy import select

    from crm_core.models import User
    from gateway.api.users import FIRST_ADMIN_COMMAND

    async with db.sessions() as s:
        if await s.scalar(select(User.id).limit(1)) is not None:
            return
    log.warning(
        "no_users_yet",
        message=f"create the first admin: {FIRST_ADMIN_COMMAND} "
        f"(it prints the API token to sign in with) / создайте первого администратора",
    )


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    db = Database(settings.database_url, busy_timeout=settings.database_busy_timeout)
    await migrate(db)
    app[DB] = db
    log.info("database_ready", dialect=db.dialect)
    await _first_admin_hint(db)
    yield
    await db.dispose()


async def _hub(app: web.Application) -> AsyncIterator[None]:
    from gateway.routing import make_assigner

    settings = app[SETTINGS]
    metrics = app[METRICS]
    db = app[DB]
    hub = Hub(
        db,
        cfg=PipelineConfig(
            callback_due_minutes=settings.callback_due_minutes,
            attachments_dir=settings.attachments_dir,
            secret_key=settings.secret_key,
        ),
        assigner=make_assigner(app, db),
        live=app[LIVE],
        wait_timeout=settings.ingest_wait_seconds,
        on_received=metrics.received,
        on_result=metrics.result,
        poll_interval=settings.poll_interval,
    )
    await hub.start(process=settings.run_workers)
    app[HUB] = hub
    yield
    await hub.stop()


async def _graceful_shutdown(app: web.Application) -> None:
    """On SIGTERM (``on_shutdown``, before aiohttp waits for open requests): stop the
    connectors so no new call or message comes in, let the pipeline finish what was
    received, then end the live streams cleanly so no handler is left to cancel."""
    from gateway.wiring import stop_connectors

    log.info("shutdown_started")
    stopped = await stop_connectors(app)
    log.info("connectors_stopped", connectors=stopped)
    hub = app.get(HUB)
    if hub is not None and app[SETTINGS].run_workers:
        drained = await hub.drain(app[SETTINGS].shutdown_drain_seconds)
        log.info("hub_drained", complete=drained, backlog=hub.processor.backlog)
    else:
        log.info("hub_drained", complete=True, backlog=0)
    closed = app[LIVE].close_all("shutdown")
    log.info("live_streams_closed", streams=closed)


def create_app(settings: Settings) -> web.Application:
    metrics = Metrics()
    app = web.Application(
        middlewares=[
            request_context_middleware(metrics),
            body_timeout_middleware(settings.http.body_timeout_seconds),
        ],
        client_max_size=max(settings.webforms.max_body_bytes, 1024**2) * 4,
    )
    app[SETTINGS] = settings
    app[METRICS] = metrics
    app[HEALTH] = HealthRegistry()
    app[LIVE] = LiveHub()
    app.cleanup_ctx.append(_database)
    from gateway.live_bridge import live_bridge_ctx

    app.cleanup_ctx.append(live_bridge_ctx)  # live events between hub processes (PostgreSQL)
    app.cleanup_ctx.append(_hub)
    from gateway.routing import rules_ctx

    app.cleanup_ctx.append(rules_ctx)
    setup_background(app)
    setup_sla(app)
    setup_jobs(app)
    setup_campaigns(app)
    setup_ops(app)
    setup_hooks(app, ingest_for(app))
    setup_api(app, DB)
    setup_live(app)
    setup_ui(app)
    from gateway.unsubscribe import setup_unsubscribe

    setup_unsubscribe(app)  # /u/{token}: public, outside /api/ and its auth
    app.on_shutdown.append(_graceful_shutdown)
    return app
