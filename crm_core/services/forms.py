"""Website forms: each has a public key (in its URL) and a secret."""

from __future__ import annotations

import secrets

from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.models import Form
from crm_core.services.common import Invalid, audit

__all__ = ["create_form"]


async def create_form(
    session: AsyncSession, name: str, aliases: dict[str, str] | None = None
) -> Form:
    """A new form with a short url-safe ``key`` and a ``secret`` (token_urlsafe(24))."""
    name = (name or "").strip()
    if not name:
        raise Invalid("name must not be empty", "name")
    if len(name) > 200:
        raise Invalid("name is longer than 200 characters", "name")
    form = Form(
        key=secrets.token_urlsafe(8),
        name=name,
        secret=secrets.token_urlsafe(24),
        aliases=dict(aliases or {}),
        active=True,
    )
    session.add(form)
    await session.flush()
    await audit(session, None, "create", "form", form.id, {"name": name})
    return form
