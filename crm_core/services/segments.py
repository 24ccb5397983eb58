"""Segments: named groups of clients, ``manual`` (chosen clients, ``segment_clients``) or
``rule`` (rules over the profile, compiled into one SQL condition and evaluated live).
A client may be in several.  Managers assigned to a segment (``segment_managers``) own
its clients: those without an owner, and those entering it later, get one of them
(``strategy`` round_robin or least_loaded); a rebalance shares all its clients among
them (:func:`plan_rebalance`, applied in batches by the caller).

For other parts of the CRM: :func:`in_segment` is the SQL condition "the client is in
segment N" (a ``WHERE`` on ``clients``), :func:`segments_of` the segments of some
clients.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import ColumnElement, delete, func, insert, literal, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.access import Actor, can_assign_to, visible_clients
from crm_core.models import (
    AuditEntry,
    Client,
    CustomField,
    RoutingPointer,
    Segment,
    SegmentClient,
    SegmentManager,
    User,
    utcnow,
)
from crm_core.services.common import (
    COUNT_CAP,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    audit,
    count_capped,
    iso,
)
from crm_core.services.segment_rules import RuleError, compile_rules, field_catalogue

__all__ = [
    "MAX_CLIENT_IDS",
    "STRATEGIES",
    "RebalancePlan",
    "RuleError",
    "add_to_named_segment",
    "apply_rebalance_batch",
    "assign_entering",
    "create_segment",
    "delete_segment",
    "get_segment",
    "in_segment",
    "list_segments",
    "managed_segments_of",
    "plan_rebalance",
    "preview_count",
    "rule_fields",
    "segment_dicts",
    "segment_fields",
    "segment_id_for",
    "segment_names",
    "segments_of",
    "set_managers",
    "update_segment",
]

log = structlog.get_logger("crmhub.segments")
STRATEGIES = ("round_robin", "least_loaded")
MAX_CLIENT_IDS = 10_000
INLINE_ASSIGN = 500  # unowned clients given owners within the PUT managers request
POINTER_PREFIX = "segment:"


# -- compiling -----------------------------------------------------------------------------
async def _custom_types(s: AsyncSession) -> dict[str, str]:
    rows = await s.execute(
        select(CustomField.key, CustomField.type).where(
            CustomField.entity == "client", CustomField.active.is_(True)
        )
    )
    return {r.key: r.type for r in rows}


def _dialect(s: AsyncSession) -> str:
    return s.get_bind().dialect.name


async def rule_fields(s: AsyncSession) -> list[dict[str, Any]]:
    """What a rule may test: fields with their value type and operators (the editor's)."""
    return field_catalogue(await _custom_types(s))


async def compile_for(s: AsyncSession, rules: Any) -> ColumnElement[bool]:
    """Validate ``rules`` and compile them (raises :class:`RuleError`)."""
    return compile_rules(rules, await _custom_types(s), _dialect(s))


def _membership(segment_id: int) -> ColumnElement[bool]:
    return Client.id.in_(
        select(SegmentClient.client_id).where(SegmentClient.segment_id == segment_id)
    )


def _condition(
    seg: Segment, custom: dict[str, str], dialect: str, *, few: bool = False
) -> ColumnElement[bool] | None:
    """The SQL condition of one segment; None when its stored rules no longer compile (a
    custom field was removed): such a segment holds nobody until it is edited.  ``few``:
    for testing a few clients chosen by id."""
    if seg.kind != "rule":
        return _membership(seg.id)
    try:
        return compile_rules(seg.rules or {"all": []}, custom, dialect, few=few)
    except RuleError as exc:
        log.warning("segment_rules_broken", segment_id=seg.id, error=exc.message)
        return None


async def in_segment(s: AsyncSession, segment_id: int) -> ColumnElement[bool]:
    """The SQL condition "the client is in segment ``segment_id``" on ``clients`` (manual
    membership or the compiled rules).  Combine it with ``visible_clients(actor)``.
    Raises NotFound for an unknown segment."""
    seg = await s.get(Segment, segment_id)
    if seg is None:
        raise NotFound(f"segment {segment_id} not found")
    cond = _condition(seg, await _custom_types(s), _dialect(s))
    return cond if cond is not None else Client.id.is_(None)


async def segments_of(
    s: AsyncSession, client_ids: Iterable[int], *, managed_only: bool = False
) -> dict[int, list[tuple[int, str]]]:
    """``{client_id: [(segment_id, name), ...]}`` (by name) for manual and rule segments:
    one query for the memberships, one UNION ALL for the rule segments."""
    ids = sorted(set(client_ids))
    out: dict[int, list[tuple[int, str]]] = {i: [] for i in ids}
    if not ids:
        return out
    segs_q = select(Segment)
    if managed_only:
        segs_q = segs_q.where(Segment.id.in_(select(SegmentManager.segment_id)))
    segs = {seg.id: seg for seg in await s.scalars(segs_q)}
    if not segs:
        return out
    found: set[tuple[int, int]] = set()
    manual = [i for i, seg in segs.items() if seg.kind != "rule"]
    if manual:
        rows = await s.execute(
            select(SegmentClient.client_id, SegmentClient.segment_id).where(
                SegmentClient.client_id.in_(ids), SegmentClient.segment_id.in_(manual)
            )
        )
        found.update((r.client_id, r.segment_id) for r in rows)
    custom = await _custom_types(s)
    dialect = _dialect(s)
    parts = []
    for seg in segs.values():
        if seg.kind != "rule":
            continue
        cond = _condition(seg, custom, dialect, few=True)
        if cond is not None:
            parts.append(
                select(Client.id.label("cid"), literal(seg.id).label("sid")).where(
                    Client.id.in_(ids), cond
                )
            )
    for i in range(0, len(parts), 50):  # a bounded statement per 50 rule segments
        chunk = parts[i : i + 50]
        query = chunk[0] if len(chunk) == 1 else union_all(*chunk)
        found.update((int(r[0]), int(r[1])) for r in await s.execute(query))
    for cid, sid in found:
        out[cid].append((sid, segs[sid].name))
    for v in out.values():
        v.sort(key=lambda p: p[1])
    return out


async def segment_fields(s: AsyncSession, client_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """The clients API's ``segments`` (``[{"id", "name"}]``, every segment) and
    ``segment`` (the first manual one's name: what the single segment used to be)."""
    found = await segments_of(s, client_ids)
    held = {sid for pairs in found.values() for sid, _ in pairs}
    manual = (
        set(await s.scalars(select(Segment.id).where(Segment.id.in_(held), Segment.kind != "rule")))
        if held
        else set()
    )
    return {
        cid: {
            "segment": next((n for i, n in pairs if i in manual), None),
            "segments": [{"id": i, "name": n} for i, n in pairs],
        }
        for cid, pairs in found.items()
    }


async def segment_names(s: AsyncSession, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = await s.execute(select(Segment.id, Segment.name).where(Segment.id.in_(ids)))
    return {r.id: r.name for r in rows}


# -- the legacy single "segment" of a client (by name) ---------------------------------------
async def segment_id_for(s: AsyncSession, name: str | None) -> int | None:
    """The id of manual segment ``name``, created on first use; None for no name."""
    if name is None:
        return None
    name = name.strip()
    if not name:
        return None
    if len(name) > 100:
        raise Invalid("segment is longer than 100 characters", "segment")
    seg = await s.scalar(select(Segment).where(Segment.name == name))
    if seg is not None:
        if seg.kind == "rule":
            raise Invalid(f"segment {name} is chosen by its rules; pick a manual one", "segment")
        return int(seg.id)
    seg = Segment(name=name, kind="manual")
    s.add(seg)
    await s.flush()
    return seg.id


async def add_to_named_segment(
    s: AsyncSession, actor: Actor | None, client_id: int, name: str | None
) -> None:
    """``"segment": name`` of the clients API (backward compatible): the client joins
    manual segment ``name`` (created on first use); ``None`` or ``""`` takes it out of
    every manual segment.  Managers of a segment it enters take it over.  The name of a
    rule segment is accepted only when the client already matches it (a form sending
    back what it read)."""
    if name and name.strip():
        rule_seg = await s.scalar(
            select(Segment).where(Segment.name == name.strip(), Segment.kind == "rule")
        )
        if rule_seg is not None:
            found = await segments_of(s, [client_id])
            if any(sid == rule_seg.id for sid, _ in found[client_id]):
                return
    seg_id = await segment_id_for(s, name)
    if seg_id is None:
        await s.execute(delete(SegmentClient).where(SegmentClient.client_id == client_id))
        return
    present = await s.scalar(
        select(SegmentClient.client_id).where(
            SegmentClient.segment_id == seg_id, SegmentClient.client_id == client_id
        )
    )
    if present is None:
        s.add(SegmentClient(segment_id=seg_id, client_id=client_id, added_at=utcnow()))
        await s.flush()


# -- reading ---------------------------------------------------------------------------------
async def get_segment(s: AsyncSession, segment_id: int) -> Segment:
    seg = await s.get(Segment, segment_id)
    if seg is None:
        raise NotFound(f"segment {segment_id} not found")
    return seg


async def list_segments(s: AsyncSession) -> list[Segment]:
    return list(await s.scalars(select(Segment).order_by(Segment.name)))


async def _managers(s: AsyncSession, seg_ids: list[int]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {i: [] for i in seg_ids}
    if seg_ids:
        rows = await s.execute(
            select(SegmentManager.segment_id, SegmentManager.user_id)
            .where(SegmentManager.segment_id.in_(seg_ids))
            .order_by(SegmentManager.user_id)
        )
        for r in rows:
            out[r.segment_id].append(r.user_id)
    return out


async def segment_dicts(
    s: AsyncSession, actor: Actor, segs: Sequence[Segment], *, counts: bool = True
) -> list[dict[str, Any]]:
    """The API shape; ``client_count`` is of the clients the actor may see (a manager's:
    their own), capped at the lists' count cap (``count_capped``)."""
    managers = await _managers(s, [g.id for g in segs])
    custom = await _custom_types(s)
    dialect = _dialect(s)
    out = []
    for g in segs:
        item: dict[str, Any] = {
            "id": g.id,
            "name": g.name,
            "description": g.description,
            "kind": g.kind,
            "rules": g.rules if g.kind == "rule" else None,
            "strategy": g.strategy,
            "manager_ids": managers[g.id],
            "created_by": g.created_by,
            "created_at": iso(g.created_at),
            "updated_at": iso(g.updated_at),
        }
        if counts:
            cond = _condition(g, custom, dialect)
            n = 0
            if cond is not None:
                query = select(Client.id).where(cond, visible_clients(actor))
                n = await count_capped(s, query, COUNT_CAP)
            item["client_count"] = n
            item["count_capped"] = n >= COUNT_CAP
        out.append(item)
    return out


async def preview_count(s: AsyncSession, actor: Actor, rules: Any) -> dict[str, Any]:
    """How many clients (the actor may see) the rules hold now; validates them."""
    cond = await compile_for(s, rules)
    n = await count_capped(s, select(Client.id).where(cond, visible_clients(actor)), COUNT_CAP)
    return {"count": n, "count_capped": n >= COUNT_CAP}


# -- writing ---------------------------------------------------------------------------------
def _require_editor(actor: Actor) -> None:
    if actor.role not in ("admin", "supervisor"):
        raise Forbidden("only admins and supervisors may do this")


def _clean_name(raw: Any) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise Invalid("name must not be empty", "name")
    name = raw.strip()
    if len(name) > 100:
        raise Invalid("name is longer than 100 characters", "name")
    return name


async def _unique_name(s: AsyncSession, name: str, seg_id: int | None) -> None:
    other = await s.scalar(select(Segment.id).where(Segment.name == name))
    if other is not None and other != seg_id:
        raise Conflict(f"a segment named {name} already exists", "name")


async def _check_clients(
    s: AsyncSession, actor: Actor, raw: Any, field_name: str = "client_ids"
) -> list[int]:
    """Distinct client ids the actor may see; refuses unknown or hidden ones."""
    if not isinstance(raw, list):
        raise Invalid(f"{field_name} must be a list of client ids", field_name)
    if len(raw) > MAX_CLIENT_IDS:
        raise Invalid(f"{field_name} has more than {MAX_CLIENT_IDS} ids", field_name)
    ids: list[int] = []
    for i, v in enumerate(raw):
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0 or v > 2**62:
            raise Invalid(f"{field_name}[{i}] must be a client id", f"{field_name}[{i}]")
        ids.append(v)
    ids = sorted(set(ids))
    seen: set[int] = set()
    for i in range(0, len(ids), 1000):
        chunk = ids[i : i + 1000]
        seen.update(
            await s.scalars(select(Client.id).where(Client.id.in_(chunk), visible_clients(actor)))
        )
    missing = [i for i in ids if i not in seen]
    if missing:
        raise Invalid(f"{field_name}: client {missing[0]} not found", field_name)
    return ids


async def _add_members(s: AsyncSession, seg_id: int, ids: list[int]) -> list[int]:
    """Add the clients not yet members; returns those added."""
    if not ids:
        return []
    have: set[int] = set()
    for i in range(0, len(ids), 1000):
        have.update(
            await s.scalars(
                select(SegmentClient.client_id).where(
                    SegmentClient.segment_id == seg_id,
                    SegmentClient.client_id.in_(ids[i : i + 1000]),
                )
            )
        )
    new = [i for i in ids if i not in have]
    if new:
        now = utcnow()
        await s.execute(
            insert(SegmentClient),
            [{"segment_id": seg_id, "client_id": c, "added_at": now} for c in new],
        )
    return new


async def create_segment(s: AsyncSession, actor: Actor, data: dict[str, Any]) -> Segment:
    """``{"name", "description"?, "client_ids": [...]}`` (manual) or ``{"name", "rules"}``."""
    _require_editor(actor)
    name = _clean_name(data.get("name"))
    kind = data.get("kind") or ("rule" if data.get("rules") is not None else "manual")
    if kind not in ("manual", "rule"):
        raise Invalid("kind must be manual or rule", "kind")
    if kind == "rule" and data.get("client_ids"):
        raise Invalid("a rule segment's clients are chosen by its rules", "client_ids")
    if kind == "manual" and data.get("rules") is not None:
        raise Invalid("a manual segment has no rules", "rules")
    rules = data.get("rules") if kind == "rule" else None
    if kind == "rule":
        await compile_for(s, rules)
    ids = await _check_clients(s, actor, data.get("client_ids") or [])
    await _unique_name(s, name, None)
    seg = Segment(
        name=name,
        description=str(data.get("description") or "")[:2000],
        kind=kind,
        rules=rules,
        created_by=actor.user_id,
        created_at=utcnow(),
        updated_at=utcnow(),
    )
    s.add(seg)
    await s.flush()
    await _add_members(s, seg.id, ids)
    await audit(
        s, actor, "create", "segment", seg.id, {"name": name, "kind": kind, "clients": len(ids)}
    )
    return seg


async def update_segment(
    s: AsyncSession, actor: Actor, segment_id: int, changes: dict[str, Any]
) -> Segment:
    """name, description, rules (rule segments); client_ids (replace), add_client_ids,
    remove_client_ids (manual segments).  Clients entering a managed segment get one of
    its managers as their owner."""
    _require_editor(actor)
    seg = await get_segment(s, segment_id)
    managed = bool((await _managers(s, [seg.id]))[seg.id])
    before: set[int] = set()
    if "name" in changes:
        name = _clean_name(changes["name"])
        await _unique_name(s, name, seg.id)
        seg.name = name
    if "description" in changes:
        seg.description = str(changes["description"] or "")[:2000]
    member_keys = ("client_ids", "add_client_ids", "remove_client_ids")
    if seg.kind == "rule":
        for key in member_keys:
            if changes.get(key):
                raise Invalid("a rule segment's clients are chosen by its rules", key)
        if "rules" in changes:
            await compile_for(s, changes["rules"])
            if managed:
                before = set(await _member_ids(s, seg))
            seg.rules = changes["rules"]
    else:
        if changes.get("rules") is not None:
            raise Invalid("a manual segment has no rules", "rules")
        added: list[int] = []
        if "client_ids" in changes:
            ids = await _check_clients(s, actor, changes["client_ids"] or [])
            keep = set(ids)
            old = set(
                await s.scalars(
                    select(SegmentClient.client_id).where(SegmentClient.segment_id == seg.id)
                )
            )
            gone = sorted(old - keep)
            for i in range(0, len(gone), 1000):
                await s.execute(
                    delete(SegmentClient).where(
                        SegmentClient.segment_id == seg.id,
                        SegmentClient.client_id.in_(gone[i : i + 1000]),
                    )
                )
            added += await _add_members(s, seg.id, ids)
        if changes.get("add_client_ids"):
            ids = await _check_clients(s, actor, changes["add_client_ids"], "add_client_ids")
            added += await _add_members(s, seg.id, ids)
        if changes.get("remove_client_ids"):
            ids = await _check_clients(s, actor, changes["remove_client_ids"], "remove_client_ids")
            for i in range(0, len(ids), 1000):
                await s.execute(
                    delete(SegmentClient).where(
                        SegmentClient.segment_id == seg.id,
                        SegmentClient.client_id.in_(ids[i : i + 1000]),
                    )
                )
        if managed and added:
            await _give_owners(s, actor, seg, added, only_unowned=False)
    seg.updated_at = utcnow()
    await s.flush()
    if managed and seg.kind == "rule" and "rules" in changes:
        entering = [c for c in await _member_ids(s, seg) if c not in before]
        await _give_owners(s, actor, seg, entering[:MAX_CLIENT_IDS], only_unowned=False)
    await audit(s, actor, "update", "segment", seg.id, _audit_changes(changes))
    return seg


def _audit_changes(changes: dict[str, Any]) -> dict[str, Any]:
    out = dict(changes)
    for key in ("client_ids", "add_client_ids", "remove_client_ids"):
        if isinstance(out.get(key), list):
            out[key] = len(out[key])
    return out


async def delete_segment(s: AsyncSession, actor: Actor, segment_id: int) -> None:
    _require_editor(actor)
    seg = await get_segment(s, segment_id)
    await s.execute(update(Client).where(Client.segment_id == seg.id).values(segment_id=None))
    await s.execute(delete(SegmentClient).where(SegmentClient.segment_id == seg.id))
    await s.execute(delete(SegmentManager).where(SegmentManager.segment_id == seg.id))
    await s.execute(delete(RoutingPointer).where(RoutingPointer.key == f"{POINTER_PREFIX}{seg.id}"))
    await s.delete(seg)
    await audit(s, actor, "delete", "segment", segment_id, {"name": seg.name})


async def _member_ids(s: AsyncSession, seg: Segment) -> list[int]:
    cond = _condition(seg, await _custom_types(s), _dialect(s))
    if cond is None:
        return []
    return list(await s.scalars(select(Client.id).where(cond).order_by(Client.id)))


# -- managers --------------------------------------------------------------------------------
async def set_managers(
    s: AsyncSession, actor: Actor, segment_id: int, user_ids: Any, strategy: str
) -> tuple[Segment, RebalancePlan]:
    """Replace the segment's managers; its clients without an owner get one of them: at
    once when they are few (up to :data:`INLINE_ASSIGN`), else the returned plan (the
    owners chosen, the pointer moved) is for the caller to apply in batches
    (:func:`apply_rebalance_batch` with ``only_unowned``)."""
    _require_editor(actor)
    seg = await get_segment(s, segment_id)
    if strategy not in STRATEGIES:
        raise Invalid(f"strategy must be one of {', '.join(STRATEGIES)}", "strategy")
    if not isinstance(user_ids, list) or len(user_ids) > 500:
        raise Invalid("user_ids must be a list of up to 500 user ids", "user_ids")
    ids: list[int] = []
    for i, uid in enumerate(user_ids):
        if isinstance(uid, bool) or not isinstance(uid, int):
            raise Invalid(f"user_ids[{i}] must be a user id", f"user_ids[{i}]")
        user = await s.get(User, uid)
        if user is None:
            raise Invalid(f"user {uid} does not exist", f"user_ids[{i}]")
        if not can_assign_to(actor, user):
            if not user.active:
                raise Invalid(f"user {uid} is not active", f"user_ids[{i}]")
            raise Forbidden(f"you may not assign work to user {uid}", f"user_ids[{i}]")
        if uid not in ids:
            ids.append(uid)
    await s.execute(delete(SegmentManager).where(SegmentManager.segment_id == seg.id))
    for uid in ids:
        s.add(SegmentManager(segment_id=seg.id, user_id=uid))
    seg.strategy = strategy
    seg.updated_at = utcnow()
    await s.flush()
    await audit(
        s, actor, "set_managers", "segment", seg.id, {"user_ids": ids, "strategy": strategy}
    )
    plan = RebalancePlan(seg.id, 0, [])
    cond = _condition(seg, await _custom_types(s), _dialect(s)) if ids else None
    if cond is not None:
        unowned = list(
            await s.scalars(
                select(Client.id).where(cond, Client.owner_id.is_(None)).order_by(Client.id)
            )
        )
        if len(unowned) <= INLINE_ASSIGN:
            await _give_owners(s, actor, seg, unowned, only_unowned=True)
        else:
            chooser = await _chooser(s, seg)
            if chooser is not None:
                plan = RebalancePlan(seg.id, len(unowned), [(c, chooser.next()) for c in unowned])
                await _save_pointer(s, seg, chooser)
    return seg, plan


class _Chooser:
    """Picks a manager of a segment for one client after another: round robin (a
    pointer row ``segment:<id>``, moved in the caller's transaction) or least loaded
    (the fewest clients owned, ties by id)."""

    def __init__(self, seg: Segment, users: list[int], loads: dict[int, int], last: int | None):
        self.seg = seg
        self.users = users
        self.loads = loads
        self.last = last

    def next(self) -> int:
        if self.seg.strategy == "least_loaded":
            chosen = min(self.users, key=lambda u: (self.loads.get(u, 0), u))
        else:
            last = self.last or 0
            chosen = next((u for u in self.users if u > last), self.users[0])
        self.last = chosen
        self.loads[chosen] = self.loads.get(chosen, 0) + 1
        return chosen


async def _chooser(s: AsyncSession, seg: Segment) -> _Chooser | None:
    rows = await s.execute(
        select(User.id)
        .join(SegmentManager, SegmentManager.user_id == User.id)
        .where(SegmentManager.segment_id == seg.id, User.active.is_(True))
        .order_by(User.id)
    )
    users = [int(r[0]) for r in rows]
    if not users:
        return None
    loads: dict[int, int] = {}
    if seg.strategy == "least_loaded":
        for owner, n in await s.execute(
            select(Client.owner_id, func.count())
            .where(Client.owner_id.in_(users))
            .group_by(Client.owner_id)
        ):
            if owner is not None:
                loads[int(owner)] = int(n)
    ptr = await s.get(RoutingPointer, f"{POINTER_PREFIX}{seg.id}")
    return _Chooser(seg, users, loads, int(ptr.last_user_id) if ptr and ptr.last_user_id else None)


async def _save_pointer(s: AsyncSession, seg: Segment, chooser: _Chooser) -> None:
    key = f"{POINTER_PREFIX}{seg.id}"
    ptr = await s.get(RoutingPointer, key)
    if ptr is None:
        s.add(RoutingPointer(key=key, last_user_id=chooser.last, updated_at=utcnow()))
    else:
        ptr.last_user_id = chooser.last
        ptr.updated_at = utcnow()


async def _give_owners(
    s: AsyncSession,
    actor: Actor | None,
    seg: Segment,
    client_ids: list[int],
    *,
    only_unowned: bool,
) -> dict[int, int]:
    """Give each client (unowned, or not owned by one of the segment's managers) a
    manager of ``seg``; one audit entry per client changed.  Returns {client: owner}."""
    chooser = await _chooser(s, seg)
    if chooser is None or not client_ids:
        return {}
    managers = set(chooser.users)
    changed: dict[int, int] = {}
    for i in range(0, len(client_ids), 1000):
        rows = await s.execute(
            select(Client.id, Client.owner_id).where(Client.id.in_(client_ids[i : i + 1000]))
        )
        for cid, owner in sorted(rows):
            if owner is not None and (only_unowned or owner in managers):
                continue
            new = chooser.next()
            changed[int(cid)] = new
    if not changed:
        return {}
    await _write_owners(s, actor, seg, changed, "segment_assign")
    await _save_pointer(s, seg, chooser)
    return changed


async def _write_owners(
    s: AsyncSession, actor: Actor | None, seg: Segment, owners: dict[int, int], action: str
) -> None:
    if not owners:
        return
    olds = {}
    ids = list(owners)
    for i in range(0, len(ids), 1000):
        for cid, owner in await s.execute(
            select(Client.id, Client.owner_id).where(Client.id.in_(ids[i : i + 1000]))
        ):
            olds[int(cid)] = owner
    now = utcnow()
    await s.execute(
        update(Client),
        [{"id": cid, "owner_id": owner, "updated_at": now} for cid, owner in owners.items()],
    )
    await s.execute(
        insert(AuditEntry),
        [
            {
                "at": now,
                "user_id": actor.user_id if actor else None,
                "action": action,
                "entity": "client",
                "entity_id": cid,
                "details": {"segment_id": seg.id, "owner_id": owner, "was": olds.get(cid)},
            }
            for cid, owner in owners.items()
        ],
    )
    # Objects of these clients already in the session must not write back stale owners.
    for obj in list(s.identity_map.values()):
        if isinstance(obj, Client) and obj.id in owners:
            obj.owner_id = owners[obj.id]


async def managed_segments_of(s: AsyncSession, client_id: int) -> list[int]:
    """Ids of the segments with managers that hold the client (cheap when none has)."""
    has_any = await s.scalar(select(SegmentManager.segment_id).limit(1))
    if has_any is None:
        return []
    found = await segments_of(s, [client_id], managed_only=True)
    return [sid for sid, _ in found[client_id]]


async def assign_entering(
    s: AsyncSession,
    actor: Actor | None,
    client: Client,
    before: Iterable[int] = (),
    *,
    owner_given: bool = False,
) -> int | None:
    """After a client was created or changed: when it is in a segment with managers that
    it was not in (``before``), or has no owner, and its owner was not chosen explicitly
    (``owner_given``), one of that segment's managers becomes its owner (unless the owner
    already is one of them).  Returns the new owner's id or None."""
    if owner_given and client.owner_id is not None:
        return None
    now_in = await managed_segments_of(s, client.id)
    if not now_in:
        return None
    old = set(before)
    entered = [sid for sid in now_in if sid not in old]
    candidates = entered or (now_in if client.owner_id is None else [])
    for sid in sorted(candidates):
        seg = await s.get(Segment, sid)
        if seg is None:
            continue
        given = await _give_owners(s, actor, seg, [client.id], only_unowned=False)
        if given:
            return given[client.id]
        return None  # already owned by one of its managers
    return None


# -- rebalance -------------------------------------------------------------------------------
@dataclass
class RebalancePlan:
    """Who gets which client: the moves only (clients staying with their manager are
    not touched); ``total`` clients in the segment."""

    segment_id: int
    total: int
    moves: list[tuple[int, int]]  # (client_id, new owner)


async def plan_rebalance(s: AsyncSession, actor: Actor, segment_id: int) -> RebalancePlan:
    """An even share of the segment's clients among its active managers with the fewest
    moves: each manager keeps up to ``ceil(total / managers)`` of the clients they own;
    the others go to the managers with the fewest, in client id order."""
    _require_editor(actor)
    seg = await get_segment(s, segment_id)
    chooser = await _chooser(s, seg)
    if chooser is None:
        raise Invalid("the segment has no active managers", "user_ids")
    cond = _condition(seg, await _custom_types(s), _dialect(s))
    if cond is None:
        return RebalancePlan(seg.id, 0, [])
    rows = [
        (int(r[0]), r[1])
        for r in await s.execute(select(Client.id, Client.owner_id).where(cond).order_by(Client.id))
    ]
    users = chooser.users
    quota = math.ceil(len(rows) / len(users)) if rows else 0
    kept: dict[int, int] = dict.fromkeys(users, 0)
    movers: list[int] = []
    for cid, owner in rows:
        if owner in kept and kept[owner] < quota:
            kept[owner] += 1
        else:
            movers.append(cid)
    moves = []
    for cid in movers:
        target = min(users, key=lambda u: (kept[u], u))
        kept[target] += 1
        moves.append((cid, target))
    return RebalancePlan(seg.id, len(rows), moves)


async def apply_rebalance_batch(
    s: AsyncSession,
    actor: Actor,
    segment_id: int,
    moves: list[tuple[int, int]],
    *,
    only_unowned: bool = False,
) -> int:
    """One short transaction's worth of a rebalance (or of the first owners of a segment's
    unowned clients: ``only_unowned`` skips those given an owner meanwhile): owners
    written, one audit entry per client.  Returns how many were written."""
    seg = await get_segment(s, segment_id)
    owners = dict(moves)
    if only_unowned and owners:
        taken = set(
            await s.scalars(
                select(Client.id).where(Client.id.in_(list(owners)), Client.owner_id.is_not(None))
            )
        )
        owners = {c: u for c, u in owners.items() if c not in taken}
    action = "segment_assign" if only_unowned else "segment_rebalance"
    await _write_owners(s, actor, seg, owners, action)
    return len(owners)


async def segment_owner(s: AsyncSession, client: Client) -> tuple[int, str] | None:
    """For a new lead of a known client: ``(owner id, segment name)`` when the client is in
    a segment with managers and its owner is (or, having none, now becomes) one of them;
    None otherwise (the routing decides).  Cheap when no segment has managers."""
    seg_ids = await managed_segments_of(s, client.id)
    if not seg_ids:
        return None
    if client.owner_id is None:
        await assign_entering(s, None, client)
    if client.owner_id is None:
        return None
    for sid in sorted(seg_ids):
        seg = await s.get(Segment, sid)
        mgr = await s.scalar(
            select(User.id)
            .join(SegmentManager, SegmentManager.user_id == User.id)
            .where(
                SegmentManager.segment_id == sid,
                User.id == client.owner_id,
                User.active.is_(True),
            )
        )
        if seg is not None and mgr is not None:
            return int(mgr), seg.name
    return None
