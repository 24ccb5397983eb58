"""Baseline server for bench/form_ingest.py: a bare aiohttp endpoint that inserts one row
per request with the raw driver (aiosqlite or asyncpg), one commit per request."""

from __future__ import annotations

import json
import sys

from aiohttp import web


async def make_app(url: str) -> web.Application:
    app = web.Application()
    if url.startswith("sqlite"):
        import aiosqlite

        path = url.split("///", 1)[1]
        conn = await aiosqlite.connect(path)
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA synchronous=NORMAL")
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS raw_events (id INTEGER PRIMARY KEY, body TEXT NOT NULL)"
        )
        await conn.commit()

        async def close(_app: web.Application) -> None:
            await conn.close()

        app.on_cleanup.append(close)

        async def handle(request: web.Request) -> web.Response:
            data = await request.post()
            await conn.execute(
                "INSERT INTO raw_events (body) VALUES (?)", (json.dumps(dict(data)),)
            )
            await conn.commit()
            return web.json_response({"status": "ok"}, status=201)

    else:
        import asyncpg

        dsn = url.replace("postgresql+asyncpg://", "postgresql://")
        pool = await asyncpg.create_pool(dsn, min_size=10, max_size=10)
        async with pool.acquire() as c:
            await c.execute(
                "CREATE TABLE IF NOT EXISTS raw_events"
                " (id BIGSERIAL PRIMARY KEY, body TEXT NOT NULL)"
            )

        async def close_pool(_app: web.Application) -> None:
            await pool.close()

        app.on_cleanup.append(close_pool)

        async def handle(request: web.Request) -> web.Response:
            data = await request.post()
            async with pool.acquire() as c:
                await c.execute("INSERT INTO raw_events (body) VALUES ($1)", json.dumps(dict(data)))
            return web.json_response({"status": "ok"}, status=201)

    app.router.add_post("/hook", handle)

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app.router.add_get("/healthz", healthz)
    return app


if __name__ == "__main__":
    db_url, port = sys.argv[1], int(sys.argv[2])
    web.run_app(make_app(db_url), host="127.0.0.1", port=port, print=None, access_log=None)
