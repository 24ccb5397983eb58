"""Segments: named groups of clients (retail, distributors, banks, ...)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.models import Segment
from crm_core.services.common import Invalid

__all__ = ["list_segments", "segment_id_for", "segment_names"]


async def segment_id_for(s: AsyncSession, name: str | None) -> int | None:
    """The id of segment ``name``, created on first use; None clears the segment."""
    if name is None:
        return None
    name = name.strip()
    if not name:
        return None
    if len(name) > 100:
        raise Invalid("segment is longer than 100 characters", "segment")
    seg_id = await s.scalar(select(Segment.id).where(Segment.name == name))
    if seg_id is not None:
        return int(seg_id)
    seg = Segment(name=name)
    s.add(seg)
    await s.flush()
    return seg.id


async def segment_names(s: AsyncSession, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = await s.execute(select(Segment.id, Segment.name).where(Segment.id.in_(ids)))
    return {r.id: r.name for r in rows}


async def list_segments(s: AsyncSession) -> list[Segment]:
    return list(await s.scalars(select(Segment).order_by(Segment.name)))
