"""Typed application keys shared by the gateway's modules."""

from __future__ import annotations

from aiohttp import web

from crm_core.hub import Hub
from crm_core.live import LiveHub
from crm_core.ports import HealthRegistry
from gateway.observability import Metrics
from gateway.settings import Settings

__all__ = ["HEALTH", "HUB", "LIVE", "METRICS", "SETTINGS"]

SETTINGS = web.AppKey("settings", Settings)
HUB = web.AppKey("hub", Hub)
LIVE = web.AppKey("live", LiveHub)
METRICS = web.AppKey("metrics", Metrics)
HEALTH = web.AppKey("health", HealthRegistry)
