"""Website forms: each has a public key (in its URL) and a secret."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.access import Actor
from crm_core.models import Form
from crm_core.services.common import Invalid, NotFound, audit, iso

__all__ = ["create_form", "form_dict", "get_form", "list_forms", "rotate_secret", "update_form"]

MAX_ALIASES = 100


def _name(value: Any) -> str:
    name = str(value or "").strip()
    if not name:
        raise Invalid("name must not be empty", "name")
    if len(name) > 200:
        raise Invalid("name is longer than 200 characters", "name")
    return name


def _aliases(value: Any) -> dict[str, str]:
    """Site field name -> crmhub field (``'Ваш телефон': 'phone'``)."""
    if not isinstance(value, dict) or len(value) > MAX_ALIASES:
        raise Invalid(f"aliases must be an object of at most {MAX_ALIASES} fields", "aliases")
    out = {}
    for k, v in value.items():
        if not isinstance(v, str) or not str(k).strip() or len(str(k)) > 200 or len(v) > 100:
            raise Invalid(f"aliases: {k!r} -> {v!r} is not field -> field", "aliases")
        out[str(k).strip()] = v.strip()
    return out


def _honeypot(value: Any) -> list[str]:
    if not isinstance(value, list) or len(value) > 20:
        raise Invalid("honeypot_fields must be a list of at most 20 names", "honeypot_fields")
    if not all(isinstance(v, str) and 0 < len(v.strip()) <= 100 for v in value):
        raise Invalid("honeypot_fields: each is a field name", "honeypot_fields")
    return [v.strip() for v in value]


async def create_form(
    session: AsyncSession,
    name: str,
    aliases: dict[str, str] | None = None,
    *,
    honeypot_fields: list[str] | None = None,
    actor: Actor | None = None,
) -> Form:
    """A new form with a short url-safe ``key`` and a ``secret`` (token_urlsafe(24))."""
    form = Form(
        key=secrets.token_urlsafe(8),
        name=_name(name),
        secret=secrets.token_urlsafe(24),
        aliases=_aliases(aliases or {}),
        honeypot_fields=_honeypot(honeypot_fields or []),
        active=True,
    )
    session.add(form)
    await session.flush()
    await audit(session, actor, "create", "form", form.id, {"name": form.name})
    return form


def form_dict(form: Form) -> dict[str, Any]:
    return {
        "id": form.id,
        "key": form.key,
        "name": form.name,
        "secret": form.secret,
        "aliases": form.aliases or {},
        "honeypot_fields": form.honeypot_fields or [],
        "active": form.active,
        "created_at": iso(form.created_at),
    }


async def list_forms(session: AsyncSession) -> list[Form]:
    return list(await session.scalars(select(Form).order_by(Form.id)))


async def get_form(session: AsyncSession, form_id: int) -> Form:
    form = await session.get(Form, form_id)
    if form is None:
        raise NotFound(f"form {form_id} not found")
    return form


async def update_form(
    session: AsyncSession, actor: Actor, form: Form, data: dict[str, Any]
) -> Form:
    new: dict[str, Any] = {}
    if "name" in data:
        new["name"] = _name(data["name"])
    if "aliases" in data:
        new["aliases"] = _aliases(data["aliases"])
    if "honeypot_fields" in data:
        new["honeypot_fields"] = _honeypot(data["honeypot_fields"])
    if "active" in data:
        if not isinstance(data["active"], bool):
            raise Invalid("active must be true or false", "active")
        new["active"] = data["active"]
    changes = {k: [getattr(form, k), v] for k, v in new.items() if getattr(form, k) != v}
    for key, (_old, value) in changes.items():
        setattr(form, key, value)
    if changes:
        await session.flush()
        await audit(session, actor, "update", "form", form.id, {"changes": changes})
    return form


async def rotate_secret(session: AsyncSession, actor: Actor, form: Form) -> Form:
    """A new secret: the old one is refused from now on (the site's page must be updated)."""
    form.secret = secrets.token_urlsafe(24)
    await session.flush()
    await audit(session, actor, "rotate_secret", "form", form.id, {"name": form.name})
    return form
