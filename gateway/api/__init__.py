"""The REST API under ``/api/v1``: routes, bearer-token auth and JSON errors.

``setup_api(app, DB)`` registers everything; the OpenAPI document is built from the
same route table (``gateway.openapi``).
"""

from __future__ import annotations

from aiohttp import web

from crm_core.db import Database
from gateway.api import (
    analytics,
    audit,
    auth,
    bulk,
    calls,
    campaign_results,
    campaigns,
    clients,
    consent,
    deals,
    emails,
    export,
    fields,
    forms,
    imports,
    leads,
    merge,
    messages,
    pipelines,
    recordings,
    rules,
    segments,
    tasks,
    two_factor,
    users,
)
from gateway.api.keys import API_STATE, ApiState
from gateway.auth import auth_middleware
from gateway.errors import error_middleware
from gateway.openapi import API_PREFIX

__all__ = ["API_PREFIX", "setup_api"]

ROUTE_TABLES = (
    export.ROUTES,  # /clients/export before /clients/{id}
    clients.ROUTES,
    merge.ROUTES,
    leads.ROUTES,
    deals.ROUTES,
    pipelines.ROUTES,
    tasks.ROUTES,
    auth.ROUTES,  # /users/invite before /users/{id}
    two_factor.ROUTES,
    users.ROUTES,
    calls.ROUTES,
    emails.ROUTES,
    messages.ROUTES,
    rules.ROUTES,
    analytics.ROUTES,
    recordings.ROUTES,
    imports.ROUTES,
    forms.ROUTES,
    segments.ROUTES,
    bulk.ROUTES,
    audit.ROUTES,
    fields.ROUTES,
    campaign_results.ROUTES,  # /campaigns/{id}/recipients.xlsx, /campaigns/{id}/results
    campaigns.ROUTES,
    consent.ROUTES,
)


def setup_api(app: web.Application, db_key: web.AppKey[Database]) -> None:
    """Add the ``/api/v1`` routes and the API's middlewares (they act on ``/api/`` only).

    ``app[db_key]`` must hold the :class:`Database` by the time requests arrive (it may
    be set later, e.g. in ``cleanup_ctx``).
    """
    app[API_STATE] = ApiState(db_key=db_key)
    app.middlewares.append(error_middleware)
    app.middlewares.append(auth_middleware)
    imports.setup_imports(app)
    auth.setup_auth(app)
    segments.setup_segments(app)
    for table in ROUTE_TABLES:
        for method, path, handler in table:
            if method == "GET":
                app.router.add_get(API_PREFIX + path, handler, allow_head=False)
            else:
                app.router.add_route(method, API_PREFIX + path, handler)
    recordings.setup_media(app)
