"""The routing rules in the service: the watched rules file and the assigner using it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import structlog
from aiohttp import web

from crm_core.db import Database
from crm_core.pipeline.assign import Assigner
from crm_core.pipeline.rules_assigner import RulesAssigner
from gateway.api.keys import DB
from gateway.keys import SETTINGS
from gateway.rules_store import RulesStore
from gateway.settings import Settings
from routing_rules import RulesError, RuleSet, RulesWatcher, load_rules

__all__ = [
    "RULES",
    "RULES_STORE",
    "assigner_for_cli",
    "make_assigner",
    "rules_ctx",
    "static_rules",
]

log = structlog.get_logger("crmhub.routing")
RULES = web.AppKey("rules_watcher", RulesWatcher)
RULES_STORE = web.AppKey("rules_store", RulesStore)


def static_rules(settings: Settings) -> RuleSet:
    """The rules file as it is now (the default rules when none is configured)."""
    path = settings.routing_rules_path
    if not path or not Path(path).exists():
        return RuleSet.default()
    return load_rules(path)


def _on_error(err: RulesError) -> None:
    log.error("routing_rules_invalid_keeping_previous", errors=err.format_lines())


def make_assigner(app: web.Application, db: Database) -> Assigner:
    settings = app[SETTINGS]
    if RULES not in app:
        path = settings.routing_rules_path or "/nonexistent/routing.yaml"
        app[RULES] = RulesWatcher(path, on_error=_on_error)
        app[RULES].reload(force=True)
    watcher = app[RULES]
    return RulesAssigner(lambda: watcher.current, postgres=db.is_postgres)


async def rules_ctx(app: web.Application) -> AsyncIterator[None]:
    """The rules in force come from the database (every process polls for a newer
    version); the file is the bootstrap and an export (``gateway/rules_store.py``)."""
    task = None
    if RULES in app:
        store = RulesStore(app[DB], app[RULES], app[SETTINGS].routing_rules_path)
        await store.bootstrap()
        app[RULES_STORE] = store
        task = asyncio.create_task(store.run(), name="rules-store")
    yield
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def assigner_for_cli(settings: Settings, db: Database) -> Assigner:
    try:
        rules = static_rules(settings)
    except RulesError as err:
        _on_error(err)
        rules = RuleSet.default()
    return RulesAssigner(lambda: rules, postgres=db.is_postgres)
