"""Owner loads and the users version, read from ``routing_counters`` (kept by the
triggers of migration 0007_scale_counters in the writer's own transaction), so an
assignment reads one small table instead of recounting open leads and tasks."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.models import RoutingCounter

__all__ = ["USERS_KEY", "Counters", "fill_counters_sql", "parse_counters", "read_counters"]

USERS_KEY = "users"
LOAD_PREFIX = "load:"


Counters = tuple[int, dict[int, int]]  # (users version, open leads + tasks per user id)


def parse_counters(rows: Iterable[tuple[str, int]]) -> Counters:
    """``routing_counters`` rows (key, n) as (users version, loads per user id)."""
    version = 0
    loads: dict[int, int] = {}
    for key, n in rows:
        if key == USERS_KEY:
            version = int(n)
        elif key.startswith(LOAD_PREFIX):
            loads[int(key[len(LOAD_PREFIX) :])] = int(n)
    return version, loads


async def read_counters(s: AsyncSession) -> Counters:
    rows = await s.execute(select(RoutingCounter.key, RoutingCounter.n))
    return parse_counters((key, n) for key, n in rows)


def fill_counters_sql(*, postgres: bool) -> list[str]:
    """Recount every owner's load from the rows (after a bulk load that bypassed the
    triggers) and move the users version on."""
    del postgres  # the same SQL on both databases
    parts = (
        "SELECT owner_id AS u, count(*) AS c FROM leads "
        "WHERE status IN ('new', 'in_progress') AND owner_id IS NOT NULL GROUP BY owner_id "
        "UNION ALL SELECT assignee_id, count(*) FROM tasks "
        "WHERE status = 'open' AND assignee_id IS NOT NULL GROUP BY assignee_id"
    )
    return [
        f"DELETE FROM routing_counters WHERE key LIKE '{LOAD_PREFIX}%'",
        f"INSERT INTO routing_counters (key, n) SELECT '{LOAD_PREFIX}' || u, sum(c) "
        f"FROM ({parts}) AS x GROUP BY u",
        f"INSERT INTO routing_counters (key, n) VALUES ('{USERS_KEY}', 1) "
        "ON CONFLICT (key) DO UPDATE SET n = routing_counters.n + 1",
    ]
