"""Reload ``routing.yaml`` when it changes; keep the previous rules when the new file is bad."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

from .loader import RulesError, parse_rules
from .ruleset import RuleSet

__all__ = ["RulesWatcher"]

log = logging.getLogger(__name__)


def _log_error(exc: RulesError) -> None:
    log.error("routing rules rejected, keeping the previous ones: %s", exc)


class RulesWatcher:
    """Holds the current :class:`RuleSet` for ``path``.

    A missing file means :meth:`RuleSet.default`.  An invalid file (at start or later)
    is reported to ``on_error`` and the rules in force stay as they were.
    """

    def __init__(
        self,
        path: str | Path,
        on_error: Callable[[RulesError], None] | None = None,
        on_reload: Callable[[RuleSet], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.on_error = on_error or _log_error
        self.on_reload = on_reload
        self.current: RuleSet = RuleSet.default()
        self._stamp: tuple[int, int] | None = None
        self._digest: str | None = None
        self.reload()

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def _load(self, force: bool = False) -> RuleSet | RulesError | None:
        """Read and parse the file if it changed (may run in a worker thread)."""
        stamp = self._stat()
        if stamp == self._stamp and not force:
            return None
        self._stamp = stamp
        if stamp is None:
            if self._digest is None:
                return None
            self._digest = None
            return RulesError(str(self.path), [(1, 1, "file disappeared")])
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            return RulesError(str(self.path), [(1, 1, f"cannot read the file: {exc}")])
        digest = hashlib.sha256(data).hexdigest()
        if digest == self._digest:
            return None
        self._digest = digest
        try:
            return parse_rules(data.decode("utf-8"), str(self.path))
        except UnicodeDecodeError as exc:
            return RulesError(str(self.path), [(1, 1, f"not UTF-8: {exc}")])
        except RulesError as exc:
            return exc

    def _apply(self, result: RuleSet | RulesError | None) -> bool:
        if result is None:
            return False
        if isinstance(result, RulesError):
            self.on_error(result)
            return False
        self.current = result
        if self.on_reload is not None:
            self.on_reload(result)
        return True

    def reload(self, force: bool = False) -> bool:
        """Check the file now; ``True`` if new rules were installed."""
        return self._apply(self._load(force))

    async def reload_async(self, force: bool = False) -> bool:
        """:meth:`reload` with the read and parse in a worker thread (not on the loop)."""
        return self._apply(await asyncio.to_thread(self._load, force))

    async def run(self, poll_interval: float = 2.0) -> None:
        """Poll until cancelled (run it as a background task).  Callbacks run in the loop."""
        while True:
            await asyncio.sleep(poll_interval)
            try:
                result = await asyncio.to_thread(self._load)
                self._apply(result)
            except Exception:  # never let the watcher die
                log.exception("routing rules watcher failed")
