"""Tokens can be revoked and rotated; open live streams follow within seconds.

``crmhub users deactivate|activate|rotate-token EMAIL`` and the admin API
``POST /api/v1/users/{id}/deactivate|activate|rotate-token``.  A stream opened with a
token that is revoked closes: at once when the admin API runs in the same process, at
the next recheck (``live_recheck_seconds``) when the change comes from elsewhere (the
CLI, another hub process).  Browsers open streams with a single-use ticket from
``POST /api/v1/live/ticket``; a token in the URL is no longer accepted.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse, WSMsgType, web
from aiohttp.test_utils import TestClient
from sqlalchemy import update

from crm_core.models import LiveTicket, utcnow
from gateway.api.keys import DB
from gateway.app import create_app
from gateway.cli import main
from gateway.live import WS_REVOKED
from tests.support.app import add_user, bearer, make_settings

# A liveness bound for "closed within seconds", not a timing assertion.
WITHIN = 10.0


async def start(
    db_url: str, tmp_path: Path, aiohttp_client: Any, **settings: Any
) -> tuple[TestClient[Any, Any], dict[str, tuple[int, str]]]:
    users = {
        "admin": await add_user(db_url, "admin@example.ru", "admin"),
        "anna": await add_user(db_url, "anna@example.ru", "manager"),
        "boris": await add_user(db_url, "boris@example.ru", "manager"),
    }
    app: web.Application = create_app(
        make_settings(db_url, tmp_path, run_workers=False, sla_poll_seconds=0, **settings)
    )
    return await aiohttp_client(app), users


async def ticket(client: TestClient[Any, Any], token: str) -> str:
    r = await client.post("/api/v1/live/ticket", headers=bearer(token))
    assert r.status == 201, await r.text()
    body = await r.json()
    assert body["expires_in"] == 30
    return str(body["ticket"])


async def open_ws(client: TestClient[Any, Any], token: str) -> Any:
    ws = await client.ws_connect("/live", headers=bearer(token))
    hello = await ws.receive_json(timeout=5)
    assert hello["kind"] == "hello"
    return ws


async def open_sse(client: TestClient[Any, Any], token: str) -> ClientResponse:
    r = await client.get("/live/sse", params={"ticket": await ticket(client, token)})
    assert r.status == 200
    assert await r.content.readline() == b"event: hello\n"
    return r


async def ws_closed(ws: Any) -> int:
    msg = await ws.receive(timeout=WITHIN)
    assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING), msg
    return int(ws.close_code or 0)


async def sse_ended(resp: ClientResponse) -> str:
    """The rest of the stream until the server ends it; returns it."""
    return (await asyncio.wait_for(resp.content.read(), WITHIN)).decode()


async def status(client: TestClient[Any, Any], method: str, path: str, token: str) -> int:
    r = await client.request(method, "/api/v1" + path, headers=bearer(token))
    await r.read()
    return r.status


async def test_admin_api_deactivates_activates_and_rotates(
    db_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    client, u = await start(db_url, tmp_path, aiohttp_client, live_recheck_seconds=60)
    (admin_id, admin), (anna_id, anna), (boris_id, boris) = u["admin"], u["anna"], u["boris"]

    # Admin only; unknown ids 404; an admin does not lock themselves out.
    for action in ("deactivate", "activate", "rotate-token"):
        assert await status(client, "POST", f"/users/{boris_id}/{action}", anna) == 403
        assert await status(client, "POST", f"/users/999999/{action}", admin) == 404
        assert await status(client, "POST", f"/users/x1/{action}", admin) == 404
    assert await status(client, "POST", f"/users/{admin_id}/deactivate", admin) == 409
    assert await status(client, "GET", "/me", boris) == 200  # nothing changed

    # Deactivation closes Anna's streams at once (this process), not Boris's.
    ws, sse = await open_ws(client, anna), await open_sse(client, anna)
    boris_ws = await open_ws(client, boris)
    r = await client.post(f"/api/v1/users/{anna_id}/deactivate", headers=bearer(admin))
    assert r.status == 200 and (await r.json())["active"] is False
    assert await ws_closed(ws) == WS_REVOKED
    assert 'event: bye\ndata: {"reason": "revoked"}' in await sse_ended(sse)
    assert await status(client, "GET", "/me", anna) == 403
    assert await status(client, "POST", "/live/ticket", anna) == 403
    r = await client.get("/live/sse", headers=bearer(anna))
    assert r.status == 401
    await boris_ws.send_str("ping")
    assert (await boris_ws.receive_json(timeout=5))["kind"] == "pong"

    # Activation lets the same token in again.
    r = await client.post(f"/api/v1/users/{anna_id}/activate", headers=bearer(admin))
    assert r.status == 200 and (await r.json())["active"] is True
    assert await status(client, "GET", "/me", anna) == 200

    # Rotation: a new token, the old one refused, streams of the old one closed.
    ws, sse = await open_ws(client, anna), await open_sse(client, anna)
    spare = await ticket(client, anna)  # issued for the old token: voided too
    r = await client.post(f"/api/v1/users/{anna_id}/rotate-token", headers=bearer(admin))
    assert r.status == 200
    body = await r.json()
    new = body["token"]
    assert new and new != anna and body["email"] == "anna@example.ru"
    assert await ws_closed(ws) == WS_REVOKED
    assert "event: bye" in await sse_ended(sse)
    assert await status(client, "GET", "/me", anna) == 401
    assert await status(client, "GET", "/me", new) == 200
    r = await client.get("/live/sse", params={"ticket": spare})
    assert r.status == 401
    ws = await open_ws(client, new)
    await ws.send_str("ping")
    assert (await ws.receive_json(timeout=5))["kind"] == "pong"
    await ws.close()
    await boris_ws.close()


async def test_the_cli_revokes_and_streams_close_at_the_recheck(
    db_url: str, tmp_path: Path, aiohttp_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI runs outside the server (as another hub process would): the periodic
    recheck against the users table closes the streams."""
    client, u = await start(db_url, tmp_path, aiohttp_client, live_recheck_seconds=0.2)
    anna = u["anna"][1]
    monkeypatch.setenv("CRMHUB_DATABASE_URL", db_url)
    monkeypatch.setenv("CRMHUB_ROUTING_RULES_PATH", "")

    def cli(*args: str) -> tuple[int, Any]:
        import contextlib
        import io

        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main(list(args))
        text = out.getvalue().strip()
        return code, json.loads(text) if text else None

    ws, sse = await open_ws(client, anna), await open_sse(client, anna)
    code, row = await asyncio.to_thread(cli, "users", "deactivate", "Anna@Example.ru")
    assert code == 0 and row["active"] is False and "token" not in row
    assert await ws_closed(ws) == WS_REVOKED
    assert "event: bye" in await sse_ended(sse)
    assert await status(client, "GET", "/me", anna) == 403

    code, row = await asyncio.to_thread(cli, "users", "activate", "anna@example.ru")
    assert code == 0 and row["active"] is True
    ws = await open_ws(client, anna)
    code, row = await asyncio.to_thread(cli, "users", "rotate-token", "anna@example.ru")
    assert code == 0 and row["token"] and row["email"] == "anna@example.ru"
    assert await ws_closed(ws) == WS_REVOKED
    assert await status(client, "GET", "/me", anna) == 401
    assert await status(client, "GET", "/me", row["token"]) == 200

    code, row = await asyncio.to_thread(cli, "users", "deactivate", "nobody@example.ru")
    assert code == 2 and row is None


async def test_tickets_are_single_use_short_lived_and_the_url_takes_no_token(
    db_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    client, u = await start(db_url, tmp_path, aiohttp_client)
    anna = u["anna"][1]
    for path in ("/live", "/live/sse"):
        r = await client.get(path, params={"token": anna})
        assert r.status == 401, path  # the token in a URL is not accepted any more

    t = await ticket(client, anna)
    ws = await client.ws_connect(f"/live?ticket={t}")
    assert (await ws.receive_json(timeout=5))["kind"] == "hello"
    await ws.close()
    r = await client.get("/live/sse", params={"ticket": t})
    assert r.status == 401  # used up

    old = await ticket(client, anna)
    async with client.app[DB].transaction() as s:
        await s.execute(update(LiveTicket).values(expires_at=utcnow() - timedelta(seconds=1)))
    r = await client.get("/live/sse", params={"ticket": old})
    assert r.status == 401
    r = await client.get("/live/sse", params={"ticket": "x" * 32})
    assert r.status == 401


async def test_openapi_documents_the_new_routes(
    db_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    client, _ = await start(db_url, tmp_path, aiohttp_client)
    doc = await (await client.get("/api/v1/openapi.json")).json()
    for path in ("deactivate", "activate", "rotate-token"):
        op = doc["paths"][f"/api/v1/users/{{id}}/{path}"]["post"]
        assert {"403", "404"} <= set(op["responses"]), path
    assert "post" in doc["paths"]["/api/v1/live/ticket"]
