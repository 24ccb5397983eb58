"""Pipelines (sales funnels): ordered stages with probabilities and the fields required to
enter them, and a loss-reason catalogue per pipeline.  Everyone reads them; only admins
change them.

Every pipeline has its open stages in order, then one ``won`` and one ``lost`` stage
(their codes are ``won`` and ``lost`` in every pipeline, so reports that ask for won
deals need not know the pipeline).  A deal's ``stage`` holds a stage code of its
pipeline; ``deals.pipeline_id`` NULL (rows bulk-loaded around the services) reads as
the default pipeline.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.access import Actor
from crm_core.models import Deal, LossReason, Pipeline, PipelineStage
from crm_core.services.common import Conflict, Forbidden, Invalid, NotFound, audit
from crm_core.stages import STAGES

__all__ = [
    "REQUIRED_FIELDS",
    "Funnel",
    "create_pipeline",
    "default_pipeline",
    "delete_pipeline",
    "in_pipeline",
    "list_pipelines",
    "load_funnel",
    "pipeline_dict",
    "update_pipeline",
]

# Fields a stage may require before a deal enters it.
REQUIRED_FIELDS = ("amount", "items")
CODE_RE = re.compile(r"^[a-z][a-z0-9_]{0,29}$")
DEFAULT_PROBABILITY = {
    "new": 10,
    "qualification": 20,
    "proposal": 40,
    "negotiation": 60,
    "contract": 80,
    "won": 100,
}
DEFAULT_REASONS = (
    ("Дорого", "Too expensive"),
    ("Выбрали конкурента", "Chose a competitor"),
    ("Нет бюджета", "No budget"),
    ("Не выходит на связь", "Cannot be reached"),
    ("Потребность отпала", "No longer needed"),
    ("Другое", "Other"),
)
WON = ("won", "Успешно закрыта", "Won", 100)
LOST = ("lost", "Проиграна", "Lost", 0)


@dataclass(frozen=True, slots=True)
class Funnel:
    """A pipeline with its stages (in order) and its loss reasons, as read at once."""

    pipeline: Pipeline
    stages: tuple[PipelineStage, ...]
    reasons: tuple[LossReason, ...]

    @property
    def id(self) -> int:
        return self.pipeline.id

    def stage(self, code: str) -> PipelineStage | None:
        return next((st for st in self.stages if st.code == code), None)

    @property
    def open_codes(self) -> list[str]:
        return [st.code for st in self.stages if st.kind == "open"]

    def label(self, code: str, locale: str = "ru") -> str:
        st = self.stage(code)
        if st is None:
            return code
        return (st.name_en or st.name) if locale == "en" else st.name

    def required_for(self, code: str) -> list[str]:
        """The fields a deal needs to enter ``code``: those of that stage and of every
        open stage before it (a deal cannot skip past "Договор" without an amount)."""
        target = self.stage(code)
        if target is None or target.kind == "lost":
            return []
        out: list[str] = []
        for st in self.stages:
            if st.kind == "lost" or st.position > target.position:
                continue
            out += [f for f in st.required_fields or [] if f not in out]
        return out


async def default_pipeline(s: AsyncSession) -> Pipeline:
    """The default pipeline; made from ``crm_core.stages`` if the base has none (the
    migration makes it; a base emptied by TRUNCATE has lost it)."""
    p = await s.scalar(
        select(Pipeline).where(Pipeline.is_default.is_(True)).order_by(Pipeline.id).limit(1)
    )
    if p is not None:
        return p
    p = await s.scalar(select(Pipeline).order_by(Pipeline.position, Pipeline.id).limit(1))
    if p is not None:
        return p
    p = Pipeline(name="Продажи", name_en="Sales", is_default=True, position=0)
    s.add(p)
    await s.flush()
    for i, st in enumerate(STAGES):
        kind = "won" if st.code == "won" else "lost" if st.code == "lost" else "open"
        s.add(
            PipelineStage(
                pipeline_id=p.id,
                code=st.code,
                name=st.ru,
                name_en=st.en,
                position=i,
                probability=DEFAULT_PROBABILITY.get(st.code, 0),
                kind=kind,
                required_fields=["amount"] if st.code == "contract" else [],
            )
        )
    _add_reasons(s, p.id, [{"name": ru, "name_en": en} for ru, en in DEFAULT_REASONS])
    await s.flush()
    return p


def in_pipeline(pipeline: Pipeline) -> ColumnElement[bool]:
    """Deals of ``pipeline`` (NULL counts as the default one)."""
    if pipeline.is_default:
        return or_(Deal.pipeline_id == pipeline.id, Deal.pipeline_id.is_(None))
    return Deal.pipeline_id == pipeline.id


async def load_funnel(s: AsyncSession, pipeline_id: int | None = None) -> Funnel:
    """The pipeline ``pipeline_id`` (the default one if None) with stages and reasons."""
    if pipeline_id is None:
        p = await default_pipeline(s)
    else:
        found = await s.get(Pipeline, pipeline_id)
        if found is None:
            raise NotFound(f"pipeline {pipeline_id} not found", "pipeline_id")
        p = found
    stages = await s.scalars(
        select(PipelineStage)
        .where(PipelineStage.pipeline_id == p.id)
        .order_by(PipelineStage.position, PipelineStage.id)
    )
    reasons = await s.scalars(
        select(LossReason)
        .where(LossReason.pipeline_id == p.id)
        .order_by(LossReason.position, LossReason.id)
    )
    return Funnel(p, tuple(stages), tuple(reasons))


def _stage_dict(st: PipelineStage) -> dict[str, Any]:
    return {
        "id": st.id,
        "code": st.code,
        "name": st.name,
        "name_en": st.name_en or st.name,
        "position": st.position,
        "probability": st.probability,
        "kind": st.kind,
        "closed": st.kind != "open",
        "required_fields": list(st.required_fields or []),
    }


def _reason_dict(r: LossReason) -> dict[str, Any]:
    return {
        "id": r.id,
        "name": r.name,
        "name_en": r.name_en or r.name,
        "position": r.position,
        "active": r.active,
    }


def pipeline_dict(f: Funnel) -> dict[str, Any]:
    p = f.pipeline
    return {
        "id": p.id,
        "name": p.name,
        "name_en": p.name_en or p.name,
        "is_default": p.is_default,
        "position": p.position,
        "stages": [_stage_dict(st) for st in f.stages],
        "loss_reasons": [_reason_dict(r) for r in f.reasons],
    }


async def list_pipelines(s: AsyncSession) -> list[dict[str, Any]]:
    await default_pipeline(s)
    ids = list(await s.scalars(select(Pipeline.id).order_by(Pipeline.position, Pipeline.id)))
    return [pipeline_dict(await load_funnel(s, pid)) for pid in ids]


def _admin(actor: Actor) -> None:
    if not actor.is_admin:
        raise Forbidden("only admins may do this")


def _text(value: Any, field: str, limit: int, *, required: bool = True) -> str | None:
    text = (value or "").strip() if isinstance(value, str) or value is None else None
    if text is None:
        raise Invalid(f"{field} must be text", field)
    if not text:
        if required:
            raise Invalid(f"{field} must not be empty", field)
        return None
    if len(text) > limit:
        raise Invalid(f"{field} must be at most {limit} characters", field)
    return text


def _stage_spec(raw: dict[str, Any], i: int, used: set[str]) -> dict[str, Any]:
    where = f"stages.{i}"
    kind = raw.get("kind") or "open"
    if kind not in ("open", "won", "lost"):
        raise Invalid(f"{where}.kind must be open, won or lost", f"{where}.kind")
    code = raw.get("code")
    if kind != "open":
        if code not in (None, kind):
            raise Invalid(f"{where}.code of the {kind} stage is {kind!r}", f"{where}.code")
        code = kind
    elif code is None:
        n = len(used) + 1
        while f"stage_{n}" in used:
            n += 1
        code = f"stage_{n}"
    elif not isinstance(code, str) or not CODE_RE.match(code) or code in ("won", "lost"):
        raise Invalid(
            f"{where}.code must be latin letters, digits or _ (not won or lost)", f"{where}.code"
        )
    if code in used:
        raise Invalid(f"{where}.code {code!r} is used twice", f"{where}.code")
    used.add(code)
    probability = raw.get("probability")
    if probability is None:
        probability = {"won": 100, "lost": 0}.get(kind, 0)
    if type(probability) is not int or not 0 <= probability <= 100:
        raise Invalid(f"{where}.probability must be 0..100", f"{where}.probability")
    required = raw.get("required_fields") or []
    bad = [f for f in required if f not in REQUIRED_FIELDS]
    if bad or not isinstance(required, list):
        raise Invalid(
            f"{where}.required_fields may name only {', '.join(REQUIRED_FIELDS)}",
            f"{where}.required_fields",
        )
    return {
        "id": raw.get("id"),
        "code": code,
        "name": _text(raw.get("name"), f"{where}.name", 200),
        "name_en": _text(raw.get("name_en"), f"{where}.name_en", 200, required=False),
        "probability": probability,
        "kind": kind,
        "required_fields": list(dict.fromkeys(required)),
    }


def _stage_specs(raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
    used: set[str] = set()
    specs = [_stage_spec(r, i, used) for i, r in enumerate(raw)]
    opened = [x for x in specs if x["kind"] == "open"]
    if not opened:
        raise Invalid("stages must hold at least one open stage", "stages")
    out = list(opened)
    for kind, (code, ru, en, prob) in (("won", WON), ("lost", LOST)):
        given = [x for x in specs if x["kind"] == kind]
        out.append(
            given[0]
            if given
            else {
                "id": None,
                "code": code,
                "name": ru,
                "name_en": en,
                "probability": prob,
                "kind": kind,
                "required_fields": [],
            }
        )
    return out


def _reason_specs(raw: list[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, r in enumerate(raw):
        item = {"name": r} if isinstance(r, str) else dict(r)
        where = f"loss_reasons.{i}"
        name = _text(item.get("name"), f"{where}.name", 300)
        assert name is not None
        if name.casefold() in seen:
            raise Invalid(f"{where}.name {name!r} is used twice", f"{where}.name")
        seen.add(name.casefold())
        active = item.get("active", True)
        out.append(
            {
                "id": item.get("id"),
                "name": name,
                "name_en": _text(item.get("name_en"), f"{where}.name_en", 300, required=False),
                "active": bool(active),
            }
        )
    return out


def _add_reasons(s: AsyncSession, pipeline_id: int, specs: list[dict[str, Any]]) -> None:
    for i, r in enumerate(specs):
        s.add(
            LossReason(
                pipeline_id=pipeline_id,
                name=r["name"],
                name_en=r.get("name_en"),
                position=i,
                active=r.get("active", True),
            )
        )


async def _unique_name(s: AsyncSession, name: str, own_id: int | None = None) -> None:
    q = select(Pipeline.id).where(func.lower(Pipeline.name) == name.lower())
    if own_id is not None:
        q = q.where(Pipeline.id != own_id)
    if await s.scalar(q) is not None:
        raise Conflict(f"a pipeline named {name!r} exists", "name")


async def _only_default(s: AsyncSession, keep: Pipeline) -> None:
    await s.execute(update(Pipeline).where(Pipeline.id != keep.id).values(is_default=False))
    keep.is_default = True


async def create_pipeline(s: AsyncSession, actor: Actor, data: dict[str, Any]) -> Funnel:
    """``data``: name, name_en, is_default, position, stages [{code, name, name_en,
    probability, required_fields, kind}], loss_reasons [{name, name_en} or a name]."""
    _admin(actor)
    name = _text(data.get("name"), "name", 200)
    assert name is not None
    await _unique_name(s, name)
    stages = _stage_specs(list(data.get("stages") or []))
    reasons = _reason_specs(list(data.get("loss_reasons") or []))
    if not reasons:
        reasons = [{"name": "Другое", "name_en": "Other", "active": True}]
    await default_pipeline(s)  # so that the first pipeline made by hand is not the default
    position = data.get("position")
    if position is None:
        position = int(await s.scalar(select(func.max(Pipeline.position))) or 0) + 1
    p = Pipeline(
        name=name,
        name_en=_text(data.get("name_en"), "name_en", 200, required=False),
        is_default=False,
        position=position,
    )
    s.add(p)
    await s.flush()
    if data.get("is_default"):
        await _only_default(s, p)
    for i, st in enumerate(stages):
        fields = {k: v for k, v in st.items() if k != "id"}
        s.add(PipelineStage(pipeline_id=p.id, position=i, **fields))
    _add_reasons(s, p.id, reasons)
    await s.flush()
    await audit(s, actor, "create", "pipeline", p.id, {"name": name})
    return await load_funnel(s, p.id)


async def update_pipeline(
    s: AsyncSession, actor: Actor, pipeline_id: int, changes: dict[str, Any]
) -> Funnel:
    """Name, default, position; ``stages`` is the whole new list (a stage is matched by
    ``id`` or ``code``; a dropped stage must hold no deal); ``loss_reasons`` too (a
    dropped reason is archived: ``active`` false)."""
    _admin(actor)
    f = await load_funnel(s, pipeline_id)
    p = f.pipeline
    if "name" in changes:
        name = _text(changes["name"], "name", 200)
        assert name is not None
        await _unique_name(s, name, p.id)
        p.name = name
    if "name_en" in changes:
        p.name_en = _text(changes["name_en"], "name_en", 200, required=False)
    if changes.get("position") is not None:
        p.position = changes["position"]
    if changes.get("is_default") is True:
        await _only_default(s, p)
    elif changes.get("is_default") is False and p.is_default:
        raise Invalid("make another pipeline the default instead", "is_default")
    if changes.get("stages") is not None:
        await _replace_stages(s, f, _stage_specs(list(changes["stages"])))
    if changes.get("loss_reasons") is not None:
        await _replace_reasons(s, f, _reason_specs(list(changes["loss_reasons"])))
    await s.flush()
    pid = p.id
    await audit(s, actor, "update", "pipeline", pid, changes)
    s.expire_all()
    return await load_funnel(s, pid)


async def _replace_stages(s: AsyncSession, f: Funnel, specs: list[dict[str, Any]]) -> None:
    by_id = {st.id: st for st in f.stages}
    by_code = {st.code: st for st in f.stages}
    kept: set[int] = set()
    rows: list[tuple[PipelineStage | None, dict[str, Any]]] = []
    for spec in specs:
        row = by_id.get(spec["id"]) if spec["id"] is not None else by_code.get(spec["code"])
        if spec["id"] is not None and row is None:
            raise Invalid(f"stage {spec['id']} is not in this pipeline", "stages")
        if row is not None:
            if row.kind != spec["kind"]:
                raise Invalid(f"stage {row.code!r} cannot change its kind", "stages")
            kept.add(row.id)
        rows.append((row, spec))
    for st in f.stages:
        if st.id in kept:
            continue
        used = await s.scalar(
            select(func.count())
            .select_from(Deal)
            .where(in_pipeline(f.pipeline), Deal.stage == st.code)
        )
        if used:
            raise Conflict(f"stage {st.code!r} holds {used} deals: move them first", "stages")
        await s.delete(st)
    await s.flush()
    for i, (row, spec) in enumerate(rows):
        if row is None:
            if spec["code"] in by_code and by_code[spec["code"]].id not in kept:
                raise Invalid(f"stage code {spec['code']!r} was just removed", "stages")
            s.add(
                PipelineStage(
                    pipeline_id=f.id,
                    position=i,
                    **{k: v for k, v in spec.items() if k != "id"},
                )
            )
        else:
            row.position = i
            row.name = spec["name"]
            row.name_en = spec["name_en"]
            row.probability = spec["probability"]
            row.required_fields = spec["required_fields"]


async def _replace_reasons(s: AsyncSession, f: Funnel, specs: list[dict[str, Any]]) -> None:
    by_id = {r.id: r for r in f.reasons}
    by_name = {r.name.casefold(): r for r in f.reasons}
    kept: set[int] = set()
    for i, spec in enumerate(specs):
        key = spec["name"].casefold()
        row = by_id.get(spec["id"]) if spec["id"] is not None else by_name.get(key)
        if spec["id"] is not None and row is None:
            raise Invalid(f"loss reason {spec['id']} is not in this pipeline", "loss_reasons")
        if row is None:
            row = LossReason(pipeline_id=f.id, name=spec["name"])
            s.add(row)
        row.name = spec["name"]
        row.name_en = spec["name_en"]
        row.position = i
        row.active = spec["active"]
        if row.id is not None:
            kept.add(row.id)
    for r in f.reasons:
        if r.id not in kept:
            r.active = False
    await s.flush()
    if not await s.scalar(
        select(func.count())
        .select_from(LossReason)
        .where(LossReason.pipeline_id == f.id, LossReason.active.is_(True))
    ):
        raise Invalid("loss_reasons must keep at least one active reason", "loss_reasons")


async def delete_pipeline(s: AsyncSession, actor: Actor, pipeline_id: int) -> None:
    _admin(actor)
    f = await load_funnel(s, pipeline_id)
    if f.pipeline.is_default:
        raise Conflict("the default pipeline cannot be deleted", "id")
    used = await s.scalar(select(func.count()).select_from(Deal).where(in_pipeline(f.pipeline)))
    if used:
        raise Conflict(f"pipeline {pipeline_id} holds {used} deals: move them first", "id")
    await s.delete(f.pipeline)
    await s.flush()
    await audit(s, actor, "delete", "pipeline", pipeline_id, {"name": f.pipeline.name})
