"""The routing rules live in the database: the file is the bootstrap (version 1) and an
export; ``PUT /rules`` reaches every hub process within seconds; every version is kept
and can be restored; a file edited on disk becomes a version when valid; a process with a
stale file of its own does not overwrite newer rules; a bad document writes nothing."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from crm_core.db import Database
from crm_core.models import RoutingRulesVersion
from gateway.app import create_app
from tests.integration.gateway.test_routing_operations import BAD_RULES, RULES_V1
from tests.support.app import add_user, bearer, make_settings, running

RULES_V2 = RULES_V1.replace("id: everyone", "id: everyone-v2")
RULES_STALE = RULES_V1.replace("id: everyone", "id: stale-file")


async def _until(cond: Callable[[], Awaitable[bool]], limit_s: float = 15.0) -> None:
    for _ in range(int(limit_s / 0.1)):
        if await cond():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("not reached in time")


async def _versions(db_url: str) -> list[tuple[int, str, str]]:
    db = Database(db_url)
    try:
        async with db.sessions() as s:
            rows = await s.execute(
                select(
                    RoutingRulesVersion.id, RoutingRulesVersion.source, RoutingRulesVersion.text
                ).order_by(RoutingRulesVersion.id)
            )
            return [(r.id, r.source, r.text) for r in rows]
    finally:
        await db.dispose()


async def test_put_reaches_every_process_and_stale_files_do_not_win(
    db_url: str, tmp_path: Path
) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("several hub processes share a database on PostgreSQL only")
    _, admin = await add_user(db_url, "boss@example.ru", "admin")
    await add_user(db_url, "m@example.ru", "manager")
    first, second = tmp_path / "a" / "routing.yaml", tmp_path / "b" / "routing.yaml"
    first.parent.mkdir()
    second.parent.mkdir()
    first.write_text(RULES_V1)
    second.write_text(RULES_STALE)  # another machine's old copy
    app1 = create_app(make_settings(db_url, tmp_path / "a", routing_rules_path=str(first)))
    app2 = create_app(make_settings(db_url, tmp_path / "b", routing_rules_path=str(second)))
    async with running(app1) as c1:
        async with running(app2) as c2:
            versions = await _versions(db_url)
            assert [(v[1], v[2]) for v in versions] == [("file", RULES_V1)]
            r = await c2.get("/api/v1/rules", headers=bearer(admin))
            body = await r.json()
            assert body["version"] == versions[0][0] and body["text"] == RULES_V1
            assert [x["id"] for x in body["rules"]] == ["everyone"]  # not its stale file

            r = await c1.put("/api/v1/rules", json={"yaml": RULES_V2}, headers=bearer(admin))
            assert r.status == 200, await r.text()
            assert first.read_text() == RULES_V2  # the file is an export

            async def second_has_v2() -> bool:
                r = await c2.get("/api/v1/rules", headers=bearer(admin))
                return [x["id"] for x in (await r.json())["rules"]] == ["everyone-v2"]

            await _until(second_has_v2)
            r = await c2.get("/api/v1/rules/history", headers=bearer(admin))
            hist = (await r.json())["items"]
            assert [h["source"] for h in hist] == ["api", "file"]
            assert hist[0]["created_by"] is not None


async def test_history_restore_file_edits_and_bad_documents(db_url: str, tmp_path: Path) -> None:
    _, admin = await add_user(db_url, "boss@example.ru", "admin")
    _, manager = await add_user(db_url, "m@example.ru", "manager")
    path = tmp_path / "routing.yaml"
    path.write_text(RULES_V1)
    app = create_app(make_settings(db_url, tmp_path, routing_rules_path=str(path)))
    h = bearer(admin)
    async with running(app) as c:
        r = await c.put("/api/v1/rules", json={"yaml": BAD_RULES}, headers=h)
        assert r.status == 422
        assert len(await _versions(db_url)) == 1  # nothing written
        r = await c.put("/api/v1/rules", json={"yaml": RULES_V2}, headers=h)
        assert r.status == 200
        # an operator edits the file on disk: a valid edit becomes a version ...
        path.write_text(RULES_STALE)
        os.utime(path, ns=(1, 10**18))  # a new stamp even within the same clock tick

        async def has(rule_id: str) -> bool:
            r = await c.get("/api/v1/rules", headers=h)
            return [x["id"] for x in (await r.json())["rules"]] == [rule_id]

        await _until(lambda: has("stale-file"))
        # ... an invalid one is logged and changes nothing
        path.write_text(BAD_RULES)
        os.utime(path, ns=(2, 2 * 10**18))
        await asyncio.sleep(4.5)
        assert await has("stale-file")
        versions = await _versions(db_url)
        assert [v[1] for v in versions] == ["file", "api", "file"]
        # restore version 1: a new version, in force at once
        r = await c.post(f"/api/v1/rules/history/{versions[0][0]}/restore", headers=h)
        assert r.status == 200, await r.text()
        assert await has("everyone")
        r = await c.get(f"/api/v1/rules/history/{versions[0][0]}", headers=h)
        assert (await r.json())["text"] == RULES_V1
        assert [v[1] for v in await _versions(db_url)] == ["file", "api", "file", "restore"]
        # managers see none of it; an unknown version is 404
        r = await c.get("/api/v1/rules/history", headers=bearer(manager))
        assert r.status == 403
        r = await c.get("/api/v1/rules/history/999999", headers=h)
        assert r.status == 404
    db = Database(db_url)
    try:
        async with db.sessions() as s:
            assert await s.scalar(select(func.count()).select_from(RoutingRulesVersion)) == 4
    finally:
        await db.dispose()
