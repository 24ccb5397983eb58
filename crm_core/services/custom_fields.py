"""Admin-defined fields of clients (``custom_fields``) and their values
(``clients.custom``: ``{key: value}``).

Types and the values they take:
- ``text``: a string (up to 2,000 characters);
- ``number``: a number (a numeric string is read as one);
- ``date``: an ISO date ``YYYY-MM-DD``;
- ``choice``: one of ``options``;
- ``multi``: a list of ``options`` (no repeats).

``required`` fields must have a value when a client is created, and cannot be emptied
later; a client created before the field became required keeps working until someone
edits that field.  Values of an inactive field are kept and shown but cannot be set.

Changing a field's ``type`` is refused (409) while some client holds a value of it:
no silent conversion loses data.  Clear the values (or make a new field) first.  Options
of a choice may be added or removed; a removed option stays on the clients that hold it
until they are edited.  A field with values cannot be deleted, only deactivated.
"""

from __future__ import annotations

import math
import re
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, and_, cast, exists, func, literal, select, true
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.access import Actor
from crm_core.models import Client, CustomField
from crm_core.services.common import Conflict, Forbidden, Invalid, NotFound, audit, iso

__all__ = [
    "FIELD_TYPES",
    "client_fields",
    "create_field",
    "custom_filter",
    "delete_field",
    "field_dict",
    "list_fields",
    "update_field",
    "validate_custom",
]

FIELD_TYPES = ("text", "number", "date", "choice", "multi")
_KEY = re.compile(r"^[a-z][a-z0-9_]{0,49}$")
MAX_TEXT = 2000
MAX_OPTIONS = 200


def _admin(actor: Actor) -> None:
    if not actor.is_admin:
        raise Forbidden("only admins may do this")


def field_dict(f: CustomField) -> dict[str, Any]:
    return {
        "id": f.id,
        "entity": f.entity,
        "key": f.key,
        "label_ru": f.label_ru,
        "label_en": f.label_en,
        "type": f.type,
        "options": list(f.options or []),
        "required": f.required,
        "position": f.position,
        "active": f.active,
        "created_at": iso(f.created_at),
    }


async def list_fields(s: AsyncSession, entity: str = "client") -> list[CustomField]:
    return list(
        await s.scalars(
            select(CustomField)
            .where(CustomField.entity == entity)
            .order_by(CustomField.position, CustomField.id)
        )
    )


async def client_fields(s: AsyncSession) -> dict[str, CustomField]:
    return {f.key: f for f in await list_fields(s, "client")}


def _options(raw: Any) -> list[str]:
    if not isinstance(raw, list) or not raw:
        raise Invalid("options must be a non-empty list of strings", "options")
    out: list[str] = []
    for item in raw:
        if not isinstance(item, str) or not item.strip() or len(item.strip()) > 200:
            raise Invalid("options must be a non-empty list of strings", "options")
        if item.strip() not in out:
            out.append(item.strip())
    if len(out) > MAX_OPTIONS:
        raise Invalid(f"options: at most {MAX_OPTIONS}", "options")
    return out


def _labels(data: dict[str, Any], creating: bool) -> None:
    for name in ("label_ru", "label_en"):
        if name in data and data[name] is not None:
            value = str(data[name]).strip()
            if name == "label_ru" and not value:
                raise Invalid("label_ru must not be empty", name)
            if len(value) > 200:
                raise Invalid(f"{name} is longer than 200 characters", name)
            data[name] = value
        elif creating and name == "label_ru":
            raise Invalid("label_ru is required", name)


async def _has_values(s: AsyncSession, key: str) -> int:
    """How many clients hold a value of ``key`` (stopping at the first few)."""
    held = select(Client.id).where(Client.custom[key].as_string().is_not(None)).limit(1000)
    return int(await s.scalar(select(func.count()).select_from(held.subquery())) or 0)


async def create_field(s: AsyncSession, actor: Actor, data: dict[str, Any]) -> CustomField:
    """``data``: key, label_ru, label_en, type, options (choice, multi), required, position."""
    _admin(actor)
    data = dict(data)
    key = str(data.get("key") or "").strip()
    if not _KEY.match(key):
        raise Invalid("key must be 1-50 characters a-z, 0-9, _ starting with a letter", "key")
    ftype = data.get("type")
    if ftype not in FIELD_TYPES:
        raise Invalid(f"type must be one of {', '.join(FIELD_TYPES)}", "type")
    _labels(data, creating=True)
    options = _options(data.get("options")) if ftype in ("choice", "multi") else []
    found = await s.scalar(
        select(CustomField.id).where(CustomField.entity == "client", CustomField.key == key)
    )
    if found is not None:
        raise Conflict(f"custom field {key} already exists", "key")
    position = data.get("position")
    if position is None:
        position = int(await s.scalar(select(func.max(CustomField.position))) or 0) + 10
    f = CustomField(
        entity="client",
        key=key,
        label_ru=data["label_ru"],
        label_en=data.get("label_en") or "",
        type=ftype,
        options=options,
        required=bool(data.get("required") or False),
        position=int(position),
        active=bool(data.get("active", True)),
    )
    s.add(f)
    await s.flush()
    await audit(s, actor, "create", "custom_field", f.id, field_dict(f))
    return f


async def _get(s: AsyncSession, field_id: int) -> CustomField:
    f = await s.get(CustomField, field_id)
    if f is None:
        raise NotFound(f"custom field {field_id} not found")
    return f


async def update_field(
    s: AsyncSession, actor: Actor, field_id: int, changes: dict[str, Any]
) -> CustomField:
    """Labels, options, required, position, active; ``type`` only while no client holds
    a value (409 otherwise).  The key never changes."""
    _admin(actor)
    f = await _get(s, field_id)
    changes = {k: v for k, v in changes.items() if v is not None}
    _labels(changes, creating=False)
    new_type = changes.get("type", f.type)
    if new_type not in FIELD_TYPES:
        raise Invalid(f"type must be one of {', '.join(FIELD_TYPES)}", "type")
    if new_type != f.type:
        held = await _has_values(s, f.key)
        if held:
            raise Conflict(
                f"custom field {f.key} has values in {held} clients: its type cannot change",
                "type",
            )
    if new_type in ("choice", "multi"):
        if "options" in changes or f.type not in ("choice", "multi"):
            changes["options"] = _options(changes.get("options", f.options))
    else:
        changes["options"] = []
    changes["type"] = new_type
    for name in ("label_ru", "label_en", "type", "options", "required", "position", "active"):
        if name in changes:
            setattr(f, name, changes[name])
    await s.flush()
    await audit(s, actor, "update", "custom_field", f.id, changes)
    return f


async def delete_field(s: AsyncSession, actor: Actor, field_id: int) -> None:
    """Only a field no client holds a value of; otherwise deactivate it."""
    _admin(actor)
    f = await _get(s, field_id)
    held = await _has_values(s, f.key)
    if held:
        raise Conflict(
            f"custom field {f.key} has values in {held} clients: deactivate it instead", "key"
        )
    await s.delete(f)
    await s.flush()
    await audit(s, actor, "delete", "custom_field", field_id, {"key": f.key})


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def _value(f: CustomField, raw: Any) -> Any:
    """One value checked against its field; Invalid naming ``custom.<key>``."""
    name = f"custom.{f.key}"
    if f.type == "text":
        if not isinstance(raw, str | int | float) or isinstance(raw, bool):
            raise Invalid(f"{name} must be text", name)
        text = str(raw).strip()
        if len(text) > MAX_TEXT:
            raise Invalid(f"{name} is longer than {MAX_TEXT} characters", name)
        return text
    if f.type == "number":
        number: float
        if isinstance(raw, bool):
            raise Invalid(f"{name} must be a number", name)
        if isinstance(raw, int | float):
            number = float(raw)
        elif isinstance(raw, str):
            try:
                number = float(raw.strip().replace(",", ".").replace(" ", ""))
            except ValueError:
                raise Invalid(f"{name} must be a number", name) from None
        else:
            raise Invalid(f"{name} must be a number", name)
        if not math.isfinite(number) or abs(number) >= 1e15:
            raise Invalid(f"{name} must be a number", name)
        return int(number) if number.is_integer() else number
    if f.type == "date":
        try:
            return date.fromisoformat(str(raw).strip()[:10]).isoformat()
        except ValueError:
            raise Invalid(f"{name} must be a date (YYYY-MM-DD)", name) from None
    options = list(f.options or [])
    if f.type == "choice":
        if not isinstance(raw, str) or raw.strip() not in options:
            raise Invalid(f"{name} must be one of {', '.join(options)}", name)
        return raw.strip()
    items = raw if isinstance(raw, list) else None
    if items is None or not all(isinstance(i, str) for i in items):
        raise Invalid(f"{name} must be a list of {', '.join(options)}", name)
    out: list[str] = []
    for item in items:
        if item.strip() not in options:
            raise Invalid(f"{name} must be a list of {', '.join(options)}", name)
        if item.strip() not in out:
            out.append(item.strip())
    return out


async def validate_custom(
    s: AsyncSession,
    values: dict[str, Any] | None,
    current: dict[str, Any] | None = None,
    *,
    creating: bool,
) -> dict[str, Any]:
    """The client's new ``custom`` dict: ``current`` with ``values`` applied (a null or
    empty value removes the key).  Unknown or inactive keys, wrong types, options not
    listed and (on create) missing required fields are refused, naming ``custom.<key>``."""
    defs = await client_fields(s)
    out = dict(current or {})
    for key, raw in (values or {}).items():
        f = defs.get(key)
        if f is None or not f.active:
            raise Invalid(f"custom.{key}: no such custom field", f"custom.{key}")
        if _empty(raw):
            if f.required:
                raise Invalid(f"custom.{key} is required", f"custom.{key}")
            out.pop(key, None)
            continue
        out[key] = _value(f, raw)
    if creating:
        for f in defs.values():
            if f.active and f.required and _empty(out.get(f.key)):
                raise Invalid(f"custom.{f.key} is required", f"custom.{f.key}")
    return out


def _range(text: str, parse: Any, name: str) -> tuple[Any, Any]:
    """``a..b``, ``a..``, ``..b`` or ``a`` (equal) parsed with ``parse``."""
    lo, sep, hi = text.partition("..")
    try:
        if not sep:
            v = parse(text)
            return v, v
        return (parse(lo) if lo.strip() else None), (parse(hi) if hi.strip() else None)
    except ValueError:
        raise Invalid(f"{name} must be a value or a range a..b", name) from None


def custom_filter(
    dialect: str, defs: dict[str, CustomField], key: str, raw: str
) -> ColumnElement[bool]:
    """The condition of ``?cf.<key>=raw``: text holds ``raw`` (any case); number and
    date equal ``raw`` or fall in a range ``a..b`` (either end may be left out); choice
    equals it; multi contains it.  Values are read from ``clients.custom`` (no index:
    combine with an indexed filter on a large base)."""
    name = f"cf.{key}"
    f = defs.get(key)
    if f is None:
        raise Invalid(f"{name}: no such custom field", name)
    raw = raw.strip()
    element = Client.custom[key]
    if f.type == "text":
        pattern = "%" + raw.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        return element.as_string().ilike(pattern, escape="\\")
    if f.type == "number":
        lo, hi = _range(raw, float, name)
        return _between(element.as_float(), lo, hi)
    if f.type == "date":
        lo, hi = _range(raw, lambda v: date.fromisoformat(v.strip()).isoformat(), name)
        return _between(element.as_string(), lo, hi)
    if f.type == "choice":
        return element.as_string() == raw
    if dialect == "postgresql":
        return cast(Client.custom, JSONB)[key].contains(cast(func.json_build_array(raw), JSONB))
    each = func.json_each(Client.custom, f"$.{key}").table_valued("value")
    return exists(select(literal(1)).select_from(each).where(each.c.value == raw))


def _between(col: Any, lo: Any, hi: Any) -> ColumnElement[bool]:
    cond: ColumnElement[bool] = true()
    if lo is not None:
        cond = and_(cond, col >= lo)
    if hi is not None:
        cond = and_(cond, col <= hi)
    return cond
