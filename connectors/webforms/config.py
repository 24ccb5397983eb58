"""Settings of the website-form connector: one :class:`FormSpec` per form, limits.

A form is addressed by its ``key`` (``POST /hooks/forms/{key}``) and authenticated
with its ``secret`` (``?secret=`` or the ``X-Crmhub-Form-Secret`` header).  The core
stores forms in the database and hands the connector a :class:`FormRegistry`.

Honeypot fields: a field that is invisible to people (hidden with CSS) but that
bots fill in.  The defaults are the names used by the common anti-spam recipes:
``website`` (our own HTML sample), ``hp``/``honeypot`` (generic), ``_gotcha``
(Formspree), ``bot-field`` (Netlify), ``_honey`` (FormSubmit).  ``url`` and ``fax``
are deliberately NOT defaults: real forms use them for real data.  A form that
asks for a company web site under the name ``website`` must set its own
``honeypot_fields``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "CANONICAL_FIELDS",
    "DEFAULT_HONEYPOT_FIELDS",
    "FormRegistry",
    "FormSpec",
    "InMemoryFormRegistry",
    "WebformLimits",
    "squash_key",
]

DEFAULT_HONEYPOT_FIELDS: tuple[str, ...] = (
    "website",
    "hp",
    "honeypot",
    "_gotcha",
    "bot-field",
    "_honey",
)

# What a per-form alias may point at (see normalize.py for the built-in aliases).
CANONICAL_FIELDS: frozenset[str] = frozenset(
    {
        "name",
        "first_name",
        "middle_name",
        "last_name",
        "phone",
        "email",
        "comment",
        "subject",
        "company",
        "inn",
        "page_url",
        "referrer",
        "form_id",
        "form_name",
        "utm_source",
        "utm_medium",
        "utm_campaign",
        "utm_term",
        "utm_content",
    }
)

_SQUASH_RE = re.compile(r"[\W_]+", re.UNICODE)


@functools.lru_cache(maxsize=8192)
def squash_key(key: str) -> str:
    """Field name -> comparison form: lower case, ``ё``->``е``, no punctuation or spaces.

    ``"E-mail"`` -> ``"email"``, ``"Эл. почта"`` -> ``"элпочта"``, ``"your-name"`` ->
    ``"yourname"``.
    """
    return _SQUASH_RE.sub("", key.lower().replace("ё", "е"))


class FormSpec(BaseModel):
    """One website form as the core stores it."""

    model_config = ConfigDict(frozen=True)

    key: str = Field(min_length=1, max_length=128)
    name: str = ""
    secret: str = ""  # empty: no secret required (only for trusted, internal forms)
    # extra per-form field name -> canonical field ("Ваш город" is not mapped; "Контакт" -> phone)
    aliases: Mapping[str, str] = Field(default_factory=dict)
    honeypot_fields: tuple[str, ...] = DEFAULT_HONEYPOT_FIELDS
    active: bool = True

    @field_validator("aliases")
    @classmethod
    def _check_aliases(cls, value: Mapping[str, str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for field_name, canonical in value.items():
            if canonical not in CANONICAL_FIELDS:
                raise ValueError(
                    f"alias {field_name!r} points at unknown field {canonical!r}; "
                    f"use one of {sorted(CANONICAL_FIELDS)}"
                )
            squashed = squash_key(field_name)
            if not squashed:
                raise ValueError(f"alias {field_name!r} has no letters or digits")
            out[squashed] = canonical
        return out


class FormRegistry(Protocol):
    """Looks forms up by key; the core implements it from the database."""

    async def get(self, key: str) -> FormSpec | None: ...


class InMemoryFormRegistry:
    """A :class:`FormRegistry` over a dict (tests, static configuration)."""

    def __init__(self, forms: Mapping[str, FormSpec] | None = None) -> None:
        self._forms: dict[str, FormSpec] = dict(forms or {})

    def add(self, form: FormSpec) -> None:
        self._forms[form.key] = form

    async def get(self, key: str) -> FormSpec | None:
        return self._forms.get(key)


class WebformLimits(BaseModel):
    """Abuse limits of the form webhook (per handler instance, in memory)."""

    model_config = ConfigDict(frozen=True)

    max_body_bytes: int = Field(default=256 * 1024, gt=0)
    rate_per_minute: float = Field(default=30, gt=0)  # sustained submissions per client IP
    burst: int = Field(default=10, ge=1)  # submissions allowed at once before the rate applies
    trust_forwarded: bool = False  # take the client IP from X-Forwarded-For (behind a proxy)
    max_tracked_ips: int = Field(default=50_000, ge=1)
