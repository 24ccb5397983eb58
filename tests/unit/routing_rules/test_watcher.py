"""RulesWatcher: reloads on change, keeps the previous rules when the new file is bad."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from routing_rules import RulesError, RuleSet, RulesWatcher

GOOD = "rules:\n  - {id: one, assign: {team: sales}}\n"
GOOD2 = "rules:\n  - {id: two, assign: {team: support}}\n  - {id: three, assign: {user: 1}}\n"
BAD = "rules:\n  - {id: broken, assign: {team: sales, strategy: fastest}}\n"


def _write(path: Path, text: str, tick: int) -> None:
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(1_700_000_000_000_000_000 + tick, 1_700_000_000_000_000_000 + tick))


def test_missing_file_means_default_rules(tmp_path: Path) -> None:
    errors: list[RulesError] = []
    w = RulesWatcher(tmp_path / "routing.yaml", errors.append)
    assert [r.id for r in w.current.rules] == []
    assert w.current.default_assign.chain[0].pool_key == "role:manager"
    assert errors == []


def test_reload_and_keep_previous_on_error(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    _write(path, GOOD, 1)
    errors: list[RulesError] = []
    w = RulesWatcher(path, errors.append)
    assert [r.id for r in w.current.rules] == ["one"]
    assert w.reload() is False  # unchanged

    _write(path, BAD, 2)
    assert w.reload() is False
    assert [r.id for r in w.current.rules] == ["one"]
    assert len(errors) == 1 and errors[0].errors[0][:2] == (2, 50)

    _write(path, GOOD2, 3)
    assert w.reload() is True
    assert [r.id for r in w.current.rules] == ["two", "three"]

    path.unlink()
    assert w.reload() is False
    assert [r.id for r in w.current.rules] == ["two", "three"]
    assert "disappeared" in str(errors[-1])


def test_bad_file_at_start_reports_and_uses_default(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    _write(path, BAD, 1)
    errors: list[RulesError] = []
    w = RulesWatcher(path, errors.append)
    assert len(errors) == 1
    assert len(w.current) == 0


def test_touch_without_change_does_not_reload(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    _write(path, GOOD, 1)
    reloaded: list[RuleSet] = []
    w = RulesWatcher(path, on_reload=reloaded.append)
    _write(path, GOOD, 2)
    assert w.reload() is False
    assert len(reloaded) == 1  # the initial load only


async def test_run_polls_until_cancelled(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    _write(path, GOOD, 1)
    changed = asyncio.Event()
    w = RulesWatcher(path, on_reload=lambda rs: changed.set())
    changed.clear()
    task = asyncio.create_task(w.run(poll_interval=0.01))
    _write(path, GOOD2, 2)
    await asyncio.wait_for(changed.wait(), 5)
    assert [r.id for r in w.current.rules] == ["two", "three"]
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    assert task.cancelled()
