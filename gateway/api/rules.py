"""Handlers: the routing rules (read, replace, explain, history, restore).

The rules in force are the newest version in the database (``gateway/rules_store.py``).
``PUT /rules`` validates exactly like ``crmhub rules check`` (every error with its line
and column, 422; nothing saved), saves a new version (in force here at once, in every
other hub process within its 2 s poll) and writes the rules file atomically (temp file
+ fsync + rename) as an export.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.access import Actor, visible_clients
from crm_core.events import InboundEvent, NormalizeError
from crm_core.models import Client, RoutingPointer, utcnow
from crm_core.pipeline.match import match_event
from crm_core.pipeline.rules_assigner import LOCK_KEY, _client_info, build_roster
from crm_core.routing_context import explain_event
from crm_core.services.common import audit
from gateway.api.common import (
    MAX_BODY_BYTES,
    actor,
    database,
    json_object,
    ok,
    parse_body,
    path_id,
    read_body,
    read_capped,
)
from gateway.api.schemas import Empty
from gateway.errors import ApiError, json_dumps
from gateway.keys import SETTINGS
from gateway.openapi import operation
from gateway.rules_store import version_dict
from routing_rules import RoutingState, RulesError, RuleSet, parse_rules
from routing_rules.loader import MAX_RULES_BYTES

__all__ = ["ROUTES", "RulesIn", "RulesOut", "parse_off_loop", "rules_summary"]

# Parsing and validating an uploaded document never runs on the event loop: a worker
# thread, bounded by the loader's caps (size, nodes, depth, no aliases) and this timeout.
PARSE_TIMEOUT_SECONDS = 10.0
_write_lock = asyncio.Lock()


async def parse_off_loop(text: str, filename: str) -> RuleSet:
    """``parse_rules`` in a worker thread; 422 when it takes longer than the timeout
    (the thread is bounded by the loader's caps and ends on its own)."""
    try:
        return await asyncio.wait_for(
            asyncio.to_thread(parse_rules, text, filename), PARSE_TIMEOUT_SECONDS
        )
    except TimeoutError:
        raise ApiError(
            422, f"the rules took longer than {PARSE_TIMEOUT_SECONDS:g} s to check", "yaml"
        ) from None


class RulesIn(BaseModel):
    """The new file: this JSON object, or the YAML text itself as the body."""

    model_config = ConfigDict(extra="forbid")
    yaml: str


class RulesOut(BaseModel):
    path: str | None
    exists: bool
    version: int | None = None
    text: str
    digest: str
    in_force_digest: str
    in_force: bool
    timezone: str
    rules: list[dict[str, Any]]
    default: dict[str, Any]


def _require(request: web.Request, *roles: str) -> None:
    if actor(request).role not in roles:
        raise ApiError(403, f"only {' and '.join(r + 's' for r in roles)} may do this")


def _target(t: Any) -> dict[str, Any]:
    return {"kind": t.kind, "strategy": t.strategy, "text": t.text_en, "text_ru": t.text_ru}


def rules_summary(rules: RuleSet) -> dict[str, Any]:
    """The compiled rules as JSON: id, conditions present, action chain, queue, SLA."""
    return {
        "timezone": rules.timezone,
        "rules": [
            {
                "id": r.id,
                "description": r.description,
                "enabled": r.enabled,
                "has_conditions": r.cond is not None,
                "assign": [_target(t) for t in r.assign.chain],
                "queue": r.assign.queue,
                "priority": r.priority,
                "tags": list(r.tags),
                "sla_minutes": r.sla_minutes,
                "task": (
                    None
                    if r.task is None
                    else {
                        "kind": r.task.kind,
                        "title": r.task.title,
                        "due_in_minutes": r.task.due_in_minutes,
                    }
                ),
            }
            for r in rules.rules
        ],
        "default": {
            "assign": [_target(t) for t in rules.default_assign.chain],
            "queue": rules.default_assign.queue,
        },
    }


def _watcher(request: web.Request) -> Any:
    from gateway.routing import RULES

    return request.app.get(RULES)


def _current(request: web.Request) -> RuleSet:
    w = _watcher(request)
    return w.current if w is not None else RuleSet.default()


@operation(
    summary="The routing rules file: text, digest, and the rules in force (admin)",
    tag="rules",
    response=RulesOut,
    errors=(401, 403),
)
async def get_rules(request: web.Request) -> web.Response:
    _require(request, "admin")
    path = request.app[SETTINGS].routing_rules_path
    exists = await asyncio.to_thread(Path(path).exists) if path else False
    store = _store(request)
    newest = await store.latest() if store is not None else None
    if newest is not None:
        version, body = newest.id, newest.text
    else:  # no version yet (no rules file at the first start): the file as it is
        version, body = None, ""
        if path and exists:
            body = (await asyncio.to_thread(Path(path).read_bytes)).decode("utf-8", "replace")
    digest = hashlib.sha256(body.encode()).hexdigest() if body else ""
    current = _current(request)
    out = {
        "path": path,
        "exists": exists,
        "version": version,
        "text": body,
        "digest": digest,
        "in_force_digest": current.digest,
        "in_force": digest == current.digest,
        **rules_summary(current),
    }
    return ok(out)


def _store(request: web.Request) -> Any:
    from gateway.routing import RULES_STORE

    return request.app.get(RULES_STORE)


async def _yaml_body(request: web.Request) -> str:
    raw = await read_capped(request, MAX_BODY_BYTES)
    if len(raw) > MAX_RULES_BYTES:
        raise ApiError(413, f"the rules file is larger than {MAX_RULES_BYTES} bytes", "yaml")
    if request.content_type == "application/json":
        return parse_body(raw, RulesIn).yaml
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(422, f"the rules file must be UTF-8: {exc}", "yaml") from None


def _rules_error(err: RulesError) -> web.Response:
    body = {
        "error": f"{len(err.errors)} error(s) in the rules",
        "field": "yaml",
        "errors": [{"line": ln, "column": col, "message": msg} for ln, col, msg in err.errors],
    }
    return web.json_response(body, status=422, dumps=json_dumps)


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _unlink_quietly(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except OSError:
        pass


@operation(
    summary="Replace the routing rules (admin): the YAML text as the body, or "
    '{"yaml": "..."}; validated like `crmhub rules check` (422 lists every '
    "line/column/message), saved as a new version (in force here at once, in every hub "
    "process within seconds) and written to the rules file as an export",
    tag="rules",
    body=RulesIn,
    response=RulesOut,
    errors=(401, 403, 409, 413, 422),
)
async def put_rules(request: web.Request) -> web.Response:
    _require(request, "admin")
    store = _store(request)
    if store is None:
        raise ApiError(409, "the routing rules are not running in this process", "yaml")
    body = await _yaml_body(request)
    path = request.app[SETTINGS].routing_rules_path
    try:
        rules = await parse_off_loop(body, path or "<rules>")
    except RulesError as err:
        return _rules_error(err)
    async with _write_lock:
        row = await store.save(body, rules, source="api", user_id=actor(request).user_id)
        if path:  # the file is an export of what is in force
            await asyncio.to_thread(_write_atomically, Path(path), body)
            store.mark_file_written()
    async with database(request).transaction() as s:
        await audit(
            s,
            actor(request),
            "rules.replace",
            "rules",
            row.id if row is not None else None,
            {"digest": rules.digest},
        )
    return await get_rules(request)


@operation(
    summary="Every version of the routing rules, newest first (admin): id, digest, "
    "source (api, file, restore), author, time",
    tag="rules",
    errors=(401, 403),
)
async def rules_history(request: web.Request) -> web.Response:
    _require(request, "admin")
    store = _store(request)
    rows = await store.history() if store is not None else []
    items = [version_dict(v) for v in rows]
    return ok({"items": items, "total": len(items), "limit": len(items), "offset": 0})


@operation(summary="One version of the routing rules with its text (admin)", tag="rules")
async def rules_version(request: web.Request) -> web.Response:
    _require(request, "admin")
    store = _store(request)
    row = await store.get(path_id(request)) if store is not None else None
    if row is None:
        raise ApiError(404, f"rules version {request.match_info['id']} not found")
    return ok(version_dict(row, with_text=True))


@operation(
    summary="Make an older version of the routing rules current again (admin): saved as a "
    "new version",
    tag="rules",
    body=Empty,
    errors=(401, 403, 404, 422),
)
async def restore_rules_version(request: web.Request) -> web.Response:
    _require(request, "admin")
    await read_body(request, Empty)
    store = _store(request)
    row = await store.get(path_id(request)) if store is not None else None
    if row is None:
        raise ApiError(404, f"rules version {request.match_info['id']} not found")
    try:
        rules = await parse_off_loop(row.text, f"<version {row.id}>")
    except RulesError as err:
        return _rules_error(err)
    path = request.app[SETTINGS].routing_rules_path
    async with _write_lock:
        new = await store.save(row.text, rules, source="restore", user_id=actor(request).user_id)
        if path:
            await asyncio.to_thread(_write_atomically, Path(path), row.text)
            store.mark_file_written()
    async with database(request).transaction() as s:
        await audit(
            s,
            actor(request),
            "rules.restore",
            "rules",
            new.id if new is not None else None,
            {"from_version": row.id, "digest": rules.digest},
        )
    return await get_rules(request)


class ExplainIn(BaseModel):
    """An event in the ``InboundEvent`` JSON shape (as ``crmhub ingest`` prints it), or
    ``{"event": {...}, "yaml": "..."}`` to try a draft of the rules."""

    model_config = ConfigDict(extra="allow")
    event: dict[str, Any] | None = None
    yaml: str | None = None


@operation(
    summary="Which rule would take this event, and why (admin, supervisor); writes nothing; "
    "a client the caller may not see is treated as unknown",
    tag="rules",
    body=ExplainIn,
    errors=(401, 403, 422),
)
async def explain_rules(request: web.Request) -> web.Response:
    _require(request, "admin", "supervisor")
    data = json_object(await read_capped(request, MAX_BODY_BYTES))
    rules = _current(request)
    if "event" in data and isinstance(data.get("event"), dict):
        if data.get("yaml") is not None:
            try:
                rules = await parse_off_loop(str(data["yaml"]), "<draft>")
            except RulesError as err:
                return _rules_error(err)
        data = data["event"]
    try:
        event = InboundEvent.from_json(data)
    except NormalizeError as exc:
        raise ApiError(422, str(exc), exc.field) from None
    except (ValueError, TypeError, KeyError) as exc:
        raise ApiError(422, f"not an event: {exc}", "event") from None
    async with database(request).sessions() as s:
        roster = await build_roster(s)
        pointers = {
            p.key: int(p.last_user_id)
            for p in await s.scalars(select(RoutingPointer).where(RoutingPointer.key != LOCK_KEY))
            if p.last_user_id is not None
        }
        m = await match_event(s, event)
        matched = m.client
        if matched is not None and not await _visible(s, actor(request), matched.id):
            matched = None  # explained as for an unknown sender: nothing leaks
        client = await _client_info(s, matched)
        await s.rollback()
    out = explain_event(data, rules, roster, utcnow(), RoutingState(pointers), client)
    out["rules_digest"] = rules.digest
    return ok(out)


async def _visible(s: AsyncSession, who: Actor, client_id: int) -> bool:
    """The same visibility as every other route (a hidden client is "not found")."""
    found = await s.scalar(select(Client.id).where(Client.id == client_id, visible_clients(who)))
    return found is not None


ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "/rules", get_rules),
    ("PUT", "/rules", put_rules),
    ("POST", "/rules/explain", explain_rules),
    ("GET", "/rules/history", rules_history),
    ("GET", "/rules/history/{id}", rules_version),
    ("POST", "/rules/history/{id}/restore", restore_rules_version),
]
