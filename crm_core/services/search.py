"""Client search (``?q=``, the list's and the UI header's): a name fragment, an INN, a
phone in any spelling, an email, or a contact person's name, each through an index.

Names: ``pg_trgm`` GIN indexes on PostgreSQL (``ILIKE '%q%'``), an FTS5 trigram index on
SQLite (``MATCH '"q"'``); both need 3 characters or more, shorter fragments fall back to
a prefix scan.  Phones and emails are normalized as the pipeline does and looked up in
the contact points (the client's own, or its contact persons'); a valid phone or
email is only looked up there (index seeks on ``(kind, value)``), never as a name."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Select, column, select, table, union
from sqlalchemy import text as sql_text
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.identity import IdentityError, normalize_email, normalize_phone
from crm_core.models import Client, ContactPerson, ContactPoint

__all__ = ["client_ids_matching"]

_PHONEISH = re.compile(r"^[+\d\s()\-.]{5,}$")
_MIN_TRIGRAM = 3


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _fts_phrase(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _names(s: AsyncSession, text: str) -> list[Select[Any]]:
    """Ids of clients whose name, or one of whose contact persons' name, holds ``text``."""
    postgres = s.get_bind().dialect.name == "postgresql"
    if len(text) < _MIN_TRIGRAM:
        prefix = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        return [
            select(Client.id).where(Client.name.ilike(prefix, escape="\\")),
            select(ContactPerson.client_id).where(ContactPerson.name.ilike(prefix, escape="\\")),
        ]
    if postgres:
        pattern = _like_pattern(text)
        return [
            select(Client.id).where(Client.name.ilike(pattern, escape="\\")),
            select(ContactPerson.client_id).where(ContactPerson.name.ilike(pattern, escape="\\")),
        ]
    phrase = _fts_phrase(text)
    clients_fts = table("clients_fts", column("rowid"))
    persons_fts = table("contact_persons_fts", column("rowid"))
    return [
        select(clients_fts.c.rowid).where(sql_text("clients_fts MATCH :cq").bindparams(cq=phrase)),
        select(ContactPerson.client_id).where(
            ContactPerson.id.in_(
                select(persons_fts.c.rowid).where(
                    sql_text("contact_persons_fts MATCH :pq").bindparams(pq=phrase)
                )
            )
        ),
    ]


def _holding(kind: str, value: str) -> list[Select[Any]]:
    """Ids of clients holding ``kind:value`` directly or through a contact person."""
    return [
        select(ContactPoint.client_id).where(
            ContactPoint.kind == kind,
            ContactPoint.value == value,
            ContactPoint.client_id.is_not(None),
        ),
        select(ContactPerson.client_id)
        .join(ContactPoint, ContactPoint.contact_person_id == ContactPerson.id)
        .where(ContactPoint.kind == kind, ContactPoint.value == value),
    ]


def client_ids_matching(s: AsyncSession, q: str) -> Any:
    """A subquery of the ids of clients that ``q`` finds (a UNION of index lookups)."""
    text = q.strip()
    parts: list[Select[Any]] = []
    handle = False  # q is a valid email or phone, or an INN: an index seek answers it, not a name
    if "@" in text:
        try:
            parts += _holding("email", normalize_email(text))
            handle = True
        except IdentityError:
            pass
    if _PHONEISH.match(text):
        try:
            parts += _holding("phone", normalize_phone(text).e164)
            handle = True
        except IdentityError:
            pass
    if text.isdigit() and len(text) in (10, 12):
        parts.append(select(Client.id).where(Client.inn == text))
        handle = True
    if text and not handle:
        # Only when q looks like a name: a trigram search for "8 (916) 001-66-66" or an
        # address finds nothing a name holds and costs a GIN scan of both tables.
        parts += _names(s, text)
    return union(*parts).subquery("found")
