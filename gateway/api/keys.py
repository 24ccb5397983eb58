"""Typed keys of the REST API: the database on the app, the actor on each request."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from crm_core.access import Actor
from crm_core.db import Database
from crm_core.models import User

__all__ = ["ACTOR", "API_STATE", "CREDENTIAL", "DB", "USER", "ApiState", "Credential"]

DB = web.AppKey("db", Database)


@dataclass(frozen=True, slots=True)
class ApiState:
    """Where the API finds its database (the key given to ``setup_api``)."""

    db_key: web.AppKey[Database]


API_STATE = web.AppKey("api_state", ApiState)
ACTOR = web.RequestKey("actor", Actor)
USER = web.RequestKey("user", User)


@dataclass(frozen=True, slots=True)
class Credential:
    """What authenticated a request: an API token (``kind`` token, its ``scope``) or a
    sign-in session (``kind`` session, its ``csrf`` token)."""

    kind: str  # token | session
    id: int
    scope: str = "full"
    csrf: str | None = None

    @property
    def key(self) -> str:
        """``t:<id>`` / ``s:<id>``: what live tickets and streams remember."""
        return f"{self.kind[0]}:{self.id}"


CREDENTIAL = web.RequestKey("credential", Credential)
