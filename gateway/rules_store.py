"""The routing rules in the database, shared by every hub process.

The newest row of ``routing_rules_versions`` is in force everywhere: each process checks
for a newer version every ``poll_seconds`` (2 s), so ``PUT /api/v1/rules`` on one process
takes effect in all of them within seconds, and every version stays as history.

The rules file (``routing_rules_path``) is the bootstrap and an export:
- at the first start (no version yet) the file becomes version 1;
- a later edit of the file on disk (its size or time changes) is checked and, when valid
  and different from the version in force, saved as a new version — so an operator's
  ``vim routing.yaml`` keeps working; an invalid edit is logged and changes nothing;
- ``PUT /rules`` also writes the file (atomically), as an export of what is in force.
A process that starts later does not import its (possibly stale) file over newer rules.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import desc, select, text

from crm_core.db import Database
from crm_core.models import RoutingRulesVersion
from routing_rules import RulesError, RuleSet, RulesWatcher, parse_rules

__all__ = ["RulesStore", "version_dict"]

log = structlog.get_logger("crmhub.routing")
_LOCK = 727_016  # advisory lock: one writer of a new version at a time (PostgreSQL)


def version_dict(v: RoutingRulesVersion, *, with_text: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": v.id,
        "digest": v.digest,
        "source": v.source,
        "created_by": v.created_by,
        "created_at": v.created_at.isoformat() if v.created_at else None,
    }
    if with_text:
        out["text"] = v.text
    return out


class RulesStore:
    def __init__(
        self, db: Database, watcher: RulesWatcher, path: str | None, *, poll_seconds: float = 2.0
    ) -> None:
        self.db = db
        self.watcher = watcher
        self.path = Path(path) if path else None
        self.poll_seconds = poll_seconds
        self.version_id: int | None = None  # the version installed in this process
        self._stamp: tuple[int, int] | None = self._file_stamp()

    def _file_stamp(self) -> tuple[int, int] | None:
        if self.path is None:
            return None
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    async def latest(self) -> RoutingRulesVersion | None:
        async with self.db.sessions() as s:
            return await s.scalar(
                select(RoutingRulesVersion).order_by(desc(RoutingRulesVersion.id)).limit(1)
            )

    async def history(self, limit: int = 100) -> list[RoutingRulesVersion]:
        async with self.db.sessions() as s:
            return list(
                await s.scalars(
                    select(RoutingRulesVersion).order_by(desc(RoutingRulesVersion.id)).limit(limit)
                )
            )

    async def get(self, version_id: int) -> RoutingRulesVersion | None:
        async with self.db.sessions() as s:
            return await s.get(RoutingRulesVersion, version_id)

    def _install(self, version_id: int, rules: RuleSet) -> None:
        self.version_id = version_id
        self.watcher.current = rules
        if self.watcher.on_reload is not None:
            self.watcher.on_reload(rules)

    async def save(
        self,
        text_: str,
        rules: RuleSet,
        *,
        source: str,
        user_id: int | None = None,
        only_if_new: bool = False,
    ) -> RoutingRulesVersion | None:
        """A new version in force from now (``rules`` is ``text_`` already validated).
        ``only_if_new``: nothing when the version in force has the same text."""
        digest = hashlib.sha256(text_.encode()).hexdigest()
        async with self.db.transaction() as s:
            if self.db.is_postgres:
                await s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK})
            if only_if_new:
                newest = await s.scalar(
                    select(RoutingRulesVersion.digest)
                    .order_by(desc(RoutingRulesVersion.id))
                    .limit(1)
                )
                if newest == digest:
                    return None
            row = RoutingRulesVersion(text=text_, digest=digest, source=source, created_by=user_id)
            s.add(row)
            await s.flush()
        self._install(row.id, rules)
        log.info("routing_rules_version", version=row.id, source=source, digest=digest[:12])
        return row

    async def bootstrap(self) -> None:
        """At start: the newest version, or the rules file as version 1."""
        newest = await self.latest()
        if newest is not None:
            await self._install_row(newest)
            return
        if self.path is not None and self.path.exists():
            try:
                body = await asyncio.to_thread(self.path.read_text, encoding="utf-8")
                rules = await asyncio.to_thread(parse_rules, body, str(self.path))
            except (OSError, UnicodeDecodeError, RulesError) as exc:
                log.error("routing_rules_file_not_imported", error=str(exc)[:500])
                return
            await self.save(body, rules, source="file", only_if_new=True)

    async def _install_row(self, row: RoutingRulesVersion) -> None:
        try:
            rules = await asyncio.to_thread(parse_rules, row.text, f"<version {row.id}>")
        except RulesError as err:  # cannot happen for rows we validated; keep what runs
            self.watcher.on_error(err)
            self.version_id = row.id
            return
        self._install(row.id, rules)

    async def sync(self) -> None:
        """Import an edit of the file on disk; install a newer version from the database."""
        stamp = self._file_stamp()
        if self.path is not None and stamp is not None and stamp != self._stamp:
            self._stamp = stamp
            try:
                body = await asyncio.to_thread(self.path.read_text, encoding="utf-8")
                rules = await asyncio.to_thread(parse_rules, body, str(self.path))
            except RulesError as err:
                self.watcher.on_error(err)
            except (OSError, UnicodeDecodeError) as exc:
                log.error("routing_rules_file_unreadable", error=str(exc)[:300])
            else:
                await self.save(body, rules, source="file", only_if_new=True)
        newest = await self.latest()
        if newest is not None and newest.id != self.version_id:
            await self._install_row(newest)

    def mark_file_written(self) -> None:
        """The file was just written as an export: not an edit to import."""
        self._stamp = self._file_stamp()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.poll_seconds)
            try:
                await self.sync()
            except Exception as exc:  # the database is away: try again at the next poll
                log.warning("routing_rules_sync_failed", error=str(exc)[:300])
